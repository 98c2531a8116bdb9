"""PagerDuty Events API v2: one alert (incident) per notification group, triggered while any
alert in it fires and resolved when all have, tied together by a stable ``dedup_key``."""

from __future__ import annotations

import hashlib
import json
from typing import Any, ClassVar, Literal, TypeGuard
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr, field_validator

from monitor.core.timestamps import rfc3339
from monitor.alerting.model import Alert, Notification
from monitor.alerting.receivers.base import (
    DEFAULT_TIMEOUT,
    format_value,
    group_title,
    only_wanted,
    post,
    truncate,
)
from monitor.alerting.receivers.options import COMMON_IGNORED, Lenient, Url
from monitor.core.durations import Duration
from monitor.core.labels import SEVERITIES

DEFAULT_URL = "https://events.pagerduty.com/v2/enqueue"

# For typing only: the values, and their order (most severe first), are SEVERITIES.
Severity = Literal["critical", "error", "warning", "info"]

# PagerDuty's field limits: longer values are rejected (400, permanent) rather than cut.
SUMMARY_LIMIT = 1024
DEDUP_LIMIT = 255
# custom_details counts against the event's 512 KB cap; a few dozen alerts say what is needed.
MAX_DETAILED_ALERTS = 50


def _is_severity(value: str) -> TypeGuard[Severity]:
    return value in SEVERITIES


class PagerDutyConfig(Lenient):
    """One ``pagerduty_configs`` entry as written: a PagerDuty Events API v2 receiver."""

    ignored_options: ClassVar[frozenset[str]] = COMMON_IGNORED | {
        "routing_key_file", "service_key", "service_key_file", "client", "client_url",
        "description", "details", "images", "links", "source", "class", "component", "group",
    }  # fmt: skip

    routing_key: SecretStr
    url: Url = DEFAULT_URL
    # None: derived per notification from the alerts' `severity` label (see severity_of).
    severity: Severity | None = None
    send_resolved: bool = True
    timeout: Duration | None = None

    @field_validator("severity", mode="before")
    @classmethod
    def _severity(cls, value: Any) -> Any:
        if isinstance(value, str):
            if "{{" in value:
                # An Alertmanager template such as '{{ .CommonLabels.severity }}': deriving the
                # severity from the alerts' labels is what we do without one, so that is its meaning.
                return None
            value = value.strip().lower()
            if not _is_severity(value):
                raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}; got {value!r}")
        return value

    @field_validator("routing_key")
    @classmethod
    def _key(cls, key: SecretStr) -> SecretStr:
        if not key.get_secret_value().strip():
            raise ValueError("routing_key is empty (is its ${VARIABLE} set?)")
        return key


def build(config: PagerDutyConfig) -> PagerDutyIntegration:
    """The integration for one entry; the routing key leaves its SecretStr only here."""
    return PagerDutyIntegration(config.routing_key.get_secret_value(), url=config.url, severity=config.severity,
                                send_resolved=config.send_resolved, timeout=config.timeout or DEFAULT_TIMEOUT)


def dedup_key(receiver: str, group_key: str) -> str:
    """The same key for every event about one group, across restarts and replicas.

    A hash rather than the group key itself: group keys can exceed PagerDuty's 255 characters
    and contain label values nobody meant to send to a third party.
    """
    return hashlib.sha256(f"{receiver}\x00{group_key}".encode()).hexdigest()[:DEDUP_LIMIT]


def severity_of(alerts: list[Alert]) -> Severity:
    """The most severe mapped ``severity`` label among the alerts.

    A missing or unknown label maps to "error", as Alertmanager's PagerDuty default: paging
    too loudly for an unlabelled rule beats quietly filing it as info.
    """
    return min((_mapped(a.labels.get("severity", "")) for a in alerts), key=SEVERITIES.index, default="error")


def _mapped(label: str) -> Severity:
    value = label.lower()
    if value == "none":  # what kube-prometheus and others give alerts that page nobody (Watchdog)
        return "info"
    return value if _is_severity(value) else "error"


class PagerDutyIntegration:
    """One ``pagerduty_configs`` entry. The routing key is a credential: never in errors."""

    name = "pagerduty"
    resends = False

    def __init__(
        self,
        routing_key: str,
        url: str = DEFAULT_URL,
        severity: Severity | None = None,
        send_resolved: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.routing_key = routing_key
        self.url = url
        self.severity = severity
        self.send_resolved = send_resolved
        self.timeout = timeout

    async def notify(self, notification: Notification, client: httpx.AsyncClient) -> None:
        wanted = only_wanted(notification, self.send_resolved)
        if wanted is None:
            return
        body = json.dumps(self.event(wanted), ensure_ascii=False).encode()
        await post(client, self.url, content=body, secrets=[self.routing_key], timeout=self.timeout)

    def event(self, notification: Notification) -> dict[str, Any]:
        key = dedup_key(notification.receiver, notification.group_key)
        if notification.status == "resolved":
            # PagerDuty documents resolve events as these three fields only; it ignores a
            # payload there, and sending none keeps the resolve small and unambiguous.
            return {"routing_key": self.routing_key, "event_action": "resolve", "dedup_key": key}
        firing = [a for a in notification.alerts if a.status == "firing"]
        resolved = [a for a in notification.alerts if a.status == "resolved"]
        event: dict[str, Any] = {
            "routing_key": self.routing_key,
            "event_action": "trigger",
            "dedup_key": key,
            "payload": {
                "summary": truncate(_summary(notification, firing), SUMMARY_LIMIT),
                "source": _source(notification),
                # Severity follows what is firing now, not what already recovered.
                "severity": self.severity or severity_of(firing),
                "timestamp": rfc3339(min(a.starts_at for a in firing)),
                "custom_details": {
                    "firing": [_details(a) for a in firing[:MAX_DETAILED_ALERTS]],
                    "resolved": [_details(a) for a in resolved[:MAX_DETAILED_ALERTS]],
                    "num_firing": len(firing),
                    "num_resolved": len(resolved),
                    "truncated_alerts": notification.truncated_alerts
                    + max(0, len(firing) - MAX_DETAILED_ALERTS)
                    + max(0, len(resolved) - MAX_DETAILED_ALERTS),
                    "group_labels": notification.group_labels,
                    "common_labels": notification.common_labels,
                },
            },
            "client": "monitor",
        }
        if notification.external_url:
            event["client_url"] = notification.external_url
        links = _links(notification, firing)
        if links:
            event["links"] = links
        return event


def _summary(notification: Notification, firing: list[Alert]) -> str:
    """``[FIRING:2] ApiHealthFailing api_health: <first summary annotation>``."""
    title = group_title(notification)
    summary = notification.common_annotations.get("summary") or firing[0].annotations.get("summary", "")
    return f"{title}: {summary}" if summary else title


def _source(notification: Notification) -> str:
    """Where the trouble is: the group's check if it has one, else this monitor's host."""
    check = notification.common_labels.get("check")
    if check:
        return check
    host = urlsplit(notification.external_url).hostname if notification.external_url else None
    return host or "monitor"


def _details(alert: Alert) -> dict[str, Any]:
    details: dict[str, Any] = {
        "labels": alert.labels,
        "annotations": alert.annotations,
        "startsAt": rfc3339(alert.starts_at),
    }
    if alert.ends_at is not None:
        details["endsAt"] = rfc3339(alert.ends_at)
    if alert.value is not None:
        details["value"] = format_value(alert.value)
    return details


def _links(notification: Notification, firing: list[Alert]) -> list[dict[str, str]]:
    links: list[dict[str, str]] = []
    seen: set[str] = set()
    for alert in firing:
        runbook = alert.annotations.get("runbook_url", "")
        if runbook and runbook not in seen:
            seen.add(runbook)
            name = alert.labels.get("alertname", "")
            links.append({"href": runbook, "text": f"Runbook: {name}" if name else "Runbook"})
    if notification.external_url:
        links.append({"href": notification.external_url, "text": "Monitor"})
    return links
