"""Silence is a condition too: checks whose results stopped coming are evaluated as down.

The scheduler's results drive evaluation; a check whose runs hang past every deadline (or
that never produced a result) would otherwise keep its last verdict forever. Every few
seconds the daemon asks this sweep to re-evaluate such checks: their last result, now older
than two intervals plus the timeout, reads as ``up == false`` (``error: stale ...``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from monitor.check_status import CheckStatuses
from monitor.core.results import Result
from monitor.rules.engine import Evaluation, RuleEngine, stale_after


class StalenessSweep:
    def __init__(self, statuses: CheckStatuses, engine: RuleEngine, clock: Callable[[], float] = time.time) -> None:
        self._statuses = statuses
        self._engine = engine
        self._now = clock
        self._started_at = clock()

    def sweep(self) -> Evaluation:
        """Re-evaluate every check that is stale now; what that changed."""
        now = self._now()
        out = Evaluation()
        for status in self._statuses.all():
            last = status.last
            if last is None:
                # Never produced a result (its runs hang past every deadline): judge it as a
                # failed result taken at start, so it goes stale like any other silence.
                last = Result(up=False, error="no result since start", at=self._started_at)
            if now - last.at > stale_after(status.check):
                out.extend(self._engine.evaluate(status.check.name, last, now))
        return out
