"""What travels down the notification path: alerts and the notifications that carry them."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["firing", "resolved"]

# JSON has no NaN or Infinity, and the state store encodes records with allow_nan=False (so
# PostgreSQL's jsonb and SQLite agree): a record holding one is refused, and the writer would
# retry it forever. A check can still return them, so a record spells them as Prometheus'
# text format does and ``from_record`` reads the spelling back.
_NON_FINITE_SPELLING = frozenset({"NaN", "+Inf", "-Inf"})


@dataclass(frozen=True)
class Alert:
    """One alert as receivers see it (Alertmanager's alert fields)."""

    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: float  # unix seconds: when it started firing
    ends_at: float | None = None  # set once resolved
    value: float | None = None
    generator_url: str = ""
    unit: str = ""  # of `value` (monitor/core/units.py)
    error: str = ""  # the check's error when the alert was raised: why, in the check's words
    # When the condition first held (before `for` ran out); what "resolved after ..." counts from.
    active_at: float | None = None

    @property
    def status(self) -> Status:
        return "resolved" if self.ends_at is not None else "firing"

    def to_record(self) -> dict[str, Any]:
        """A JSON-able dict (no NaN or Infinity in it), which ``from_record`` reads back."""
        record = asdict(self)
        record["value"] = _value_to_record(self.value)
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Alert:
        fields = dict(record)
        fields["value"] = _value_from_record(record.get("value"))
        return cls(**fields)


@dataclass(frozen=True)
class Notification:
    """One message to one receiver about one alert group."""

    receiver: str
    group_key: str  # stable id of the group (route path + group labels), Alertmanager's groupKey
    group_labels: dict[str, str]
    alerts: list[Alert]
    external_url: str = ""
    truncated_alerts: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> Status:
        return "firing" if any(a.status == "firing" for a in self.alerts) else "resolved"

    def to_record(self) -> dict[str, Any]:
        """A JSON-able dict, what the outbox stores and ``from_record`` reads back."""
        record = asdict(self)
        record["alerts"] = [a.to_record() for a in self.alerts]
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Notification:
        fields = dict(record)
        fields["alerts"] = [Alert.from_record(a) for a in record["alerts"]]
        return cls(**fields)

    @property
    def common_labels(self) -> dict[str, str]:
        return _common([a.labels for a in self.alerts])

    @property
    def common_annotations(self) -> dict[str, str]:
        return _common([a.annotations for a in self.alerts])


def _value_to_record(value: float | None) -> float | str | None:
    """The value as JSON can hold it: a finite number as is, NaN and ±Inf as "NaN", "+Inf", "-Inf"."""
    if value is None or math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "+Inf" if value > 0 else "-Inf"


def _value_from_record(value: Any) -> float | None:
    """Inverse of ``_value_to_record``; records written before non-finite values were spelled
    out hold plain numbers or null, which read back unchanged."""
    if isinstance(value, str):
        if value not in _NON_FINITE_SPELLING:
            raise ValueError(f"alert value must be a number, null, NaN, +Inf or -Inf; got {value!r}")
        return float(value)
    if value is None:
        return None
    return float(value)


def _common(maps: list[dict[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    first, *rest = maps
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in rest)}
