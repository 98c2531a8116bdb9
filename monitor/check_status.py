"""The live state of every check: its latest result, history and run counters.

Written only from the event loop; read by /metrics from a worker thread. Readers take
``list(...)`` snapshots and every update replaces whole objects, so a reader never sees a
half-written entry.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import structlog

from monitor.history import History
from monitor.core.labels import label_text
from monitor.probes.base import CheckBase
from monitor.core.results import Outcome, Result

log = structlog.get_logger("monitor.checks")


@dataclass
class CheckStatus:
    check: CheckBase
    history: History
    last: Result | None = None
    runs: Counter[Outcome] = field(default_factory=Counter)
    skipped: int = 0  # runs not started because the previous one was still going
    label_text: str = ""  # the check's labels as exposition text, built once per config

    def __post_init__(self) -> None:
        self.relabel()

    def relabel(self) -> None:
        self.label_text = label_text({**self.check.labels, "check": self.check.name})


class CheckStatuses:
    def __init__(self, history_window: float = 3600.0, history_cap: int = 4096) -> None:
        self._by_name: dict[str, CheckStatus] = {}
        self._window = history_window
        self._cap = history_cap

    def configure(self, checks: list[CheckBase]) -> None:
        """Adopt a new check list; a check whose config is unchanged keeps its state and history."""
        fresh: dict[str, CheckStatus] = {}
        for check in checks:
            old = self._by_name.get(check.name)
            capacity = History.capacity_for(check.interval, self._window, self._cap)
            if old is not None and old.check.interval == check.interval:
                old.check = check
                old.relabel()
                fresh[check.name] = old
            else:
                fresh[check.name] = CheckStatus(check, History(capacity))
        self._by_name = fresh

    def get(self, name: str) -> CheckStatus | None:
        return self._by_name.get(name)

    def all(self) -> list[CheckStatus]:
        return list(self._by_name.values())

    def record(self, name: str, result: Result) -> None:
        status = self._by_name.get(name)
        if status is None:  # removed by a reload while its last run was in flight
            return
        previous = status.last
        status.runs[result.outcome] += 1
        status.history.add(result)
        status.last = result
        # One log event per change of state, never one per run: logs are for people.
        if previous is None or previous.up != result.up:
            event = "check_up" if result.up else "check_down"
            level = log.info if result.up else log.warning
            level(event, check=name, value=result.value, latency=round(result.latency, 4),
                  error=result.error, first=previous is None)

    def skipped(self, name: str) -> None:
        status = self._by_name.get(name)
        if status is not None:
            status.skipped += 1
