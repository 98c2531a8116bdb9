"""Slack incoming webhook: ``text`` for notifications, Block Kit ``blocks`` for the message,
and an attachment coloured by severity (green once resolved) so even classic clients tell
critical from warning at a glance. The words come from ``message.py``."""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar, Self

import httpx
from pydantic import field_validator, model_validator

from monitor.alerting.model import Alert, Notification
from monitor.alerting.receivers import message
from monitor.alerting.receivers.base import (
    DEFAULT_TIMEOUT,
    DeliveryError,
    encode,
    group_title,
    only_wanted,
    post,
)
from monitor.alerting.receivers.defaults import ReceiverDefaults
from monitor.alerting.receivers.http_options import (
    CredentialError,
    HttpConfig,
    HttpReceiver,
    read_secret_file,
    readable_file,
)
from monitor.alerting.receivers.options import COMMON_IGNORED, SecretUrl
from monitor.alerting.templating import TemplateSet, render_field
from monitor.core.durations import Duration

# Slack's documented limits; a message over any of them is rejected whole with a 400, which
# we would classify as permanent, so staying inside them is what keeps an alert deliverable
# (docs/notifications.md, "Size limits"). Lengths are counted as `_length` does.
MAX_BLOCKS = 50
HEADER_LIMIT = 150  # header block plain_text
SECTION_LIMIT = 3000  # section text, and any text object (so each context element too)
MAX_CONTEXT_ELEMENTS = 10
# Slack cuts the top-level `text` after 40,000 characters; it is the notification preview,
# for which the group title, cut far shorter, is plenty.
FALLBACK_LIMIT = 3000
# Not in Slack's reference, but Slack answers msg_blocks_too_long when the blocks of one
# message carry more than about 12,000 characters of text in all, well under 50 × 3000. What
# the blocks hold is kept under this, with room for what Slack counts besides the text.
BLOCKS_TEXT_BUDGET = 10_000
# One section per alert keeps each readable; past ten the message scrolls off a phone screen
# and the remainder is summarised.
MAX_ALERT_SECTIONS = 10
# Our own bounds on one piece of an alert's section, so one huge label or annotation cannot
# crowd out the rest: names and label values are cut; a link longer than LINK_LIMIT is left
# out, since a cut URL leads nowhere.
VALUE_LIMIT = 200
LINK_LIMIT = 500
# A context element (the silence command, the monitor link) longer than this is left out:
# a cut command would silence the wrong thing.
CONTEXT_ELEMENT_LIMIT = 1000
# The check's error is one line already (core.results.one_line); this keeps it to a glance.
ERROR_LIMIT = 300


class SlackConfig(HttpReceiver):
    """One ``slack_configs`` entry as written: an incoming-webhook Slack receiver."""

    ignored_options: ClassVar[frozenset[str]] = COMMON_IGNORED | {
        "app_token", "app_token_file", "app_url", "message_text",
        "icon_emoji", "icon_url", "link_names", "username", "actions", "callback_id",
        "color", "fallback", "fields", "footer", "mrkdwn_in", "pretext", "short_fields",
        "title_link", "image_url", "thumb_url", "update_message",
    }  # fmt: skip
    templated_fields: ClassVar[tuple[str, ...]] = ("title", "text", "channel")

    # The webhook URL is the credential. Unset: api_url_file, else global.slack_api_url(_file).
    api_url: SecretUrl | None = None
    api_url_file: str | None = None
    channel: str | None = None
    send_resolved: bool = True  # Alertmanager's own default is false (docs/notifications.md)
    title: str | None = None
    text: str | None = None
    timeout: Duration | None = None  # None: the integration's default deadline

    _file = field_validator("api_url_file")(readable_file)

    @model_validator(mode="after")
    def _one_url(self) -> SlackConfig:
        if self.api_url is not None and self.api_url_file is not None:
            raise ValueError("at most one of api_url and api_url_file may be set")
        return self

    def with_defaults(self, defaults: ReceiverDefaults) -> Self:
        config = super().with_defaults(defaults)
        if config.api_url is None and config.api_url_file is None:
            if defaults.slack_api_url is None and defaults.slack_api_url_file is None:
                raise ValueError("no Slack webhook URL: set api_url (or api_url_file) here or global.slack_api_url")
            config = config.model_copy(update={"api_url": defaults.slack_api_url,
                                               "api_url_file": defaults.slack_api_url_file})
        return config


def build(config: SlackConfig) -> SlackIntegration:
    """The integration for one entry; the webhook URL leaves its SecretStr only here."""
    url = config.api_url.get_secret_value() if config.api_url is not None else ""
    return SlackIntegration(url, channel=config.channel,
                            send_resolved=config.send_resolved, title=config.title, text=config.text,
                            timeout=config.timeout or DEFAULT_TIMEOUT, api_url_file=config.api_url_file,
                            http=config.http_config)


class SlackIntegration:
    """One ``slack_configs`` entry.

    ``title`` replaces the group title in the header and fallback text; ``text`` replaces the
    per-alert sections with one section. Either, and ``channel``, may be an Alertmanager
    template (docs/notifications.md, "Templates"); one that fails falls back to the default.
    The webhook URL is a credential and never appears in errors.
    """

    name = "slack"
    resends = False
    templates: TemplateSet | None = None  # set by build_targets: the config's template files

    def __init__(
        self,
        api_url: str,
        channel: str | None = None,
        send_resolved: bool = True,
        title: str | None = None,
        text: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        api_url_file: str | None = None,
        http: HttpConfig | None = None,
    ) -> None:
        self.api_url = api_url
        self.api_url_file = api_url_file  # read at every send, so a rotated URL needs no reload
        self.http = http
        self.channel = channel
        self.send_resolved = send_resolved
        self.title = title
        self.text = text
        self.timeout = timeout

    async def notify(self, notification: Notification, client: httpx.AsyncClient) -> None:
        wanted = only_wanted(notification, self.send_resolved)
        if wanted is None:
            return  # nothing this config wants to hear about: not an error, nothing to retry
        await post(client, self._url(), content=encode(self.payload(wanted)), timeout=self.timeout, http=self.http)

    def _url(self) -> str:
        if self.api_url_file is None:
            return self.api_url
        try:
            return read_secret_file(self.api_url_file, "api_url_file")
        except CredentialError as err:
            raise DeliveryError(str(err), permanent=False) from None

    def payload(self, notification: Notification) -> dict[str, Any]:
        title = self._render(self.title, notification, "title") or group_title(notification)
        # The top-level text is mrkdwn too (and is what notifications preview): a label value
        # holding `<!channel>` must not ping a whole channel.
        fallback = _cut(_escape(title), FALLBACK_LIMIT)
        payload: dict[str, Any] = {
            "text": fallback,
            "blocks": self._blocks(notification, title),
            "attachments": [{
                "color": message.color(notification),
                "fallback": fallback,
                "text": _counts(notification),
            }],
        }
        channel = self._render(self.channel, notification, "channel")
        if channel:
            payload["channel"] = channel
        return payload

    def _render(self, text: str | None, notification: Notification, field: str, **escape: Any) -> str | None:
        return render_field(self.templates, text, notification, integration=self.name, field=field, **escape)

    def _blocks(self, notification: Notification, title: str) -> list[dict[str, Any]]:
        # The coloured mark and the severity lead the header, so critical, warning and resolved
        # differ before anyone reads a word; header text is plain_text, so it needs no escaping.
        header = {
            "type": "header",
            "text": {"type": "plain_text", "text": _cut(message.headline(notification, _strip_status(title)),
                                                        HEADER_LIMIT), "emoji": True},
        }
        context = _context(notification)
        # What the sections may hold in all: the budget, less what header and context took.
        budget = BLOCKS_TEXT_BUDGET - _block_text_length(header) - _block_text_length(context)
        body: list[dict[str, Any]] = []
        # Escaped mrkdwn: literal text whole; a template's values only, so it can write links.
        text = self._render(self.text, notification, "text", escape=_escape)
        if text is not None:
            # Slack refuses a section with empty text: an empty `text` means no section at all.
            if text.strip():
                body.append(_section(text, min(SECTION_LIMIT, budget)))
        else:
            # Firing first: on a mixed message the broken things are what the reader needs.
            ordered = sorted(notification.alerts, key=lambda a: a.status != "firing")
            # Header and context, and the "more" line, take three of the MAX_BLOCKS.
            shown = ordered[: min(MAX_ALERT_SECTIONS, MAX_BLOCKS - 3)]
            hidden = len(ordered) - len(shown) + notification.truncated_alerts
            more = [_section(f"_…and {hidden} more_")] if hidden > 0 else []
            budget -= sum(_block_text_length(b) for b in more)
            each = min(SECTION_LIMIT, budget // max(1, len(shown)))
            body.extend(_section(_alert_text(a, each), each) for a in shown)
            body.extend(more)
        return [header, *body, context]


def _alert_text(alert: Alert, limit: int) -> str:
    """The alert's section, at most ``limit`` long.

    Name, severity, value, check and the check's error come first (each bounded); then the
    links, each only if it fits whole (a cut URL leads nowhere); the summary, then the
    description (the runbook's remedy) get the room left, each cut with "…".
    """
    text = message.alert_text(alert)
    head = f"{message.mark(alert)} *{_cut(_escape(text.name), VALUE_LIMIT)}*"
    if text.lasted:
        head += f" resolved after {text.lasted}"
    facts = [f"*Severity:* {_cut(_escape(alert.labels.get('severity', 'none')), VALUE_LIMIT)}"]
    if text.value:
        facts.append(f"*Value:* {_cut(_escape(text.value), VALUE_LIMIT)}")  # "NaN", "+Inf": never a bare float
    if text.check:
        facts.append(f"*Check:* `{_cut(_escape(text.check), VALUE_LIMIT)}`")
    lines = [head, "   ".join(facts)]
    if text.error:
        error = text.error.replace("`", "'")  # a backtick would end the code span early
        lines.append(f"*Error:* `{_cut(_escape(error), ERROR_LIMIT)}`")
    used = sum(_length(line) for line in lines) + len(lines) - 1  # and the line breaks

    candidates = []
    if text.runbook:
        candidates.append(f"<{_link(text.runbook)}|Runbook>")
    if alert.generator_url:
        candidates.append(f"<{_link(alert.generator_url)}|Source>")
    link_line = ""
    for link in candidates:
        longer = f"{link_line} · {link}" if link_line else link
        if _length(link) <= LINK_LIMIT and used + 1 + _length(longer) <= limit:
            link_line = longer
    if link_line:
        lines.append(link_line)
        used += 1 + _length(link_line)

    # Summary first, then the description in what is left; a resolved alert needs only the summary.
    prose = [text.summary, text.description if alert.status == "firing" else ""]
    at = 1
    for paragraph in prose:
        room = limit - used - 1  # its line break
        if paragraph and room >= 2:  # at least one character and the "…"
            cut = _cut(_escape(paragraph), room)
            lines.insert(at, cut)
            at += 1
            used += 1 + _length(cut)
    # Only the bounded first lines can be left over the limit, and only for a tiny one: a guard.
    return _cut("\n".join(lines), limit)


def _context(notification: Notification) -> dict[str, Any]:
    elements = []
    hint = _silence_hint(notification)
    if hint:
        elements.append({"type": "mrkdwn", "text": f"Silence: `{_escape(hint)}`"})
    if notification.external_url:
        elements.append({"type": "mrkdwn", "text": f"<{_link(notification.external_url)}|Open monitor>"})
    # Left out rather than cut: a cut command or URL does the wrong thing when used.
    elements = [e for e in elements if _length(e["text"]) <= CONTEXT_ELEMENT_LIMIT]
    if not elements:  # a context block must have at least one element
        elements.append({"type": "mrkdwn", "text": _counts(notification)})
    return {"type": "context", "elements": elements[:MAX_CONTEXT_ELEMENTS]}


def _silence_hint(notification: Notification) -> str:
    """The command that silences exactly this group, complete enough to paste (message.silence)."""
    return message.silence(notification)


def _counts(notification: Notification) -> str:
    firing = sum(1 for a in notification.alerts if a.status == "firing")
    resolved = len(notification.alerts) - firing
    parts = [f"{firing} firing"] if firing else []
    if resolved:
        parts.append(f"{resolved} resolved")
    if notification.truncated_alerts:
        parts.append(f"{notification.truncated_alerts} not shown")
    return ", ".join(parts) or "no alerts"


def _section(text: str, limit: int = SECTION_LIMIT) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, min(limit, SECTION_LIMIT))}}


def _block_text_length(block: dict[str, Any]) -> int:
    """How much text a block carries: its text object's, or its elements' (context)."""
    texts = [block["text"]] if "text" in block else block.get("elements", [])
    return sum(_length(t["text"]) for t in texts)


def _length(text: str) -> int:
    """Length as Slack may count it: UTF-16 code units, so an emoji (🔴) counts two.

    Slack says "characters" without saying which; UTF-16 units are never fewer than code
    points, so a text within the limit this way is within it either way.
    """
    return len(text.encode("utf-16-le")) // 2


def _cut(text: str, limit: int) -> str:
    """At most ``limit`` long (by ``_length``), marked with "…" when cut.

    Never ends inside an escape (``&amp;``, ``&lt;``, ``&gt;``), which would show as a stray
    "&am"; never splits a character.
    """
    if _length(text) <= limit:
        return text
    room = limit - 1  # one unit for the "…"
    end = 0
    while end < len(text):
        units = 2 if ord(text[end]) > 0xFFFF else 1
        if units > room:
            break
        room -= units
        end += 1
    kept = text[:end]
    amp = kept.rfind("&", max(0, len(kept) - 4))
    if amp != -1 and ";" not in kept[amp:]:
        kept = kept[:amp]
    return kept + "…"


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
