"""What a notification says, once, for every receiver that writes text for people.

Slack and PagerDuty (and any later text receiver) take their words from here, so a page
reads the same wherever it lands (docs/notifications.md, "What a message says"): the
severity and its colour, the summary and the description, the check's own error, the value
with its unit, the runbook, how long a resolved alert lasted, and a silence command that
works as printed. Each receiver only lays these out within its own limits.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.alerting.model import Alert, Notification
from monitor.alerting.silence_command import silence_command
from monitor.core.labels import SEVERITIES
from monitor.core.units import format_quantity, format_seconds

# One colour per severity, so warning and critical differ before a word is read; the
# marks are the same colours for clients that show no attachment bar.
SEVERITY_COLORS = {
    "critical": "#d32f2f",  # red
    "error": "#e64a19",  # red-orange
    "warning": "#f57c00",  # orange
    "info": "#1976d2",  # blue
}
SEVERITY_MARKS = {"critical": "🔴", "error": "🔴", "warning": "🟠", "info": "🔵"}
RESOLVED_COLOR = "#2e7d32"  # green
RESOLVED_MARK = "✅"
# A severity label we do not know (or none) is shown as an error: paging too loudly for an
# unlabelled rule beats quietly filing it (as the PagerDuty mapping does).
UNKNOWN_SEVERITY = "error"


def severity(alert: Alert) -> str:
    """The alert's ``severity`` label as one of SEVERITIES ("none" reads as info)."""
    label = alert.labels.get("severity", "").lower()
    if label == "none":
        return "info"
    return label if label in SEVERITIES else UNKNOWN_SEVERITY


def group_severity(notification: Notification) -> str:
    """The most severe of what fires now (of every alert when all resolved)."""
    firing = [a for a in notification.alerts if a.status == "firing"] or notification.alerts
    return min((severity(a) for a in firing), key=SEVERITIES.index, default=UNKNOWN_SEVERITY)


def color(notification: Notification) -> str:
    return SEVERITY_COLORS[group_severity(notification)] if notification.status == "firing" else RESOLVED_COLOR


def mark(alert: Alert) -> str:
    return SEVERITY_MARKS[severity(alert)] if alert.status == "firing" else RESOLVED_MARK


def value_text(alert: Alert) -> str:
    """The value the rule compared, with its unit: "3.2 s", "12 days", "HTTP 503"; "" without one."""
    return format_quantity(alert.value, alert.unit)


def lasted(alert: Alert) -> str:
    """How long the trouble of a resolved alert lasted, from when its condition first held
    (its `for` included) to its resolution: "12m 30s"; "" while it still fires."""
    if alert.ends_at is None:
        return ""
    since = alert.active_at if alert.active_at is not None else alert.starts_at
    return format_seconds(max(alert.ends_at - since, 0.0))


def silence(notification: Notification) -> str:
    """The command that silences exactly this group (the labels all its alerts share of
    alertname and check), pointed at this monitor; "" for a resolved group, which needs none."""
    if notification.status != "firing":
        return ""
    common = notification.common_labels
    return silence_command({k: common[k] for k in ("alertname", "check") if common.get(k)}, notification.external_url)


@dataclass(frozen=True)
class AlertText:
    """One alert, in words: what every text receiver shows of it."""

    name: str
    severity: str
    status: str
    summary: str
    description: str
    error: str  # the check's error when the alert was raised ("" when it had none)
    value: str  # with its unit
    check: str
    runbook: str
    lasted: str  # resolved only: "12m 30s"


def alert_text(alert: Alert) -> AlertText:
    annotations = alert.annotations
    summary = annotations.get("summary", "")
    description = annotations.get("description", "")
    return AlertText(
        name=alert.labels.get("alertname", "alert"),
        severity=severity(alert),
        status=alert.status,
        summary=summary or description,
        description=description if summary and description != summary else "",
        # A resolved alert's error is history; what it says now is that it recovered.
        error=alert.error if alert.status == "firing" else "",
        value=value_text(alert),
        check=alert.labels.get("check", ""),
        runbook=annotations.get("runbook_url", ""),
        lasted=lasted(alert),
    )


def headline(notification: Notification, title: str) -> str:
    """The one line a notification leads with: "🔴 CRITICAL <title>" or "✅ RESOLVED <title>"."""
    if notification.status == "firing":
        level = group_severity(notification)
        return f"{SEVERITY_MARKS[level]} {level.upper()} {title}"
    return f"{RESOLVED_MARK} RESOLVED {title}"
