"""Every check's uptime over 24 hours, 7 days and 30 days, for the status page.

Counts are kept per check and hour (runs, and runs that were up): 720 small buckets per check
cover 30 days, whatever the interval. They survive restarts through the store (``uptime_hours``):
each minute the counts added since the last flush are summed into their hour's row, so a crash
loses at most a minute of counts and no row is ever rewritten whole. A run that timed out or
errored counts as down: the status page answers "was it working", not "whose fault".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import structlog

from monitor.core.records import HourCount
from monitor.core.results import Result
from monitor.store.base import UptimeStore

log = structlog.get_logger("monitor.uptime")

HOUR = 3600
KEPT_HOURS = 30 * 24
FLUSH_EVERY = 60.0
WINDOWS = (("24h", 24 * HOUR), ("7d", 7 * 24 * HOUR), ("30d", 30 * 24 * HOUR))


class UptimeCounts:
    def __init__(self, store: UptimeStore | None = None, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._now = clock
        self._hours: dict[str, dict[int, list[int]]] = {}  # check → hour → [good, total]
        self._unflushed: dict[str, dict[int, list[int]]] = {}
        self._pruned_hour = 0
        self._flushed_at = 0.0

    def configure(self, names: Iterable[str]) -> None:
        """Keep the counts of checks that still exist (a renamed check starts afresh)."""
        wanted = set(names)
        self._hours = {name: self._hours.get(name, {}) for name in wanted}
        self._unflushed = {name: counts for name, counts in self._unflushed.items() if name in wanted}

    def record(self, check: str, result: Result) -> None:
        hours = self._hours.get(check)
        if hours is None:
            return
        hour = int(result.at // HOUR)
        for table in (hours, self._unflushed.setdefault(check, {})):
            bucket = table.setdefault(hour, [0, 0])
            bucket[0] += result.up
            bucket[1] += 1

    def ratio(self, check: str, seconds: float, now: float | None = None) -> float | None:
        """Share of runs that were up in the last ``seconds`` (by whole hours, the current one
        included); None when there was no run."""
        now = self._now() if now is None else now
        first = int((now - seconds) // HOUR) + 1
        good = total = 0
        for hour, (g, t) in self._hours.get(check, {}).items():
            if hour >= first:
                good += g
                total += t
        return good / total if total else None

    def windows(self, check: str, now: float | None = None) -> dict[str, float | None]:
        return {name: self.ratio(check, seconds, now) for name, seconds in WINDOWS}

    async def load(self) -> None:
        """Take back what the store kept of the last 30 days (once, at start)."""
        if self._store is None:
            return
        since = int(self._now() // HOUR) - KEPT_HOURS
        try:
            stored = await self._store.load_uptime(since)
        except Exception as err:  # the page shows less history; nothing else depends on it
            log.error("uptime_load_failed", error=str(err))
            return
        for name, rows in stored.items():
            hours = self._hours.get(name)
            if hours is None:
                continue
            for row in rows:
                bucket = hours.setdefault(row.hour, [0, 0])
                bucket[0] += row.good
                bucket[1] += row.total

    async def flush(self, force: bool = False) -> None:
        """Once a minute (or now, with ``force``, at shutdown): add the counts since the last
        flush to the store; a failed write keeps them for the next flush. Forget hours older
        than 30 days, here and in the store."""
        now = self._now()
        if not force and now - self._flushed_at < FLUSH_EVERY:
            return
        self._flushed_at = now
        now_hour = int(now // HOUR)
        oldest = now_hour - KEPT_HOURS
        for hours in self._hours.values():
            for hour in [h for h in hours if h < oldest]:
                del hours[hour]
        if self._store is None:
            self._unflushed.clear()
            return
        pending, self._unflushed = self._unflushed, {}
        for name, table in pending.items():
            rows = [HourCount(hour=h, good=g, total=t) for h, (g, t) in sorted(table.items())]
            try:
                await self._store.add_uptime(name, rows)
            except Exception as err:
                again = self._unflushed.setdefault(name, {})
                for hour, (g, t) in table.items():
                    bucket = again.setdefault(hour, [0, 0])
                    bucket[0] += g
                    bucket[1] += t
                log.error("uptime_write_failed", check=name, error=str(err))
        if now_hour != self._pruned_hour:
            self._pruned_hour = now_hour
            try:
                await self._store.prune_uptime(oldest)
            except Exception as err:
                log.error("uptime_prune_failed", error=str(err))
