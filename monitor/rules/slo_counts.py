"""Every check's SLO tracker and their persistence: record, load at start, flush each minute.

The rule engine only reads the trackers (``burn_rate``, ``error_budget_remaining``); counting
results and writing completed minutes to the store are this object's job, so evaluation
stays free of I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from monitor.core.results import Result
from monitor.probes.base import CheckBase
from monitor.rules.slo import SloTracker
from monitor.store.base import CountStore

log = structlog.get_logger("monitor.rules")
PRUNE_EVERY = 3600.0


class SloCounts:
    def __init__(self, store: CountStore | None = None, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._now = clock
        self.trackers: dict[str, SloTracker] = {}  # per check with `slo:`
        self._pruned_at = 0.0

    def configure(self, checks: list[CheckBase]) -> None:
        """One tracker per check with `slo:`; an unchanged objective keeps its counts."""
        trackers: dict[str, SloTracker] = {}
        for check in checks:
            if check.slo is not None:
                old = self.trackers.get(check.name)
                trackers[check.name] = old if old is not None and old.config == check.slo else SloTracker(check.slo)
        self.trackers = trackers

    def record(self, check: str, result: Result) -> None:
        tracker = self.trackers.get(check)
        if tracker is not None:
            tracker.record(result.at, result.up)

    async def load(self) -> None:
        """Add what the store holds for each tracker's window (once, at start)."""
        if self._store is None:
            return
        now = self._now()
        for name, tracker in self.trackers.items():
            since = int(now // 60) - tracker.window_minutes
            tracker.load(await self._store.load_counts(name, since))

    async def flush(self) -> None:
        """Persist completed minutes; a failed write gives them back for the next flush."""
        if self._store is None:
            return
        now = self._now()
        if now - self._pruned_at > PRUNE_EVERY:
            # Counts older than the longest SLO window are never read again (nor are those of
            # checks that lost their `slo:`): the table stays as small as the windows need.
            self._pruned_at = now
            longest = max((t.window_minutes for t in self.trackers.values()), default=0)
            try:
                await self._store.prune_counts(int(now // 60) - longest - 1)
            except Exception as err:
                log.error("slo_counts_prune_failed", error=str(err))
        for name, tracker in list(self.trackers.items()):
            counts = tracker.pending_flush(now)
            if not counts:
                continue
            try:
                await self._store.add_counts(name, counts)
            except Exception as err:
                tracker.requeue(counts)
                log.error("slo_counts_write_failed", check=name, error=str(err))
