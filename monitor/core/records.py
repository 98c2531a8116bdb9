"""The domain records later stages share and the store keeps: alert states, notification
outbox entries, what one evaluation changed, and SLO minute counts.

They live in the core because several layers use them (rules produce them, alerting and the
store consume them) and none of those may import another for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AlertRecord:
    """One alert instance: a rule applied to one check."""

    fingerprint: str  # stable id of (alertname, check); the primary key
    alertname: str
    check: str
    state: str  # "pending" | "firing"
    labels: dict[str, str]
    annotations: dict[str, str]
    active_at: float  # when the condition first held (Prometheus' activeAt)
    fired_at: float | None = None  # when it went from pending to firing
    last_true_at: float = 0.0  # the last evaluation that found the condition true
    value: float | None = None  # what the condition compared (Prometheus' $value)
    # For notifications, not kept in the state store (an alert restored after a restart gets
    # them back at its next true evaluation): the unit of `value` and the check's error.
    unit: str = ""
    error: str = ""


@dataclass(frozen=True)
class OutboxEntry:
    """One notification for one integration, waiting to be delivered.

    Written in the same transaction as the decision to send it (the notification group's
    new ``GroupRecord``), so after a crash it is either due or was never decided.
    """

    id: str  # random hex; the primary key
    seq: int  # creation order: an integration gets its entries in ascending seq
    target: str  # which integration, e.g. "oncall/pagerduty_configs/0"
    payload: dict[str, Any]  # Notification.to_record()
    created_at: float
    attempts: int = 0  # failed attempts so far
    next_attempt_at: float = 0.0  # not before this (backoff, Retry-After)
    last_error: str = ""


@dataclass(frozen=True)
class StateChange:
    """What one evaluation (or one dispatcher flush) changed, written atomically."""

    upsert: list[AlertRecord] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)  # fingerprints of alerts that became inactive
    outbox: list[OutboxEntry] = field(default_factory=list)  # new entries to deliver
    # Notification groups' records (what each receiver was last told), by group id; None
    # deletes the record.
    groups: dict[str, dict[str, Any] | None] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.upsert or self.delete or self.outbox or self.groups)


@dataclass(frozen=True)
class HourCount:
    """Runs of one check in one hour, and how many were up: the status page's uptime."""

    hour: int  # unix time // 3600
    good: int
    total: int


@dataclass(frozen=True)
class MinuteCount:
    minute: int  # unix time // 60
    good: int
    total: int
