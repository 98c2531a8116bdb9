"""What a page says (monitor/alerting/receivers/message.py): Slack and PagerDuty show the
severity (a colour each), summary, description, the check's error, the value with its unit,
the runbook and a silence command that works as printed; resolved says how long it lasted."""

from __future__ import annotations

import html
import re
import shlex
from typing import Any

import pytest

from monitor.alerting.model import Alert, Notification
from monitor.alerting.receivers import message
from monitor.alerting.receivers.pagerduty import PagerDutyIntegration
from monitor.alerting.receivers.slack import SlackIntegration
from monitor.alerting.silence_command import silence_command

EXTERNAL = "http://monitor.example:9464"
T0 = 1_700_000_000.0
RUNBOOK = "https://runbooks.example/echo-ai#issue-high-error-rate"


def alert(severity: str = "critical", *, resolved_after: float | None = None, error: str = "connection refused",
          value: float | None = 503.0, unit: str = "status", name: str = "ApiDown", check: str = "api_health") -> Alert:
    return Alert(
        fingerprint=f"{name}{check}{severity}",
        labels={"alertname": name, "check": check, "severity": severity, "env": "prod"},
        annotations={"summary": "API health check failing",
                     "description": "Roll back the last deploy; check the ECS service events.",
                     "runbook_url": RUNBOOK},
        starts_at=T0, ends_at=None if resolved_after is None else T0 + resolved_after,
        value=value, unit=unit, error=error, generator_url=f"{EXTERNAL}/",
    )


def group(*alerts: Alert) -> Notification:
    return Notification(receiver="oncall", group_key="{}:{alertname=\"ApiDown\"}",
                        group_labels={"alertname": "ApiDown"}, alerts=list(alerts), external_url=EXTERNAL)


def slack(notification: Notification) -> dict[str, Any]:
    return SlackIntegration("https://hooks.slack.example/x").payload(notification)


def sections(payload: dict[str, Any]) -> list[str]:
    return [b["text"]["text"] for b in payload["blocks"] if b["type"] == "section"]


@pytest.mark.parametrize(("severity", "color", "mark"), [
    ("critical", "#d32f2f", "🔴"), ("warning", "#f57c00", "🟠"), ("info", "#1976d2", "🔵"),
    ("error", "#e64a19", "🔴"), ("page-me", "#e64a19", "🔴"),  # unknown reads as error
])
def test_slack_colour_and_mark_follow_the_severity(severity: str, color: str, mark: str) -> None:
    payload = slack(group(alert(severity)))
    assert payload["attachments"][0]["color"] == color
    level = message.severity(alert(severity))
    assert payload["blocks"][0]["text"]["text"] == f"{mark} {level.upper()} ApiDown"
    assert sections(payload)[0].startswith(f"{mark} *ApiDown*")


def test_slack_warning_and_critical_differ_and_resolved_is_green() -> None:
    critical, warning = slack(group(alert("critical"))), slack(group(alert("warning")))
    assert critical["attachments"][0]["color"] != warning["attachments"][0]["color"]
    assert critical["blocks"][0]["text"]["text"] != warning["blocks"][0]["text"]["text"]
    # A mixed group takes the colour of its worst firing alert.
    mixed = slack(group(alert("warning", check="a"), alert("critical", check="b")))
    assert mixed["attachments"][0]["color"] == "#d32f2f"
    resolved = slack(group(alert("critical", resolved_after=750.0)))
    assert resolved["attachments"][0]["color"] == "#2e7d32"


def test_slack_firing_section_has_summary_description_error_value_runbook() -> None:
    text = sections(slack(group(alert())))[0]
    assert text.split("\n") == [
        "🔴 *ApiDown*",
        "API health check failing",
        "Roll back the last deploy; check the ECS service events.",
        "*Severity:* critical   *Value:* HTTP 503   *Check:* `api_health`",
        "*Error:* `connection refused`",
        f"<{RUNBOOK}|Runbook> · <{EXTERNAL}/|Source>",
    ]


def test_slack_resolved_says_how_long_it_lasted_without_the_old_error() -> None:
    text = sections(slack(group(alert(resolved_after=750.0))))[0]
    assert text.startswith("✅ *ApiDown* resolved after 12m 30s\nAPI health check failing\n")
    assert "Error" not in text and "Roll back" not in text


def test_slack_silence_command_works_as_printed() -> None:
    payload = slack(group(alert(check="api health's")))
    context = payload["blocks"][-1]["elements"][0]["text"]
    command = html.unescape(re.fullmatch(r"Silence: `(.*)`", context)[1])  # type: ignore[index]
    # Exactly the shared command, pointed at this monitor, with what the CLI requires.
    assert command == silence_command({"alertname": "ApiDown", "check": "api health's"}, EXTERNAL)
    # What `monitor silence add` requires is there (tests/test_silence_command.py runs such a
    # line in a shell against a daemon).
    words = shlex.split(command)
    assert words[:3] == ["monitor", "silence", "add"]
    assert words[words.index("--url") + 1] == EXTERNAL and words[words.index("--comment") + 1]
    assert 'check="api health\'s"' in words


def test_slack_user_text_in_error_cannot_ping_or_break_the_code_span() -> None:
    text = sections(slack(group(alert(error="<!channel> `rm -rf` & co"))))[0]
    assert "*Error:* `&lt;!channel&gt; 'rm -rf' &amp; co`" in text


def test_pagerduty_trigger_carries_everything_at_a_glance() -> None:
    event = PagerDutyIntegration("key-0123456789").event(group(alert()))
    payload = event["payload"]
    assert payload["summary"] == "[FIRING:1] ApiDown: API health check failing (error: connection refused)"
    assert payload["severity"] == "critical"
    details = payload["custom_details"]
    assert {k: details[k] for k in ("summary", "description", "error", "value", "runbook", "silence")} == {
        "summary": "API health check failing",
        "description": "Roll back the last deploy; check the ECS service events.",
        "error": "connection refused",
        "value": "HTTP 503",
        "runbook": RUNBOOK,
        "silence": silence_command({"alertname": "ApiDown", "check": "api_health"}, EXTERNAL),
    }
    first = details["firing"][0]
    assert first["labels"]["env"] == "prod" and first["error"] == "connection refused"
    assert first["value"] == "503" and first["value_text"] == "HTTP 503"
    assert event["links"][0] == {"href": RUNBOOK, "text": "Runbook: ApiDown"}


def test_pagerduty_leaves_out_what_an_alert_does_not_have() -> None:
    bare = Alert(fingerprint="f", labels={"alertname": "X", "severity": "warning"}, annotations={}, starts_at=T0)
    details = PagerDutyIntegration("key-0123456789").event(group(bare))["payload"]["custom_details"]
    assert not {"summary", "description", "error", "value", "runbook"} & details.keys()
    assert details["silence"].startswith("monitor silence add alertname=X ")


@pytest.mark.parametrize(("seconds", "text"), [
    (0.5, "500 ms"), (3.2, "3.2 s"), (750, "12m 30s"), (3600, "1h"), (7500, "2h 5m"), (3 * 86400 + 4 * 3600, "3d 4h"),
])
def test_lasted(seconds: float, text: str) -> None:
    assert message.lasted(alert(resolved_after=seconds)) == text


def test_value_text_uses_the_unit() -> None:
    assert message.value_text(alert(value=3.2, unit="seconds")) == "3.2 s"
    assert message.value_text(alert(value=12.0, unit="days")) == "12 days"
    assert message.value_text(alert(value=0.93, unit="ratio")) == "93%"
    assert message.value_text(alert(value=1536.0, unit="bytes")) == "1.5 KiB"
    assert message.value_text(alert(value=87.25, unit="percent")) == "87.25%"
    assert message.value_text(alert(value=42.0, unit="count")) == "42"
    assert message.value_text(alert(value=None)) == ""
    assert message.value_text(alert(value=float("nan"), unit="seconds")) == "NaN"


def test_lasted_counts_from_when_the_condition_first_held() -> None:
    # Pending 2 minutes (`for: 2m`), then firing 1 minute: the outage lasted 3.
    pending_first = Alert(fingerprint="f", labels={"alertname": "X"}, annotations={}, starts_at=T0 + 120,
                          ends_at=T0 + 180, active_at=T0)
    assert message.lasted(pending_first) == "3m"
    assert Alert.from_record(pending_first.to_record()) == pending_first
