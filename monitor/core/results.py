"""What one probe run produces (docs/configuration.md, "The result of a run"), shared by every later stage."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from monitor.core import secrets


class Outcome(str, Enum):
    """How a run ended; the ``result`` label of ``monitor_check_runs_total``."""

    SUCCESS = "success"  # the probe ran and the target is healthy
    FAILURE = "failure"  # the probe ran and the target is unhealthy
    TIMEOUT = "timeout"  # the deadline passed before the probe finished
    ERROR = "error"  # the probe itself broke (a bug, or a config that cannot work)


@dataclass(frozen=True, slots=True)
class SeriesValue:
    """One series of a query result that has several (docs/configuration.md, `metrics`): its
    labels, sorted by name (without ``__name__``, renamed where they would collide with the
    check's own labels), and its value. Rules give one alert per series; ``/metrics``
    exports ``monitor_check_value`` per series."""

    labels: tuple[tuple[str, str], ...]
    value: float

    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)


@dataclass(frozen=True, slots=True)
class Result:
    up: bool
    value: float | None = None
    latency: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    outcome: Outcome = Outcome.SUCCESS
    at: float = 0.0  # wall-clock time the run started, filled in by the runner
    # Set when the value is a vector of labelled series (the PromQL kinds): each is judged
    # and exported on its own; `value` is then the one series' value, or None for several.
    series: tuple[SeriesValue, ...] = ()

    @staticmethod
    def failed(error: str, latency: float = 0.0, detail: dict[str, Any] | None = None,
               value: float | None = None) -> Result:
        return Result(up=False, value=value, latency=latency, detail=detail or {},
                      error=one_line(error), outcome=Outcome.FAILURE)


def json_number(value: float) -> float | str:
    """A value as JSON can carry it: NaN and the infinities spelled as Prometheus' API does."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")


def redact(text: str) -> str:
    """Remove credentials that libraries like to echo back in error messages: the
    configured secret values and credential-shaped text (see ``monitor.core.secrets``)."""
    return secrets.redact(text)


def one_line(text: str, limit: int = 500) -> str:
    """Errors are shown in tables, logs and Slack: one line, bounded, no secrets, and any
    URL in it with its query values masked."""
    flat = " ".join(secrets.scrub(str(text)).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def describe_exception(err: BaseException) -> str:
    message = str(err).strip()
    name = type(err).__name__
    return one_line(f"{name}: {message}" if message else name)
