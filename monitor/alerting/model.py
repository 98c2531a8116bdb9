"""What travels down the notification path: alerts and the notifications that carry them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["firing", "resolved"]


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

    @property
    def status(self) -> Status:
        return "resolved" if self.ends_at is not None else "firing"

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Alert:
        return cls(**record)


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


def _common(maps: list[dict[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    first, *rest = maps
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in rest)}
