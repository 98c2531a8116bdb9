"""Slack incoming webhook: ``text`` for notifications, Block Kit ``blocks`` for the message,
and a coloured attachment so even classic clients show red/green at a glance."""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

import httpx

from monitor.alerting.model import Alert, Notification
from monitor.alerting.receivers.base import (
    DEFAULT_TIMEOUT,
    format_value,
    group_title,
    only_wanted,
    post,
    truncate,
)
from monitor.alerting.receivers.options import COMMON_IGNORED, Lenient, SecretUrl
from monitor.core.durations import Duration

# Slack's documented limits; a message over any of them is rejected whole with a 400, which
# we would classify as permanent, so staying inside them is what keeps an alert deliverable.
MAX_BLOCKS = 50
HEADER_LIMIT = 150  # header block plain_text
SECTION_LIMIT = 3000  # section / context text
# One section per alert keeps each readable; past ten the message scrolls off a phone screen
# and the remainder is summarised.
MAX_ALERT_SECTIONS = 10

FIRING_COLOR = "#d32f2f"
RESOLVED_COLOR = "#2e7d32"
FIRING_MARK = "🔴"
RESOLVED_MARK = "✅"

# Label values that can be pasted into a shell unquoted.
_BARE = re.compile(r"^[A-Za-z0-9_.:/@+-]+$")


class SlackConfig(Lenient):
    """One ``slack_configs`` entry as written: an incoming-webhook Slack receiver."""

    ignored_options: ClassVar[frozenset[str]] = COMMON_IGNORED | {
        "api_url_file", "app_token", "app_token_file", "app_url", "message_text",
        "icon_emoji", "icon_url", "link_names", "username", "actions", "callback_id",
        "color", "fallback", "fields", "footer", "mrkdwn_in", "pretext", "short_fields",
        "title_link", "image_url", "thumb_url", "update_message",
    }  # fmt: skip

    api_url: SecretUrl  # the webhook URL is the credential
    channel: str | None = None
    send_resolved: bool = True  # Alertmanager's own default is false (docs/notifications.md)
    title: str | None = None
    text: str | None = None
    timeout: Duration | None = None  # None: the integration's default deadline


def build(config: SlackConfig) -> SlackIntegration:
    """The integration for one entry; the webhook URL leaves its SecretStr only here."""
    return SlackIntegration(config.api_url.get_secret_value(), channel=config.channel,
                            send_resolved=config.send_resolved, title=config.title, text=config.text,
                            timeout=config.timeout or DEFAULT_TIMEOUT)


class SlackIntegration:
    """One ``slack_configs`` entry.

    ``title`` replaces the group title in the header and fallback text; ``text`` replaces the
    per-alert sections with one section. Both are literal text (rendered upstream if templated).
    The webhook URL is a credential and never appears in errors.
    """

    name = "slack"
    resends = False

    def __init__(
        self,
        api_url: str,
        channel: str | None = None,
        send_resolved: bool = True,
        title: str | None = None,
        text: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.api_url = api_url
        self.channel = channel
        self.send_resolved = send_resolved
        self.title = title
        self.text = text
        self.timeout = timeout

    async def notify(self, notification: Notification, client: httpx.AsyncClient) -> None:
        wanted = only_wanted(notification, self.send_resolved)
        if wanted is None:
            return  # nothing this config wants to hear about: not an error, nothing to retry
        body = json.dumps(self.payload(wanted), ensure_ascii=False).encode()
        await post(client, self.api_url, content=body, timeout=self.timeout)

    def payload(self, notification: Notification) -> dict[str, Any]:
        firing = notification.status == "firing"
        title = self.title or group_title(notification)
        fallback = truncate(title, SECTION_LIMIT)
        payload: dict[str, Any] = {
            "text": fallback,
            "blocks": self._blocks(notification, title),
            "attachments": [{
                "color": FIRING_COLOR if firing else RESOLVED_COLOR,
                "fallback": fallback,
                "text": _counts(notification),
            }],
        }
        if self.channel:
            payload["channel"] = self.channel
        return payload

    def _blocks(self, notification: Notification, title: str) -> list[dict[str, Any]]:
        firing = notification.status == "firing"
        # The marker leads the header so the two states differ before anyone reads a word;
        # header text is plain_text, so it needs no mrkdwn escaping.
        marker = f"{FIRING_MARK} FIRING" if firing else f"{RESOLVED_MARK} RESOLVED"
        blocks: list[dict[str, Any]] = [{
            "type": "header",
            "text": {"type": "plain_text", "text": truncate(f"{marker} {_strip_status(title)}", HEADER_LIMIT),
                     "emoji": True},
        }]
        if self.text is not None:
            blocks.append(_section(_escape(self.text)))
        else:
            # Firing first: on a mixed message the broken things are what the reader needs.
            ordered = sorted(notification.alerts, key=lambda a: a.status != "firing")
            shown = ordered[:MAX_ALERT_SECTIONS]
            blocks.extend(_section(_alert_text(a)) for a in shown)
            hidden = len(ordered) - len(shown) + notification.truncated_alerts
            if hidden > 0:
                blocks.append(_section(f"_…and {hidden} more_"))
        blocks.append(_context(notification))
        # Header + 10 sections + "more" + context is 13, far below 50; the guard keeps it true
        # if someone raises MAX_ALERT_SECTIONS.
        if len(blocks) > MAX_BLOCKS:
            blocks = blocks[: MAX_BLOCKS - 1] + blocks[-1:]
        return blocks


def _alert_text(alert: Alert) -> str:
    mark = FIRING_MARK if alert.status == "firing" else RESOLVED_MARK
    name = alert.labels.get("alertname", "alert")
    lines = [f"{mark} *{_escape(name)}*"]
    summary = alert.annotations.get("summary") or alert.annotations.get("description")
    if summary:
        lines.append(_escape(summary))
    facts = [f"*Severity:* {_escape(alert.labels.get('severity', 'none'))}"]
    if alert.value is not None:
        facts.append(f"*Value:* {format_value(alert.value)}")
    if "check" in alert.labels:
        facts.append(f"*Check:* `{_escape(alert.labels['check'])}`")
    lines.append("   ".join(facts))
    links = []
    if runbook := alert.annotations.get("runbook_url"):
        links.append(f"<{_link(runbook)}|Runbook>")
    if alert.generator_url:
        links.append(f"<{_link(alert.generator_url)}|Source>")
    if links:
        lines.append(" · ".join(links))
    return "\n".join(lines)


def _context(notification: Notification) -> dict[str, Any]:
    elements = []
    hint = _silence_hint(notification)
    if hint:
        elements.append({"type": "mrkdwn", "text": truncate(f"Silence: `{_escape(hint)}`", SECTION_LIMIT)})
    if notification.external_url:
        elements.append({"type": "mrkdwn", "text": f"<{_link(notification.external_url)}|Open monitor>"})
    if not elements:  # a context block must have at least one element
        elements.append({"type": "mrkdwn", "text": _counts(notification)})
    return {"type": "context", "elements": elements}


def _silence_hint(notification: Notification) -> str:
    """The command that silences exactly this group: only labels all its alerts share."""
    common = notification.common_labels
    matchers = [f"{k}={_shell_value(common[k])}" for k in ("alertname", "check") if common.get(k)]
    return f"monitor silence add {' '.join(matchers)}" if matchers else ""


def _shell_value(value: str) -> str:
    return value if _BARE.match(value) else json.dumps(value, ensure_ascii=False)


def _counts(notification: Notification) -> str:
    firing = sum(1 for a in notification.alerts if a.status == "firing")
    resolved = len(notification.alerts) - firing
    parts = [f"{firing} firing"] if firing else []
    if resolved:
        parts.append(f"{resolved} resolved")
    if notification.truncated_alerts:
        parts.append(f"{notification.truncated_alerts} not shown")
    return ", ".join(parts) or "no alerts"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, SECTION_LIMIT)}}


def _strip_status(title: str) -> str:
    """Drop the ``[FIRING:n]`` prefix from the default title: the header's marker says it."""
    if title.startswith("[") and "]" in title:
        head, _, rest = title.partition("]")
        if head[1:].split(":")[0] in ("FIRING", "RESOLVED"):
            count = head.partition(":")[2]
            return f"{rest.strip()} ({count})" if count and count != "1" else rest.strip()
    return title


def _escape(text: str) -> str:
    # Slack's mrkdwn treats these three as control characters; user text (annotations, labels)
    # must not be able to forge links or @-mentions.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(url: str) -> str:
    # Inside <url|label>, '|' and '>' end the URL early; percent-encode them.
    return url.replace("|", "%7C").replace(">", "%3E").replace("<", "%3C")
