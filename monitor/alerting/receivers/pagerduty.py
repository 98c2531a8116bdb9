"""PagerDuty Events API v2: one alert (incident) per notification group, triggered while any
alert in it fires and resolved when all have, tied together by a stable ``dedup_key``.

A ``service_key`` instead of a ``routing_key`` selects the older Events API v1 (generic
``create_event.json``, ``event_type`` and ``incident_key``), as Alertmanager does."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, ClassVar, Literal, Self, TypeGuard
from urllib.parse import urlsplit

import httpx
from pydantic import Field, SecretStr, field_validator, model_validator

from monitor.core.timestamps import rfc3339
from monitor.alerting.model import Alert, Notification
from monitor.alerting.receivers import message
from monitor.alerting.receivers.base import (
    DEFAULT_TIMEOUT,
    DeliveryError,
    encode,
    format_value,
    group_title,
    only_wanted,
    post,
    truncate,
)
from monitor.alerting.receivers.defaults import PAGERDUTY_V2_URL, ReceiverDefaults
from monitor.alerting.receivers.http_options import (
    CredentialError,
    HttpConfig,
    HttpReceiver,
    read_secret_file,
    readable_file,
)
from monitor.alerting.receivers.options import COMMON_IGNORED, Url
from monitor.alerting.templating import TemplateSet, render_field
from monitor.core.durations import Duration
from monitor.core.labels import SEVERITIES

DEFAULT_URL = PAGERDUTY_V2_URL
# Events API v1, used for a `service_key`; Alertmanager always posts v1 events here.
V1_URL = "https://events.pagerduty.com/generic/2010-04-15/create_event.json"
# v1 answers 403 when rate limiting: worth retrying (PagerDuty's v1 retry guidance).
V1_RETRY_STATUSES = (403,)

# For typing only: the values, and their order (most severe first), are SEVERITIES.
Severity = Literal["critical", "error", "warning", "info"]

# PagerDuty's documented limits: an event over them is refused with a 400, which is permanent,
# so the page would be lost (docs/notifications.md, "Size limits").
SUMMARY_LIMIT = 1024  # characters
DEDUP_LIMIT = 255  # characters
# The whole event is limited to 512 KB. Measured in bytes of the UTF-8 body actually sent, and
# kept under 512,000 (the stricter reading of "KB") with room to spare.
MAX_EVENT_BYTES = 500_000
# PagerDuty documents no limit for `source` (nor for component/group/class, which we do not
# send). Ours keeps one huge `check` label from taking the room custom_details is cut to fit.
SOURCE_LIMIT = 1024
# custom_details counts against the event's size; a few dozen alerts say what is needed.
MAX_DETAILED_ALERTS = 50
# When the event is still too big with fewer detailed alerts, label and annotation values in
# custom_details are cut to these lengths in turn (characters), longest first.
VALUE_CAPS = (4096, 1024, 256, 64)


def _is_severity(value: str) -> TypeGuard[Severity]:
    return value in SEVERITIES


class PagerDutyConfig(HttpReceiver):
    """One ``pagerduty_configs`` entry as written: a PagerDuty Events API v2 receiver, or v1
    with ``service_key``."""

    ignored_options: ClassVar[frozenset[str]] = COMMON_IGNORED | {
        "images", "links", "source", "class", "component", "group",
    }  # fmt: skip
    templated_fields: ClassVar[tuple[str, ...]] = ("description", "client", "client_url", "details")

    routing_key: SecretStr | None = None
    routing_key_file: str | None = None
    service_key: SecretStr | None = None
    service_key_file: str | None = None
    # None: global.pagerduty_url for v2; for v1 the v1 endpoint (see V1_URL).
    url: Url | None = None
    # None: derived per notification from the alerts' `severity` label (see severity_of).
    severity: Severity | None = None
    send_resolved: bool = True
    timeout: Duration | None = None
    # Alertmanager templates; unset: our own summary, "monitor", external_url, no extra details.
    description: str | None = None
    client: str | None = None
    client_url: str | None = None
    details: dict[str, str] = Field(default_factory=dict)

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

    _files = field_validator("routing_key_file", "service_key_file")(readable_file)

    @field_validator("routing_key", "service_key")
    @classmethod
    def _key(cls, key: SecretStr | None, info: Any) -> SecretStr | None:
        if key is not None and not key.get_secret_value().strip():
            raise ValueError(f"{info.field_name} is empty (is its ${{VARIABLE}} set?)")
        return key

    @model_validator(mode="after")
    def _one_key(self) -> PagerDutyConfig:
        for name in ("routing_key", "service_key"):
            if getattr(self, name) is not None and getattr(self, f"{name}_file") is not None:
                raise ValueError(f"at most one of {name} and {name}_file may be set")
        if not any((self.routing_key, self.routing_key_file, self.service_key, self.service_key_file)):
            raise ValueError("missing routing_key (Events API v2) or service_key (v1)")
        return self

    @property
    def events_v1(self) -> bool:
        """A service key selects Events API v1, also beside a routing key (as Alertmanager)."""
        return self.service_key is not None or self.service_key_file is not None

    def with_defaults(self, defaults: ReceiverDefaults) -> Self:
        config = super().with_defaults(defaults)
        if config.url is None and not config.events_v1:
            config = config.model_copy(update={"url": defaults.pagerduty_url})
        return config

    def ignored_paths(self) -> list[str]:
        shadowed = [k for k in ("routing_key", "routing_key_file") if getattr(self, k) is not None]
        return super().ignored_paths() + (shadowed if self.events_v1 else [])


def build(config: PagerDutyConfig) -> PagerDutyIntegration:
    """The integration for one entry; the routing key leaves its SecretStr only here."""
    key, key_file = (config.service_key, config.service_key_file) if config.events_v1 \
        else (config.routing_key, config.routing_key_file)
    url = config.url or (V1_URL if config.events_v1 else DEFAULT_URL)
    integration = PagerDutyIntegration(key.get_secret_value() if key is not None else "", url=url,
                                       severity=config.severity, send_resolved=config.send_resolved,
                                       timeout=config.timeout or DEFAULT_TIMEOUT, key_file=key_file,
                                       events_v1=config.events_v1, http=config.http_config)
    integration.texts = {"description": config.description, "client": config.client,
                         "client_url": config.client_url}
    integration.details = config.details
    return integration


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
    templates: TemplateSet | None = None  # set by build_targets: the config's template files
    texts: dict[str, str | None] = {}  # description, client, client_url as configured
    details: dict[str, str] = {}  # extra custom_details, each value a template

    def __init__(
        self,
        routing_key: str,
        url: str = DEFAULT_URL,
        severity: Severity | None = None,
        send_resolved: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        key_file: str | None = None,
        events_v1: bool = False,
        http: HttpConfig | None = None,
    ) -> None:
        # The integration key: the v2 routing key, or the v1 service key with events_v1.
        self.routing_key = routing_key
        self.key_file = key_file  # read at every send instead, so a rotated key needs no reload
        self.events_v1 = events_v1
        self.http = http
        self.url = url
        self.severity = severity
        self.send_resolved = send_resolved
        self.timeout = timeout

    async def notify(self, notification: Notification, client: httpx.AsyncClient) -> None:
        wanted = only_wanted(notification, self.send_resolved)
        if wanted is None:
            return
        key = self._key()
        if self.events_v1:
            await post(client, self.url, content=encode(self.event_v1(wanted, key)), secrets=[key],
                       timeout=self.timeout, http=self.http, retry_statuses=V1_RETRY_STATUSES)
            return
        event = self.event(wanted)
        event["routing_key"] = key
        await post(client, self.url, content=encode(event), secrets=[key], timeout=self.timeout, http=self.http)

    def _key(self) -> str:
        if self.key_file is None:
            return self.routing_key
        what = "service_key_file" if self.events_v1 else "routing_key_file"
        try:
            key = read_secret_file(self.key_file, what)
        except CredentialError as err:
            raise DeliveryError(str(err), permanent=False) from None
        if not key:
            raise DeliveryError(f"{what} {self.key_file!r} is empty", permanent=False)
        return key

    def event_v1(self, notification: Notification, service_key: str) -> dict[str, Any]:
        """The Events API v1 event: ``trigger`` while anything fires, else ``resolve``, with
        the same description and details (Alertmanager sends both on resolves too)."""
        firing = [a for a in notification.alerts if a.status == "firing"]
        resolved = [a for a in notification.alerts if a.status == "resolved"]
        trigger = notification.status != "resolved"
        # Rendered once, as for v2: _fit builds the event several times when it has to shrink it.
        description = self._render("description", notification) or _summary(notification, firing or notification.alerts)
        client = self._render("client", notification) or "monitor"
        client_url = self._render("client_url", notification) or notification.external_url
        extra = self._details(notification)

        def event(details: dict[str, Any], _links: list[dict[str, str]]) -> dict[str, Any]:
            out: dict[str, Any] = {
                "service_key": service_key,
                "event_type": "trigger" if trigger else "resolve",
                "incident_key": dedup_key(notification.receiver, notification.group_key),
                "description": truncate(description, SUMMARY_LIMIT),
                "details": {**details, **extra},
            }
            if trigger:  # client and client_url belong to triggers only (PagerDuty's v1 reference)
                out["client"] = client
                if client_url:
                    out["client_url"] = client_url
            return out

        return _fit(event, notification, firing, resolved)

    def event(self, notification: Notification) -> dict[str, Any]:
        """The event to send, always within PagerDuty's limits (see ``_fit``)."""
        key = dedup_key(notification.receiver, notification.group_key)
        if notification.status == "resolved":
            # PagerDuty documents resolve events as these three fields only; it ignores a
            # payload there, and sending none keeps the resolve small and unambiguous.
            return {"routing_key": self.routing_key, "event_action": "resolve", "dedup_key": key}
        firing = [a for a in notification.alerts if a.status == "firing"]
        resolved = [a for a in notification.alerts if a.status == "resolved"]
        # Rendered once: _fit builds the event several times when it has to shrink it.
        summary = self._render("description", notification) or _summary(notification, firing)
        client = self._render("client", notification) or "monitor"
        client_url = self._render("client_url", notification) or notification.external_url
        extra = self._details(notification)

        def trigger(custom_details: dict[str, Any], links: list[dict[str, str]]) -> dict[str, Any]:
            event: dict[str, Any] = {
                "routing_key": self.routing_key,
                "event_action": "trigger",
                "dedup_key": key,
                "payload": {
                    "summary": truncate(summary, SUMMARY_LIMIT),
                    "source": truncate(_source(notification), SOURCE_LIMIT),
                    # Severity follows what is firing now, not what already recovered.
                    "severity": self.severity or severity_of(firing),
                    "timestamp": rfc3339(min(a.starts_at for a in firing)),
                    "custom_details": {**custom_details, **extra},
                },
                "client": client,
            }
            if client_url:
                event["client_url"] = client_url
            if links:
                event["links"] = links
            return event

        return _fit(trigger, notification, firing, resolved)

    def _render(self, field: str, notification: Notification, text: str | None = None) -> str | None:
        return render_field(self.templates, self.texts.get(field) if text is None else text, notification,
                            integration=self.name, field=field)

    def _details(self, notification: Notification) -> dict[str, str]:
        rendered = {key: self._render(f"details.{key}", notification, value) for key, value in self.details.items()}
        return {key: truncate(value, VALUE_CAPS[0]) for key, value in rendered.items() if value is not None}


_Trigger = Callable[[dict[str, Any], list[dict[str, str]]], dict[str, Any]]


def _fit(trigger: _Trigger, notification: Notification, firing: list[Alert], resolved: list[Alert]) -> dict[str, Any]:
    """The trigger event with as much detail as fits in MAX_EVENT_BYTES.

    Only custom_details (and the runbook links that go with it) shrink; summary, source,
    severity and dedup_key are already bounded and never cut further, so the page itself
    always goes out. In order, until the encoded event fits:

    1. everything (up to MAX_DETAILED_ALERTS firing and as many resolved alerts): the usual case;
    2. fewer detailed alerts, firing ones first, values whole;
    3. the same with label and annotation values cut to each of VALUE_CAPS in turn;
    4. no per-alert details at all, only the counts.

    What was cut is said in the event: ``truncated_alerts`` counts the alerts not detailed and
    ``note`` says why and how values were cut.
    """
    firing_shown = firing[:MAX_DETAILED_ALERTS]
    resolved_shown = resolved[:MAX_DETAILED_ALERTS]
    event = trigger(_custom_details(notification, firing, resolved, firing_shown, resolved_shown),
                    _links(notification, firing))
    if _fits(event):
        return event
    detailed = firing_shown + resolved_shown  # firing first: they are what the responder acts on
    total = len(firing) + len(resolved)

    def shrunk(count: int, cap: int | None) -> dict[str, Any]:
        shown = detailed[:count]
        shown_firing = [a for a in shown if a.status == "firing"]
        shown_resolved = [a for a in shown if a.status == "resolved"]
        note = f"cut to fit PagerDuty's 512 KB event limit: {count} of {total} alerts detailed"
        if cap is not None:
            note += f", label and annotation values cut to {cap} characters"
        details = _custom_details(notification, firing, resolved, shown_firing, shown_resolved, cap=cap)
        details["note"] = note
        # Runbook links follow the alerts still detailed; a link longer than the cap is left
        # out rather than cut, since a cut URL leads nowhere.
        return trigger(details, _links(notification, shown_firing, cap=cap))

    for cap in (None, *VALUE_CAPS):
        if not _fits(shrunk(1, cap)):
            continue
        # The largest number of detailed alerts that fits: size grows with the count.
        low, high = 1, len(detailed)
        while low < high:
            middle = (low + high + 1) // 2
            if _fits(shrunk(middle, cap)):
                low = middle
            else:
                high = middle - 1
        return shrunk(low, cap)
    # Not even one alert with 64-character values fits (thousands of labels, say): send the
    # page with counts only. What is left is bounded by the limits above plus the configured
    # routing key and external_url, so this fits for any sane configuration; if it somehow
    # does not, PagerDuty's 400 reports it as a permanent failure.
    return trigger({
        "num_firing": len(firing),
        "num_resolved": len(resolved),
        "truncated_alerts": notification.truncated_alerts + total,
        "note": f"cut to fit PagerDuty's 512 KB event limit: details of all {total} alerts left out",
    }, _links(notification, []))


def _fits(event: dict[str, Any]) -> bool:
    # Bytes of the UTF-8 body as sent, not characters: non-ASCII text takes 2-4 bytes each.
    return len(encode(event)) <= MAX_EVENT_BYTES


def _custom_details(
    notification: Notification,
    firing: list[Alert],
    resolved: list[Alert],
    firing_shown: list[Alert],
    resolved_shown: list[Alert],
    cap: int | None = None,
) -> dict[str, Any]:
    return {
        **_at_a_glance(notification, firing, cap),
        "firing": [_details(a, cap) for a in firing_shown],
        "resolved": [_details(a, cap) for a in resolved_shown],
        "num_firing": len(firing),
        "num_resolved": len(resolved),
        "truncated_alerts": notification.truncated_alerts
        + len(firing) - len(firing_shown)
        + len(resolved) - len(resolved_shown),
        "group_labels": _capped(notification.group_labels, cap),
        "common_labels": _capped(notification.common_labels, cap),
    }


def _at_a_glance(notification: Notification, firing: list[Alert], cap: int | None) -> dict[str, str]:
    """What the responder reads first, from the first firing alert (message.py): its summary,
    description, the check's error, the value with its unit, the runbook and the command that
    silences the group. Empty ones are left out."""
    text = message.alert_text(firing[0]) if firing else None
    fields = {
        "summary": text.summary if text else "",
        "description": text.description if text else "",
        "error": text.error if text else "",
        "value": text.value if text else "",
        "runbook": text.runbook if text else "",
        "silence": message.silence(notification),
    }
    # The silence command is never cut (a cut one silences the wrong thing): left out instead.
    if cap is not None and len(fields["silence"]) > cap:
        fields["silence"] = ""
    return {k: v for k, v in _capped({k: v for k, v in fields.items() if k != "silence"}, cap).items() if v} | (
        {"silence": fields["silence"]} if fields["silence"] else {})


def _summary(notification: Notification, firing: list[Alert]) -> str:
    """``[FIRING:2] ApiHealthFailing api_health: <first summary annotation> (error: <the check's error>)``."""
    title = group_title(notification)
    summary = notification.common_annotations.get("summary") or firing[0].annotations.get("summary", "")
    text = f"{title}: {summary}" if summary else title
    error = firing[0].error
    return f"{text} (error: {error})" if error else text


def _source(notification: Notification) -> str:
    """Where the trouble is: the group's check if it has one, else this monitor's host."""
    check = notification.common_labels.get("check")
    if check:
        return check
    host = urlsplit(notification.external_url).hostname if notification.external_url else None
    return host or "monitor"


def _details(alert: Alert, cap: int | None = None) -> dict[str, Any]:
    details: dict[str, Any] = {
        "labels": _capped(alert.labels, cap),
        "annotations": _capped(alert.annotations, cap),
        "startsAt": rfc3339(alert.starts_at),
    }
    if alert.ends_at is not None:
        details["endsAt"] = rfc3339(alert.ends_at)
    if alert.value is not None:
        # A string, as Prometheus shows values: NaN and ±Inf are not JSON numbers.
        details["value"] = format_value(alert.value)
        if alert.unit:
            details["value_text"] = message.value_text(alert)
    if alert.error and alert.status == "firing":
        details["error"] = alert.error if cap is None else truncate(alert.error, cap)
    return details


def _capped(values: dict[str, str], cap: int | None) -> dict[str, str]:
    if cap is None:
        return values
    return {name: truncate(value, cap) for name, value in values.items()}


def _links(notification: Notification, firing: list[Alert], cap: int | None = None) -> list[dict[str, str]]:
    links: list[dict[str, str]] = []
    seen: set[str] = set()
    for alert in firing:
        runbook = alert.annotations.get("runbook_url", "")
        if runbook and runbook not in seen and (cap is None or len(runbook) <= cap):
            seen.add(runbook)
            name = alert.labels.get("alertname", "")
            text = f"Runbook: {name}" if name else "Runbook"
            links.append({"href": runbook, "text": text if cap is None else truncate(text, cap)})
    if notification.external_url:
        links.append({"href": notification.external_url, "text": "Monitor"})
    return links
