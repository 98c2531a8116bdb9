"""A check's service level objective as configured (``slo: {objective, window}``).

A value type of the check config, so it sits in the core: probes' base model carries it and
the rules layer (``monitor/rules/slo.py``) does the counting and the burn-rate alerts.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from monitor.core.durations import Duration, format_duration
from monitor.core.model import Model

THIRTY_DAYS = 30 * 86400.0
_MIN_WINDOW = 3600.0


class SloConfig(Model):
    objective: float = Field(gt=0, lt=100)  # percent of good events, e.g. 99.9
    window: Duration = THIRTY_DAYS
    alerts: bool = True  # the built-in burn-rate alerts below

    @field_validator("window")
    @classmethod
    def _long_enough(cls, window: float) -> float:
        # Shorter than an hour leaves no room for a long and a short alert window.
        if window < _MIN_WINDOW:
            raise ValueError(f"the SLO window must be at least 1h, got {format_duration(window)}")
        return window
