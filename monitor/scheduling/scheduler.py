"""Runs every check on its interval with APScheduler.

Each check gets a fixed offset inside its interval, derived from its name: checks spread
evenly instead of all firing at :00, and a check keeps its phase across restarts. (APScheduler's
``jitter`` re-randomises every run, which compounds: 1 s interval + 0.5 s jitter measured 23
runs in 30 s.) A run still going when the next is due makes that next run be skipped and
counted; runs never stack up behind a slow target.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import zlib
from collections.abc import Callable
from typing import Any
from datetime import datetime, timezone

import structlog
from apscheduler.jobstores.base import JobLookupError
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobSubmissionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import Histogram

from monitor.check_status import CheckStatuses
from monitor.probes import CheckBase, ProbeEnv
from monitor.core.results import Result
from monitor.scheduling.runner import run_check

log = structlog.get_logger("monitor.scheduler")
# APScheduler logs a warning for every skipped run; we count those in a metric instead.
logging.getLogger("apscheduler").setLevel(logging.ERROR)
# Runs cancelled at shutdown reach APScheduler as CancelledError; every other failure is
# already caught and recorded by the runner, so its per-job tracebacks would only be noise.
logging.getLogger("apscheduler.executors").setLevel(logging.CRITICAL)

FIRST_RUN_SPREAD = 5.0  # seconds over which early first runs are spread, at least
FIRST_RUN_RATE = 200.0  # early first runs per second, at most
_FIRST_RUN = "#first"
ResultListener = Callable[[CheckBase, Result], object]


def phase_offset(name: str, interval: float) -> float:
    """A stable position inside the interval, spread uniformly by a hash of the name."""
    return zlib.crc32(name.encode()) / 2**32 * interval


class CheckScheduler:
    def __init__(self, statuses: CheckStatuses, env: ProbeEnv, lag: Histogram, max_concurrent: int,
                 on_result: ResultListener | None = None) -> None:
        self._statuses = statuses
        self._env = env
        self._lag = lag
        self._slots = asyncio.Semaphore(max_concurrent)
        self._checks: dict[str, CheckBase] = {}
        self._anchors: dict[str, float] = {}
        self._running: set[str] = set()
        self._on_result = on_result  # called with every result, after it is recorded
        self._scheduler = AsyncIOScheduler(timezone=timezone.utc)
        self._scheduler.add_listener(self._on_skipped, EVENT_JOB_MAX_INSTANCES)
        self._in_flight: set[asyncio.Task[Any]] = set()
        self.last_tick = time.monotonic()

    def start(self) -> None:
        self._scheduler.start()
        self._scheduler.add_job(self._tick, IntervalTrigger(seconds=1), id="__tick__", max_instances=1)

    async def _tick(self) -> None:
        # /healthz reports the scheduler dead when this stops moving.
        self.last_tick = time.monotonic()

    def apply(self, checks: list[CheckBase]) -> None:
        """Schedule ``checks``; unchanged checks keep their jobs, removed ones stop, others restart."""
        wanted = {c.name: c for c in checks}
        fresh = sum(1 for c in checks if (old := self._checks.get(c.name)) is None or old.interval != c.interval)
        # Early first runs come on top of the grid's runs; spread them thinly enough that a
        # start with 10,000 checks does not double the probe rate (measured: it overloaded
        # one core into timeouts). Checks whose grid runs first simply wait for it.
        spread = max(FIRST_RUN_SPREAD, fresh / FIRST_RUN_RATE)
        for name in list(self._checks):
            if name not in wanted:
                self._unschedule(name)
                del self._checks[name], self._anchors[name]
        for name, check in wanted.items():
            old = self._checks.get(name)
            self._checks[name] = check
            if old is not None:
                if old.interval == check.interval:
                    continue  # the running job reads the new config from self._checks
                self._unschedule(name)
            self._schedule(check, spread)

    def _schedule(self, check: CheckBase, spread: float) -> None:
        name, interval = check.name, check.interval
        now = time.time()
        anchor = math.floor(now / interval) * interval + phase_offset(name, interval)
        self._anchors[name] = anchor
        # The trigger must own every run time: APScheduler computes each next run from the
        # previous one, so overriding the first run time would shift the whole grid.
        trigger = IntervalTrigger(seconds=interval, start_date=datetime.fromtimestamp(anchor, timezone.utc))
        self._scheduler.add_job(
            self._run, trigger, args=[name, None], id=name, name=name,
            max_instances=1, coalesce=True, misfire_grace_time=None,
        )
        # If the grid's first run is far off, run once soon as well (spread over a few
        # seconds): after a start or a reload, people look at the result.
        next_run = anchor if anchor >= now else anchor + interval
        first = now + phase_offset(name, spread)
        if first < next_run - check.timeout:  # else the grid's own first run is as soon
            self._scheduler.add_job(
                self._run, DateTrigger(datetime.fromtimestamp(first, timezone.utc)), args=[name, first],
                id=f"{name}{_FIRST_RUN}", misfire_grace_time=None,
            )

    def _unschedule(self, name: str) -> None:
        # Only for checks known to be scheduled: APScheduler finds jobs by linear search,
        # so probing for each of 10,000 new checks at start would be quadratic (50 s).
        for job_id in (name, f"{name}{_FIRST_RUN}"):
            with contextlib.suppress(JobLookupError):
                self._scheduler.remove_job(job_id)

    async def _run(self, name: str, planned: float | None) -> None:
        check = self._checks.get(name)
        if check is None:
            return
        if name in self._running:  # the one-off first run may meet the grid's first run
            self._skip(name)
            return
        now = time.time()
        if planned is None:
            anchor = self._anchors[name]
            # The grid time this call is for: the latest not after now (1 ms of slack for
            # float rounding, so an on-time run is not mistaken for one a whole interval late).
            planned = anchor + math.floor((now - anchor + 0.001) / check.interval) * check.interval
        self._lag.observe(max(now - planned, 0.0))
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        self._running.add(name)
        try:
            result = await run_check(check, self._env, self._slots)
            self._statuses.record(name, result)
            if self._on_result is not None:
                try:
                    self._on_result(check, result)
                except Exception:  # a broken listener must not stop the checks
                    log.exception("result_listener_failed", check=name)
        finally:
            self._running.discard(name)
            if task is not None:
                self._in_flight.discard(task)

    def _on_skipped(self, event: JobSubmissionEvent) -> None:
        self._skip(event.job_id)

    def _skip(self, name: str) -> None:
        status = self._statuses.get(name)
        if status is not None and status.skipped == 0:
            log.warning("check_run_skipped", check=name, reason="previous run still in progress")
        self._statuses.skipped(name)

    async def stop(self, grace: float) -> None:
        """Stop scheduling; give runs in flight up to ``grace`` seconds, then cancel them."""
        self._scheduler.shutdown(wait=False)
        pending = set(self._in_flight)
        if pending:
            _, late = await asyncio.wait(pending, timeout=grace)
            for task in late:
                task.cancel()
