"""Receivers: the exact bytes each integration sends, and how every kind of failure is classified.

HTTP is mocked with respx (the shapes are the contract: docs/notifications.md, Slack/PagerDuty/
Alertmanager docs); one test uses a real local aiohttp server, because an HMAC is only worth anything if it
matches the bytes that actually crossed the wire.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from email.utils import formatdate
from typing import Any, get_args

import httpx
import pytest
import respx
from aiohttp import web

from monitor.alerting.config import ReceiverConfig
from monitor.alerting.model import Alert, Notification
from monitor.alerting.receivers import (
    RECEIVERS,
    AlertmanagerIntegration,
    DeliveryError,
    Integration,
    PagerDutyIntegration,
    SlackIntegration,
    WebhookIntegration,
    classify,
    safe_url,
)
from monitor.alerting.receivers.pagerduty import Severity, dedup_key
from monitor.core.clock import FakeClock
from monitor.core.labels import SEVERITIES

SLACK_URL = "https://hooks.slack.com/services/T000SECRET/B000SECRET/XXXXsecretXXXXtoken"
PD_URL = "https://events.pagerduty.com/v2/enqueue"
ROUTING_KEY = "R0UT1NGKEY0123456789abcdefabcdef"
HOOK_URL = "https://hooks.example.com/incoming/abc123def456?token=qs-secret-value"
HMAC_SECRET = "hmac-shared-secret-value"
AM_URL = "http://alertmanager.example:9093"
EXTERNAL = "http://monitor.example:9464"

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
T0_TEXT = "2023-11-14T22:13:20Z"


def alert(
    name: str = "ApiHealthFailing",
    check: str = "api_health",
    *,
    severity: str | None = "critical",
    resolved: bool = False,
    fp: str = "a1b2c3d4e5f60718",
    value: float | None = 3.0,
    unit: str = "",
    error: str = "",
    **annotations: str,
) -> Alert:
    labels = {"alertname": name, "check": check}
    if severity is not None:
        labels["severity"] = severity
    return Alert(
        fingerprint=fp,
        labels=labels,
        annotations={"summary": f"{check} is failing", "runbook_url": f"https://runbooks.example/{name}",
                     **annotations},
        starts_at=T0,
        ends_at=T0 + 300.5 if resolved else None,
        value=value,
        generator_url=f"{EXTERNAL}/checks/{check}",
        unit=unit,
        error=error,
    )


def group(*alerts: Alert, receiver: str = "oncall", truncated: int = 0) -> Notification:
    return Notification(
        receiver=receiver,
        group_key='{}:{alertname="ApiHealthFailing", check="api_health"}',
        group_labels={"alertname": "ApiHealthFailing", "check": "api_health"},
        alerts=list(alerts),
        external_url=EXTERNAL,
        truncated_alerts=truncated,
    )


def body_of(route: respx.Route, call: int = -1) -> Any:
    return json.loads(route.calls[call].request.content)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as c:
        yield c


def test_integrations_satisfy_the_protocol() -> None:
    # The outbox holds them as Integration; a missing name or notify would only show at runtime.
    for integration in (SlackIntegration(SLACK_URL), PagerDutyIntegration(ROUTING_KEY),
                        WebhookIntegration(HOOK_URL), AlertmanagerIntegration(AM_URL)):
        assert isinstance(integration, Integration)
    assert [i.name for i in (SlackIntegration(SLACK_URL), PagerDutyIntegration(ROUTING_KEY),
                             WebhookIntegration(HOOK_URL), AlertmanagerIntegration(AM_URL))] == [
        "slack", "pagerduty", "webhook", "alertmanager"]


def test_each_integration_declares_what_the_outbox_reads() -> None:
    # Only Alertmanager forwarding must keep hearing about what still fires.
    integrations = (SlackIntegration(SLACK_URL, timeout=1.5), PagerDutyIntegration(ROUTING_KEY, timeout=1.5),
                    WebhookIntegration(HOOK_URL, timeout=1.5), AlertmanagerIntegration(AM_URL, timeout=1.5))
    assert [(i.name, i.timeout, i.resends) for i in integrations] == [
        ("slack", 1.5, False), ("pagerduty", 1.5, False), ("webhook", 1.5, False), ("alertmanager", 1.5, True)]


def test_a_receiver_entry_has_one_list_per_table_row_in_table_order() -> None:
    assert list(ReceiverConfig.model_fields) == ["name", *RECEIVERS]
    entry = ReceiverConfig.model_validate({
        "name": "all",
        "alertmanager_configs": [{"url": AM_URL}],
        "slack_configs": [{"api_url": SLACK_URL}],
        "webhook_configs": [{"url": HOOK_URL}],
        "pagerduty_configs": [{"routing_key": ROUTING_KEY}],
        "sns_configs": [{"topic_arn": "arn:aws:sns:eu-central-1:123456789012:alerts"}],
        "email_configs": [{"to": "oncall@example.org", "from": "monitor@example.org",
                           "smarthost": "smtp.example.org:587"}],
    })
    assert [(key, index) for key, index, _ in entry.integrations()] == [(key, 0) for key in RECEIVERS]
    assert [RECEIVERS[key].build(config).name for key, _, config in entry.integrations()] == [
        "slack", "pagerduty", "webhook", "alertmanager", "sns", "email"]


def test_the_pagerduty_severity_type_is_the_shared_severity_list() -> None:
    # The Literal exists for typing only; what is valid, and in which order, is SEVERITIES.
    assert get_args(Severity) == SEVERITIES


# ---- Slack ------------------------------------------------------------------------------------

async def test_slack_firing_payload(client: httpx.AsyncClient) -> None:
    two = group(alert(), alert(check="api_health", fp="ffff", value=None, severity="warning"))
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(SLACK_URL).respond(200, text="ok")
        await SlackIntegration(SLACK_URL, channel="#ops").notify(two, client)
    sent = body_of(route)
    assert route.calls[0].request.headers["content-type"] == "application/json"
    assert sent["channel"] == "#ops"
    assert sent["text"] == "[FIRING:2] ApiHealthFailing api_health"
    assert sent["attachments"] == [{"color": "#d32f2f", "fallback": sent["text"], "text": "2 firing"}]
    header, first, second, context = sent["blocks"]
    assert header == {"type": "header",
                      "text": {"type": "plain_text", "text": "🔴 CRITICAL ApiHealthFailing api_health (2)",
                               "emoji": True}}
    assert first == {"type": "section", "text": {"type": "mrkdwn", "text": (
        "🔴 *ApiHealthFailing*\n"
        "api_health is failing\n"
        "*Severity:* critical   *Value:* 3   *Check:* `api_health`\n"
        f"<https://runbooks.example/ApiHealthFailing|Runbook> · <{EXTERNAL}/checks/api_health|Source>")}}
    assert "*Severity:* warning" in second["text"]["text"] and "*Value:*" not in second["text"]["text"]
    assert context == {"type": "context", "elements": [
        {"type": "mrkdwn", "text": "Silence: `monitor silence add alertname=ApiHealthFailing check=api_health"
                                   f" --duration 1h --comment 'silenced from a notification' --url {EXTERNAL}`"},
        {"type": "mrkdwn", "text": f"<{EXTERNAL}|Open monitor>"},
    ]}


async def test_slack_resolved_looks_different(client: httpx.AsyncClient) -> None:
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(SLACK_URL).respond(200, text="ok")
        slack = SlackIntegration(SLACK_URL)
        await slack.notify(group(alert()), client)
        await slack.notify(group(alert(resolved=True)), client)
    firing, resolved = body_of(route, 0), body_of(route, 1)
    assert resolved["text"] == "[RESOLVED] ApiHealthFailing api_health"
    assert resolved["blocks"][0]["text"]["text"] == "✅ RESOLVED ApiHealthFailing api_health"
    # How long it lasted: from starting to fire (T0) to resolving (T0 + 300.5 s).
    assert resolved["blocks"][1]["text"]["text"].startswith("✅ *ApiHealthFailing* resolved after 5m\n")
    assert resolved["attachments"][0]["color"] == "#2e7d32"
    assert firing["blocks"][0]["text"]["text"] == "🔴 CRITICAL ApiHealthFailing api_health"
    # Nothing to silence once it is over.
    assert all("Silence" not in e["text"] for e in resolved["blocks"][-1]["elements"])
    assert firing["attachments"][0]["color"] != resolved["attachments"][0]["color"]
    assert "channel" not in firing


async def test_slack_send_resolved_false_skips_resolved_only(client: httpx.AsyncClient) -> None:
    slack = SlackIntegration(SLACK_URL, send_resolved=False)
    with respx.mock(assert_all_called=False) as mock:
        route = mock.post(SLACK_URL).respond(200, text="ok")
        await slack.notify(group(alert(resolved=True)), client)  # skipped: no request, no error
        assert route.call_count == 0
        # A mixed group still goes out, without the resolved alert (Alertmanager's behaviour).
        await slack.notify(group(alert(), alert(check="api_health", fp="2", resolved=True)), client)
    sent = body_of(route)
    assert sent["text"] == "[FIRING:1] ApiHealthFailing api_health"
    assert not any("✅" in json.dumps(b, ensure_ascii=False) for b in sent["blocks"])


async def test_slack_overrides_and_escaping(client: httpx.AsyncClient) -> None:
    nasty = alert(summary="<!channel> & <http://evil|click>")
    with respx.mock() as mock:
        route = mock.post(SLACK_URL).respond(200, text="ok")
        await SlackIntegration(SLACK_URL).notify(group(nasty), client)
        await SlackIntegration(SLACK_URL, title="API down", text="See *the dashboard*").notify(group(nasty), client)
    escaped = body_of(route, 0)["blocks"][1]["text"]["text"]
    # User text cannot ping the channel or forge a link.
    assert "&lt;!channel&gt; &amp; &lt;http://evil|click&gt;" in escaped and "<!channel>" not in escaped
    custom = body_of(route, 1)
    assert custom["text"] == "API down"
    assert custom["blocks"][0]["text"]["text"] == "🔴 CRITICAL API down"
    assert custom["blocks"][1]["text"]["text"] == "See *the dashboard*"


async def test_slack_sixty_alerts_stay_within_limits(client: httpx.AsyncClient) -> None:
    many = [alert(check=f"check_{i}", fp=f"{i:016x}", description="x" * 5000, summary="y" * 4000)
            for i in range(60)]
    notification = Notification(receiver="oncall", group_key="{}:{}", group_labels={"alertname": "X" * 300},
                                alerts=many, external_url=EXTERNAL, truncated_alerts=5)
    with respx.mock() as mock:
        route = mock.post(SLACK_URL).respond(200, text="ok")
        await SlackIntegration(SLACK_URL).notify(notification, client)
    sent = body_of(route)
    blocks = sent["blocks"]
    assert len(blocks) <= 50
    assert len(blocks[0]["text"]["text"]) <= 150
    for block in blocks:
        texts = [block["text"]["text"]] if "text" in block else [e["text"] for e in block["elements"]]
        assert all(len(t) <= 3000 for t in texts)
    sections = [b for b in blocks if b["type"] == "section"]
    assert len(sections) == 11  # ten alerts, then the summary of the rest
    assert sections[-1]["text"]["text"] == "_…and 55 more_"  # 50 not shown + 5 truncated upstream
    assert len(sent["text"]) <= 3000
    # No check is common to all 60 alerts, so the hint must not silence only one of them.
    assert blocks[-1]["elements"][0]["text"] == (
        "Silence: `monitor silence add alertname=ApiHealthFailing --duration 1h"
        f" --comment 'silenced from a notification' --url {EXTERNAL}`")


# ---- PagerDuty --------------------------------------------------------------------------------

async def test_pagerduty_trigger_then_resolve_share_dedup_key(client: httpx.AsyncClient) -> None:
    pd = PagerDutyIntegration(ROUTING_KEY)
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(PD_URL).respond(202, json={"status": "success", "message": "Event processed"})
        await pd.notify(group(alert()), client)
        await pd.notify(group(alert(resolved=True)), client)
    trigger, resolve = body_of(route, 0), body_of(route, 1)
    key = dedup_key("oncall", group(alert()).group_key)
    assert trigger == {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": key,
        "payload": {
            "summary": "[FIRING:1] ApiHealthFailing api_health: api_health is failing",
            "source": "api_health",
            "severity": "critical",
            "timestamp": T0_TEXT,
            "custom_details": {
                "summary": "api_health is failing",
                "value": "3",
                "runbook": "https://runbooks.example/ApiHealthFailing",
                "silence": "monitor silence add alertname=ApiHealthFailing check=api_health --duration 1h"
                           f" --comment 'silenced from a notification' --url {EXTERNAL}",
                "firing": [{
                    "labels": {"alertname": "ApiHealthFailing", "check": "api_health", "severity": "critical"},
                    "annotations": {"summary": "api_health is failing",
                                    "runbook_url": "https://runbooks.example/ApiHealthFailing"},
                    "startsAt": T0_TEXT,
                    "value": "3",
                }],
                "resolved": [],
                "num_firing": 1,
                "num_resolved": 0,
                "truncated_alerts": 0,
                "group_labels": {"alertname": "ApiHealthFailing", "check": "api_health"},
                "common_labels": {"alertname": "ApiHealthFailing", "check": "api_health", "severity": "critical"},
            },
        },
        "client": "monitor",
        "client_url": EXTERNAL,
        "links": [{"href": "https://runbooks.example/ApiHealthFailing", "text": "Runbook: ApiHealthFailing"},
                  {"href": EXTERNAL, "text": "Monitor"}],
    }
    # PagerDuty documents resolve as these three fields; the key ties it to the trigger.
    assert resolve == {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": key}


def test_pagerduty_dedup_key_is_stable_bounded_and_per_receiver() -> None:
    long_key = "{}:{" + "x" * 5000 + "}"
    assert dedup_key("a", long_key) == dedup_key("a", long_key)
    assert len(dedup_key("a", long_key)) <= 255
    assert dedup_key("a", "g") != dedup_key("b", "g")


@pytest.mark.parametrize(("labels", "configured", "expected"), [
    (["critical"], None, "critical"),
    (["error"], None, "error"),
    (["warning"], None, "warning"),
    (["info"], None, "info"),
    (["none"], None, "info"),
    (["page-me"], None, "error"),  # unknown
    ([None], None, "error"),  # no severity label: Alertmanager's default
    (["info", "warning", "critical"], None, "critical"),  # the worst firing alert wins
    (["critical"], "warning", "warning"),  # configured severity overrides labels
])
def test_pagerduty_severity(labels: list[str | None], configured: Any, expected: str) -> None:
    alerts = [alert(check="c", fp=str(i), severity=s) for i, s in enumerate(labels)]
    event = PagerDutyIntegration(ROUTING_KEY, severity=configured).event(group(*alerts))
    assert event["payload"]["severity"] == expected


def test_pagerduty_summary_limit_and_source_fallback() -> None:
    mixed = Notification(receiver="r", group_key="k", group_labels={}, external_url="https://mon.example:9464/x",
                         alerts=[alert(check="a", fp="1", summary="s" * 3000), alert(check="b", fp="2")])
    payload = PagerDutyIntegration(ROUTING_KEY).event(mixed)["payload"]
    assert len(payload["summary"]) <= 1024
    assert payload["source"] == "mon.example"  # no common check label: the monitor's host


async def test_pagerduty_send_resolved_false_sends_no_resolve(client: httpx.AsyncClient) -> None:
    with respx.mock(assert_all_called=False) as mock:
        route = mock.post(PD_URL).respond(202)
        await PagerDutyIntegration(ROUTING_KEY, send_resolved=False).notify(group(alert(resolved=True)), client)
    assert route.call_count == 0


# ---- webhook ----------------------------------------------------------------------------------

async def test_webhook_v4_payload_and_signature(client: httpx.AsyncClient) -> None:
    firing, resolved = alert(fp="0000000000000001"), alert(fp="0000000000000002", resolved=True, value=None)
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(HOOK_URL).respond(200)
        await WebhookIntegration(HOOK_URL, hmac_secret=HMAC_SECRET).notify(group(firing, resolved), client)
    request = route.calls[0].request
    raw = request.content
    expected_sig = "sha256=" + hmac.new(HMAC_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    assert request.headers["X-Monitor-Signature"] == expected_sig
    labels = {"alertname": "ApiHealthFailing", "check": "api_health", "severity": "critical"}
    annotations = {"summary": "api_health is failing", "runbook_url": "https://runbooks.example/ApiHealthFailing"}
    assert json.loads(raw) == {
        "version": "4",
        "groupKey": '{}:{alertname="ApiHealthFailing", check="api_health"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "oncall",
        "groupLabels": {"alertname": "ApiHealthFailing", "check": "api_health"},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": EXTERNAL,
        "alerts": [
            {"status": "firing", "labels": labels, "annotations": annotations, "startsAt": T0_TEXT,
             "endsAt": "0001-01-01T00:00:00Z", "generatorURL": f"{EXTERNAL}/checks/api_health",
             "fingerprint": "0000000000000001"},
            {"status": "resolved", "labels": labels, "annotations": annotations, "startsAt": T0_TEXT,
             "endsAt": "2023-11-14T22:18:20.5Z", "generatorURL": f"{EXTERNAL}/checks/api_health",
             "fingerprint": "0000000000000002"},
        ],
    }


async def test_webhook_unsigned_and_max_alerts(client: httpx.AsyncClient) -> None:
    alerts = [alert(fp=f"{i:016x}") for i in range(5)]
    with respx.mock() as mock:
        route = mock.post(HOOK_URL).respond(204)
        await WebhookIntegration(HOOK_URL, max_alerts=2).notify(group(*alerts, truncated=1), client)
    assert "X-Monitor-Signature" not in route.calls[0].request.headers
    sent = body_of(route)
    assert [a["fingerprint"] for a in sent["alerts"]] == [f"{i:016x}" for i in range(2)]
    assert sent["truncatedAlerts"] == 4  # 3 cut here + 1 cut upstream


# ---- Alertmanager -----------------------------------------------------------------------------

async def test_alertmanager_posts_a_list_of_alerts(client: httpx.AsyncClient) -> None:
    resolved = Alert(fingerprint="f", labels={"alertname": "Down", "check": "db", "empty": ""},
                     annotations={"summary": "db down"}, starts_at=T0, ends_at=T0 + 60)
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(f"{AM_URL}/api/v2/alerts").respond(200)
        clock = FakeClock(T0 + 120)
        await AlertmanagerIntegration(AM_URL + "/", clock=clock).notify(group(alert(), resolved), client)
    assert body_of(route) == [
        # Firing: valid for four resend periods from now, so a dead daemon's alerts time out.
        {"labels": {"alertname": "ApiHealthFailing", "check": "api_health", "severity": "critical"},
         "annotations": {"summary": "api_health is failing", "runbook_url": "https://runbooks.example/ApiHealthFailing"},
         "startsAt": T0_TEXT, "endsAt": "2023-11-14T22:19:20Z", "generatorURL": f"{EXTERNAL}/checks/api_health"},
        {"labels": {"alertname": "Down", "check": "db"}, "annotations": {"summary": "db down"},
         "startsAt": T0_TEXT, "endsAt": "2023-11-14T22:14:20Z", "generatorURL": ""},
    ]


# ---- classification ---------------------------------------------------------------------------

def response(status: int, headers: dict[str, str] | None = None, text: str = "") -> httpx.Response:
    return httpx.Response(status, headers=headers, text=text, request=httpx.Request("POST", SLACK_URL))


@pytest.mark.parametrize("status", [200, 202, 204])
def test_2xx_is_delivered(status: int) -> None:
    classify(response(status))


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_temporary(status: int) -> None:
    with pytest.raises(DeliveryError) as caught:
        classify(response(status))
    assert not caught.value.permanent and caught.value.retry_after is None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 301])
def test_other_statuses_are_permanent(status: int) -> None:
    with pytest.raises(DeliveryError) as caught:
        classify(response(status, text="invalid_payload"))
    assert caught.value.permanent
    assert str(caught.value) == f"HTTP {status} from https://hooks.slack.com/…: invalid_payload"


def test_429_with_retry_after_seconds() -> None:
    with pytest.raises(DeliveryError) as caught:
        classify(response(429, {"Retry-After": "7"}))
    assert not caught.value.permanent and caught.value.retry_after == 7.0


def test_429_with_retry_after_http_date() -> None:
    clock = FakeClock(start=T0)
    with pytest.raises(DeliveryError) as caught:
        classify(response(429, {"Retry-After": formatdate(T0 + 120, usegmt=True)}), clock=clock)
    assert not caught.value.permanent and caught.value.retry_after == 120.0


@pytest.mark.parametrize("value", ["soon", "-5", "", "Wed, 99 Foo 2015 07:28:00 GMT"])
def test_unreadable_retry_after_is_still_temporary(value: str) -> None:
    with pytest.raises(DeliveryError) as caught:
        classify(response(429, {"Retry-After": value}))
    assert not caught.value.permanent and caught.value.retry_after is None


async def test_429_through_notify_honours_retry_after(client: httpx.AsyncClient) -> None:
    with respx.mock() as mock:
        mock.post(PD_URL).respond(429, headers={"Retry-After": "7"})
        with pytest.raises(DeliveryError) as caught:
            await PagerDutyIntegration(ROUTING_KEY).notify(group(alert()), client)
    assert not caught.value.permanent and caught.value.retry_after == 7.0


@pytest.mark.parametrize("failure", [
    httpx.ConnectError("[Errno 111] Connection refused"),
    httpx.ConnectTimeout("timed out"),
    httpx.ReadTimeout("timed out"),
    httpx.RemoteProtocolError("Server disconnected without sending a response."),
])
async def test_network_errors_are_temporary(client: httpx.AsyncClient, failure: Exception) -> None:
    with respx.mock() as mock:
        mock.post(SLACK_URL).mock(side_effect=failure)
        with pytest.raises(DeliveryError) as caught:
            await SlackIntegration(SLACK_URL).notify(group(alert()), client)
    assert not caught.value.permanent
    assert "https://hooks.slack.com/…" in str(caught.value)


async def test_overall_deadline_is_temporary(client: httpx.AsyncClient) -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200)

    # The call is cancelled mid-flight, so respx never records it: do not assert it was called.
    with respx.mock(assert_all_called=False) as mock:
        mock.post(HOOK_URL).mock(side_effect=slow)
        with pytest.raises(DeliveryError) as caught:
            await WebhookIntegration(HOOK_URL, timeout=0.05).notify(group(alert()), client)
    assert not caught.value.permanent and "timed out after 0.05s" in str(caught.value)


async def test_unsupported_scheme_is_permanent(client: httpx.AsyncClient) -> None:
    with pytest.raises(DeliveryError) as caught:
        await WebhookIntegration("ftp://files.example/hook").notify(group(alert()), client)
    assert caught.value.permanent


# ---- secrets ----------------------------------------------------------------------------------

SECRETS = ["T000SECRET", "XXXXsecretXXXXtoken", ROUTING_KEY, HMAC_SECRET, "abc123def456", "qs-secret-value"]


def assert_no_secret(error: DeliveryError) -> None:
    text = str(error)
    assert "\n" not in text
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked into {text!r}"


@pytest.mark.parametrize("status", [400, 404, 500])
async def test_errors_never_echo_secrets(client: httpx.AsyncClient, status: int) -> None:
    # Receivers that echo the request back (proxies, debug endpoints) must not leak it either.
    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, text=f"bad request to {request.url}\n{request.content.decode()}")

    integrations: list[tuple[str, Integration]] = [
        (SLACK_URL, SlackIntegration(SLACK_URL)),
        (PD_URL, PagerDutyIntegration(ROUTING_KEY)),
        (HOOK_URL, WebhookIntegration(HOOK_URL, hmac_secret=HMAC_SECRET)),
    ]
    for url, integration in integrations:
        with respx.mock() as mock:
            mock.post(url).mock(side_effect=echo)
            with pytest.raises(DeliveryError) as caught:
                await integration.notify(group(alert(summary=f"{HMAC_SECRET} in an annotation")), client)
        assert_no_secret(caught.value)


async def test_transport_error_mentioning_url_is_scrubbed(client: httpx.AsyncClient) -> None:
    with respx.mock() as mock:
        mock.post(HOOK_URL).mock(side_effect=httpx.ConnectError(f"cannot reach {HOOK_URL}"))
        with pytest.raises(DeliveryError) as caught:
            await WebhookIntegration(HOOK_URL).notify(group(alert()), client)
    assert_no_secret(caught.value)


@pytest.mark.parametrize(("url", "shown"), [
    (SLACK_URL, "https://hooks.slack.com/…"),
    ("https://user:pw@host.example:8443/p?q=1", "https://host.example:8443/…"),
    ("http://127.0.0.1:9093", "http://127.0.0.1:9093/"),
    ("not a url", "<invalid url>"),
])
def test_safe_url(url: str, shown: str) -> None:
    assert safe_url(url) == shown


# ---- the wire ---------------------------------------------------------------------------------

async def test_hmac_matches_the_bytes_on_the_wire(client: httpx.AsyncClient) -> None:
    received: list[tuple[bytes, dict[str, str]]] = []

    async def sink(request: web.Request) -> web.Response:
        received.append((await request.read(), dict(request.headers)))
        if request.path == "/busy":
            return web.Response(status=503, headers={"Retry-After": "3"})
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/{tail:.*}", sink)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        # Non-ASCII text exercises the encoding: signature and body must agree byte for byte.
        notification = group(alert(summary="Zürich → down ✗"))
        await WebhookIntegration(f"http://127.0.0.1:{port}/hook", hmac_secret=HMAC_SECRET).notify(notification, client)
        with pytest.raises(DeliveryError) as caught:
            await WebhookIntegration(f"http://127.0.0.1:{port}/busy").notify(notification, client)
    finally:
        await runner.cleanup()
    raw, headers = received[0]
    expected = "sha256=" + hmac.new(HMAC_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Monitor-Signature"], expected)
    assert json.loads(raw)["alerts"][0]["annotations"]["summary"] == "Zürich → down ✗"
    assert headers["Content-Type"] == "application/json"
    assert not caught.value.permanent and caught.value.retry_after == 3.0
