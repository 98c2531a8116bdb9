"""The alert state machine (Prometheus' semantics), as one pure function.

inactive -> pending (condition true, `for` running) -> firing (true for `for`) -> resolved.
`keep_firing_for` keeps a firing alert firing through short recoveries. No I/O here: the
engine persists what this returns, so every transition is testable with a fake clock.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from enum import Enum

from monitor.core.records import AlertRecord


class Transition(str, Enum):
    PENDING = "pending"  # became pending
    FIRING = "firing"  # started firing
    RESOLVED = "resolved"  # stopped firing
    CANCELLED = "cancelled"  # pending, then the condition cleared before `for` ran out


@dataclass(frozen=True)
class Step:
    """The alert after one evaluation (None: inactive) and the transition, if any."""

    alert: AlertRecord | None
    transition: Transition | None


def fingerprint(labels: dict[str, str]) -> str:
    """Stable id of an alert: its full label set, as Prometheus and Alertmanager do."""
    text = "\x00".join(f"{k}\x01{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def step(
    current: AlertRecord | None,
    condition: bool,
    now: float,
    for_: float,
    keep_firing_for: float,
    fresh: AlertRecord,
) -> Step:
    """Advance one alert by one evaluation.

    ``fresh`` carries this evaluation's labels, annotations and value (with state "pending"
    and active_at = now), used when the alert starts and to refresh a live one.
    """
    if condition:
        if current is None:
            if for_ <= 0:
                return Step(replace(fresh, state="firing", fired_at=now, last_true_at=now), Transition.FIRING)
            return Step(replace(fresh, last_true_at=now), Transition.PENDING)
        live = replace(current, labels=fresh.labels, annotations=fresh.annotations, value=fresh.value,
                       unit=fresh.unit, error=fresh.error, last_true_at=now)
        if current.state == "pending" and now - current.active_at >= for_:
            return Step(replace(live, state="firing", fired_at=now), Transition.FIRING)
        return Step(live, None)
    if current is None:
        return Step(None, None)
    if current.state == "pending":
        return Step(None, Transition.CANCELLED)
    if keep_firing_for > 0 and now - current.last_true_at < keep_firing_for:
        return Step(current, None)
    return Step(None, Transition.RESOLVED)
