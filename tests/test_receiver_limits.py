"""Receivers' size limits, and non-finite values: whatever a notification holds, every
integration sends something its receiver accepts (docs/notifications.md, "Size limits").

The limits are written out here again, from the receivers' own documentation, rather than
imported from the integrations: a wrong constant there must fail these tests, not pass them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import respx
from aiohttp import web
from pydantic import ValidationError

import monitor.alerting.receivers.pagerduty as pagerduty
from monitor.alerting.model import Alert, Notification
from monitor.alerting.receivers import (
    AlertmanagerIntegration,
    DeliveryError,
    Integration,
    PagerDutyIntegration,
    SlackIntegration,
    WebhookIntegration,
)
from monitor.alerting.receivers.pagerduty import dedup_key
from monitor.alerting.receivers.webhook import WebhookConfig
from monitor.core.clock import FakeClock
from monitor.core.records import OutboxEntry, StateChange
from monitor.store.sqlite import SqliteStore

SLACK_URL = "https://hooks.slack.com/services/T000/B000/XXXX"
PD_URL = "https://events.pagerduty.com/v2/enqueue"
ROUTING_KEY = "R0UT1NGKEY0123456789abcdefabcdef"
HOOK_URL = "https://hooks.example.com/incoming"
AM_URL = "http://alertmanager.example:9093"
EXTERNAL = "http://monitor.example:9464"
T0 = 1_700_000_000.0

# PagerDuty (Events API v2): "payloads are limited to 512 KB" -- read as 512,000 bytes, the
# stricter of the two readings -- summary at most 1024 characters, dedup_key at most 255.
PD_MAX_BODY = 512_000
PD_SUMMARY = 1024
PD_DEDUP = 255


def alert(
    i: int = 0,
    *,
    name: str = "DiskFull",
    check: str | None = None,
    resolved: bool = False,
    value: float | None = 97.5,
    labels: dict[str, str] | None = None,
    **annotations: str,
) -> Alert:
    return Alert(
        fingerprint=f"{i:016x}",
        labels={"alertname": name, "check": check if check is not None else f"disk_{i}", "severity": "critical",
                **(labels or {})},
        annotations={"summary": f"disk {i} is full", "runbook_url": f"https://runbooks.example/disk/{i}",
                     **annotations},
        starts_at=T0 + i,
        ends_at=T0 + 600 if resolved else None,
        value=value,
        generator_url=f"{EXTERNAL}/checks/disk_{i}",
    )


def group(alerts: list[Alert], *, truncated: int = 0, group_labels: dict[str, str] | None = None,
          external_url: str = EXTERNAL) -> Notification:
    return Notification(
        receiver="oncall",
        group_key='{}:{alertname="DiskFull"}',
        group_labels={"alertname": "DiskFull"} if group_labels is None else group_labels,
        alerts=alerts,
        external_url=external_url,
        truncated_alerts=truncated,
    )


def no_nan(token: str) -> Any:
    raise AssertionError(f"{token} in a JSON body: not JSON, receivers refuse it")


def strict_json(raw: bytes) -> Any:
    """Parse as a strict JSON parser (Go's, PagerDuty's) would: NaN/Infinity are errors."""
    return json.loads(raw, parse_constant=no_nan)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as c:
        yield c


# ---- PagerDuty: the event always fits ----------------------------------------------------------

class SizeCheckingSink:
    """A local PagerDuty stand-in: 400 for a body over 512 KB, as PagerDuty answers, else 202."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.answers: list[int] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _enqueue(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.bodies.append(body)
        if len(body) > PD_MAX_BODY:
            self.answers.append(400)
            return web.json_response({"status": "invalid event", "message": "Event object is invalid",
                                      "errors": ["Event too large"]}, status=400)
        self.answers.append(202)
        return web.json_response({"status": "success", "message": "Event processed"}, status=202)

    async def start(self) -> None:
        app = web.Application(client_max_size=16 * 1024 * 1024)  # let the too-big ones in, to refuse them
        app.router.add_post("/v2/enqueue", self._enqueue)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/v2/enqueue"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def pd_sink() -> AsyncIterator[SizeCheckingSink]:
    sink = SizeCheckingSink()
    await sink.start()
    try:
        yield sink
    finally:
        await sink.stop()


def two_megabytes() -> Notification:
    # 60 firing alerts with ~35 KB of annotations each, in 2- and 3-byte UTF-8 characters, so
    # counting characters instead of bytes would under-count by half.
    text = "Zürich ✗ disk full on /var/lib/data " * 1000
    alerts = [alert(i, description=text, details=text[:1000]) for i in range(60)]
    notification = group(alerts)
    assert sum(len(v.encode()) for a in alerts for v in a.annotations.values()) > 2_000_000
    return notification


def unlimited(monkeypatch: pytest.MonkeyPatch, notification: Notification) -> dict[str, Any]:
    """The event as it was before the size limit: everything, however big."""
    with monkeypatch.context() as patch:
        patch.setattr(pagerduty, "MAX_EVENT_BYTES", 10**12)
        return PagerDutyIntegration(ROUTING_KEY).event(notification)


async def test_pagerduty_two_megabyte_group_is_accepted_by_a_size_checking_sink(
    client: httpx.AsyncClient, pd_sink: SizeCheckingSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    notification = two_megabytes()
    await PagerDutyIntegration(ROUTING_KEY, url=pd_sink.url).notify(notification, client)

    assert pd_sink.answers == [202]
    raw = pd_sink.bodies[0]
    assert len(raw) <= 500_000
    sent = strict_json(raw)
    full = unlimited(monkeypatch, notification)
    # The page itself is intact: what PagerDuty shows and dedups by.
    assert sent["event_action"] == "trigger"
    assert sent["dedup_key"] == dedup_key("oncall", notification.group_key) == full["dedup_key"]
    assert len(sent["dedup_key"]) <= PD_DEDUP
    assert sent["payload"]["summary"] == full["payload"]["summary"] == "[FIRING:60] DiskFull: disk 0 is full"
    for field in ("source", "severity", "timestamp"):
        assert sent["payload"][field] == full["payload"][field]
    # What was cut is said: every alert is either detailed or counted as truncated.
    details = sent["payload"]["custom_details"]
    assert details["num_firing"] == 60
    assert 0 < len(details["firing"]) < 60
    assert len(details["firing"]) + details["truncated_alerts"] == 60
    assert details["note"] == (f"cut to fit PagerDuty's 512 KB event limit: {len(details['firing'])} of 60 "
                               "alerts detailed")
    # Fewer alerts come first: the ones still detailed are whole.
    assert details["firing"][0]["annotations"] == notification.alerts[0].annotations


async def test_the_size_checking_sink_refuses_the_uncut_event(
    client: httpx.AsyncClient, pd_sink: SizeCheckingSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The finding: without the limit the same group is a 1.7+ MB event, refused for good.
    monkeypatch.setattr(pagerduty, "MAX_EVENT_BYTES", 10**12)
    with pytest.raises(DeliveryError) as caught:
        await PagerDutyIntegration(ROUTING_KEY, url=pd_sink.url).notify(two_megabytes(), client)
    assert caught.value.permanent and pd_sink.answers == [400]
    assert len(pd_sink.bodies[0]) > 1_500_000


def fitted(notification: Notification) -> tuple[dict[str, Any], bytes]:
    event = PagerDutyIntegration(ROUTING_KEY).event(notification)
    raw = json.dumps(event, ensure_ascii=False, allow_nan=False).encode()
    assert len(raw) <= 500_000, len(raw)
    assert len(event["payload"]["summary"]) <= PD_SUMMARY and len(event["dedup_key"]) <= PD_DEDUP
    return event, raw


def test_pagerduty_small_event_is_not_cut() -> None:
    event, _ = fitted(group([alert(i) for i in range(3)]))
    details = event["payload"]["custom_details"]
    assert "note" not in details and details["truncated_alerts"] == 0 and len(details["firing"]) == 3
    assert [link["href"] for link in event["links"]] == [
        "https://runbooks.example/disk/0", "https://runbooks.example/disk/1", "https://runbooks.example/disk/2",
        EXTERNAL]


def test_pagerduty_cuts_values_when_one_alert_is_too_big() -> None:
    # One alert alone is over the limit: it stays detailed, with its long values cut.
    huge = "x" * 1_000_000
    event, _ = fitted(group([alert(0, description=huge, labels={"blob": huge})], truncated=2))
    details = event["payload"]["custom_details"]
    (only,) = details["firing"]
    assert only["annotations"]["description"] == "x" * 4095 + "…"
    assert only["labels"]["blob"] == "x" * 4095 + "…"
    assert only["annotations"]["summary"] == "disk 0 is full"  # short values are untouched
    assert details["truncated_alerts"] == 2  # only those cut upstream
    assert details["note"] == ("cut to fit PagerDuty's 512 KB event limit: 1 of 1 alerts detailed, "
                               "label and annotation values cut to 4096 characters")
    assert event["payload"]["summary"] == "[FIRING:1] DiskFull: disk 0 is full"


def test_pagerduty_counts_bytes_not_characters() -> None:
    # 200,000 four-byte characters: 800 KB on the wire, though only 200,000 characters.
    event, raw = fitted(group([alert(0, description="😀" * 200_000)]))
    assert len(raw) <= 500_000
    assert event["payload"]["custom_details"]["firing"][0]["annotations"]["description"].endswith("…")


def test_pagerduty_drops_details_last_and_keeps_the_page() -> None:
    # 20,000 labels: even with every value cut to 64 characters one alert is over 1 MB.
    labels = {f"label_{n:05d}": "v" * 100 for n in range(20_000)}
    notification = group([alert(0, labels=labels), alert(1, labels=labels, resolved=True)], truncated=1)
    event, _ = fitted(notification)
    assert event["payload"]["custom_details"] == {
        "num_firing": 1,
        "num_resolved": 1,
        "truncated_alerts": 3,
        "note": "cut to fit PagerDuty's 512 KB event limit: details of all 2 alerts left out",
    }
    assert event["payload"]["summary"] == "[FIRING:1] DiskFull: disk 0 is full"
    assert event["payload"]["severity"] == "critical"
    assert event["dedup_key"] == dedup_key("oncall", notification.group_key)
    assert event["links"] == [{"href": EXTERNAL, "text": "Monitor"}]


def test_pagerduty_many_long_runbook_links_fit() -> None:
    # 500 distinct 2 KB runbook URLs are 1 MB of links alone: links follow the detailed alerts.
    alerts = [alert(i, runbook_url=f"https://runbooks.example/{i}/" + "r" * 2000) for i in range(500)]
    event, _ = fitted(group(alerts))
    details = event["payload"]["custom_details"]
    detailed = {a["labels"]["check"] for a in details["firing"]}
    runbooks = [link for link in event["links"] if link["text"] != "Monitor"]
    assert 0 < len(runbooks) == len(details["firing"]) < 500
    assert {link["text"] for link in runbooks} == {"Runbook: DiskFull"}
    assert all(link["href"].split("/")[3] in {c.removeprefix("disk_") for c in detailed} for link in runbooks)
    assert details["truncated_alerts"] == 500 - len(details["firing"])


def test_pagerduty_bounds_source_and_huge_group_labels() -> None:
    # One check label of 1 MB shared by every alert: source and group/common labels.
    check = "c" * 1_000_000
    notification = group([alert(i, check=check) for i in range(3)], group_labels={"check": check})
    event, _ = fitted(notification)
    assert event["payload"]["source"] == "c" * 1023 + "…"
    details = event["payload"]["custom_details"]
    assert details["group_labels"] == {"check": "c" * 4095 + "…"}
    assert len(details["firing"]) == 3


@pytest.mark.parametrize(("count", "size"), [(1, 600_000), (10, 60_000), (100, 6_000), (500, 10_000), (2000, 300)])
def test_pagerduty_any_group_fits_with_its_page_intact(count: int, size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    alerts = [alert(i, resolved=i % 3 == 2, description="ä" * size) for i in range(count)]
    notification = group(alerts, truncated=7)
    event, _ = fitted(notification)
    full = unlimited(monkeypatch, notification)
    assert event["dedup_key"] == full["dedup_key"]
    for field in ("summary", "source", "severity", "timestamp"):
        assert event["payload"][field] == full["payload"][field]
    details = event["payload"]["custom_details"]
    shown = len(details.get("firing", [])) + len(details.get("resolved", []))
    assert details["truncated_alerts"] == count + 7 - shown


# ---- Slack: every documented limit holds ------------------------------------------------------

# Slack's Block Kit and chat.postMessage limits.
SLACK_MAX_BLOCKS = 50
SLACK_HEADER = 150
SLACK_TEXT_OBJECT = 3000  # a section's text; any text object, so each context element too
SLACK_SECTION_FIELDS = 10
SLACK_FIELD = 2000
SLACK_CONTEXT_ELEMENTS = 10
SLACK_TEXT = 40_000  # top-level text
# Undocumented, but Slack answers msg_blocks_too_long past about 12,000 characters of block
# text in one message (reported by Slack's SDK maintainers).
SLACK_BLOCKS_TEXT = 12_000


def slack_length(text: str) -> int:
    # Slack says "characters"; UTF-16 units never under-count, whatever Slack means.
    return len(text.encode("utf-16-le")) // 2


def slack_violations(payload: dict[str, Any]) -> list[str]:
    """Every way ``payload`` breaks Slack's limits; [] when Slack would take it."""
    problems: list[str] = []

    def text_object(where: str, obj: Any, limit: int, kinds: tuple[str, ...] = ("mrkdwn", "plain_text")) -> int:
        if not isinstance(obj, dict) or obj.get("type") not in kinds or not isinstance(obj.get("text"), str):
            problems.append(f"{where}: not a {'/'.join(kinds)} text object: {obj!r:.200}")
            return 0
        length = slack_length(obj["text"])
        if not obj["text"].strip():
            problems.append(f"{where}: empty text")
        if length > limit:
            problems.append(f"{where}: {length} characters, limit {limit}")
        if obj["type"] == "mrkdwn" and re.search(r"&(?!amp;|lt;|gt;)", obj["text"]):
            problems.append(f"{where}: a cut or unescaped '&' entity")
        return length

    text = payload.get("text")
    if not isinstance(text, str) or not text.strip():
        problems.append("text: missing or empty")
    elif slack_length(text) > SLACK_TEXT:
        problems.append(f"text: {slack_length(text)} characters, limit {SLACK_TEXT}")
    blocks = payload.get("blocks", [])
    if not 1 <= len(blocks) <= SLACK_MAX_BLOCKS:
        problems.append(f"blocks: {len(blocks)}, limit {SLACK_MAX_BLOCKS}")
    total = 0
    for n, block in enumerate(blocks):
        where = f"blocks[{n}] ({block.get('type')})"
        if block.get("type") == "header":
            total += text_object(where, block.get("text"), SLACK_HEADER, ("plain_text",))
        elif block.get("type") == "section":
            if "text" in block:
                total += text_object(where, block["text"], SLACK_TEXT_OBJECT)
            fields = block.get("fields", [])
            if len(fields) > SLACK_SECTION_FIELDS:
                problems.append(f"{where}: {len(fields)} fields, limit {SLACK_SECTION_FIELDS}")
            total += sum(text_object(f"{where}.fields[{i}]", f, SLACK_FIELD) for i, f in enumerate(fields))
            if "text" not in block and not fields:
                problems.append(f"{where}: neither text nor fields")
        elif block.get("type") == "context":
            elements = block.get("elements", [])
            if not 1 <= len(elements) <= SLACK_CONTEXT_ELEMENTS:
                problems.append(f"{where}: {len(elements)} elements, limit {SLACK_CONTEXT_ELEMENTS}")
            total += sum(text_object(f"{where}.elements[{i}]", e, SLACK_TEXT_OBJECT) for i, e in enumerate(elements))
        else:
            problems.append(f"{where}: unexpected block type")
    if total > SLACK_BLOCKS_TEXT:
        problems.append(f"blocks: {total} characters of text in all, about {SLACK_BLOCKS_TEXT} is refused")
    return problems


def slack_payload(notification: Notification, **config: Any) -> dict[str, Any]:
    payload = SlackIntegration(SLACK_URL, **config).payload(notification)
    assert slack_violations(payload) == []
    return payload


def test_the_slack_validator_catches_each_limit() -> None:
    ok = slack_payload(group([alert()]))
    broken = json.loads(json.dumps(ok))
    broken["blocks"][0]["text"]["text"] = "h" * 151
    broken["blocks"][1]["text"]["text"] = "s" * 3001 + " &am"
    broken["blocks"][-1]["elements"] *= 6
    broken["blocks"] += [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 2000}}] * 49
    broken["text"] = ""
    problems = slack_violations(broken)
    assert [p.split(":")[0] for p in problems] == [
        "text", "blocks", "blocks[0] (header)", "blocks[1] (section)", "blocks[1] (section)",
        "blocks[2] (context)", "blocks"]


async def test_slack_500_alerts_with_10kb_annotations_satisfy_every_limit(client: httpx.AsyncClient) -> None:
    many_labels = {f"label_{n}": f"value {n} " * 20 for n in range(100)}
    alerts = [alert(i, resolved=i % 5 == 4, labels=many_labels, summary="S" * 10_000, description="D" * 10_000)
              for i in range(500)]
    notification = group(alerts, truncated=3)
    with respx.mock() as mock:
        route = mock.post(SLACK_URL).respond(200, text="ok")
        await SlackIntegration(SLACK_URL).notify(notification, client)
    sent = strict_json(route.calls[0].request.content)
    assert slack_violations(sent) == []
    sections = [b["text"]["text"] for b in sent["blocks"] if b["type"] == "section"]
    # Ten alerts, firing first, each with its facts and links and a visibly cut summary...
    assert len(sections) == 11
    assert all(s.startswith("🔴 *DiskFull*\nSSS") for s in sections[:10])
    assert all("…\n*Severity:* critical" in s and "|Runbook> · <" in s for s in sections[:10])
    # ...then the rest, counted: 490 not shown here, 3 cut upstream.
    assert sections[-1] == "_…and 493 more_"


@pytest.mark.parametrize("case", [
    "huge title", "huge text", "empty text", "huge names", "emoji", "entities", "long urls", "resolved",
])
def test_slack_limits_hold_for_any_notification(case: str) -> None:
    config: dict[str, Any] = {}
    alerts = [alert(i, summary="x" * 5000) for i in range(12)]
    external = EXTERNAL
    if case == "huge title":
        config["title"] = "T" * 100_000
    elif case == "huge text":
        config["text"] = "<!channel> " * 10_000
    elif case == "empty text":
        config["text"] = "  "
    elif case == "huge names":
        alerts = [alert(i, name="N" * 50_000, check="c" * 50_000, labels={"severity": "s" * 50_000})
                  for i in range(3)]
    elif case == "emoji":
        # Astral characters count two UTF-16 units each: 🔥 × 3000 is 6000 units.
        alerts = [alert(i, name="🔥" * 3000, summary="🔥" * 3000) for i in range(12)]
        config["title"] = "🔥" * 3000
    elif case == "entities":
        alerts = [alert(i, summary="<&>" * 5000) for i in range(12)]
    elif case == "long urls":
        alerts = [alert(i, runbook_url="https://r.example/" + "u" * 5000) for i in range(3)]
        external = "https://monitor.example/" + "m" * 5000
    elif case == "resolved":
        alerts = [alert(i, resolved=True, summary="y" * 5000) for i in range(60)]
    payload = slack_payload(group(alerts, external_url=external), **config)
    blocks = payload["blocks"]
    if case == "empty text":
        assert [b["type"] for b in blocks] == ["header", "context"]
    if case == "huge text":
        assert blocks[1]["text"]["text"].endswith("…") and "<!channel>" not in blocks[1]["text"]["text"]
    if case == "long urls":
        # A link too long to send whole is left out, never cut into a broken one.
        assert all("|Runbook>" not in b["text"]["text"] for b in blocks if b["type"] == "section")
        assert all("Open monitor" not in e["text"] for e in blocks[-1]["elements"])
    if case == "huge names":
        # A cut silence command would silence the wrong thing: it is left out instead.
        assert all("Silence" not in e["text"] for e in blocks[-1]["elements"])


# ---- webhook: max_alerts, as Alertmanager's --------------------------------------------------

def test_webhook_max_alerts_zero_sends_every_alert() -> None:
    payload = WebhookIntegration(HOOK_URL).payload(group([alert(i) for i in range(500)], truncated=2))
    assert len(payload["alerts"]) == 500 and payload["truncatedAlerts"] == 2


def test_webhook_max_alerts_at_or_above_the_count_cuts_nothing() -> None:
    alerts = [alert(i) for i in range(3)]
    for limit in (3, 4):
        payload = WebhookIntegration(HOOK_URL, max_alerts=limit).payload(group(alerts))
        assert [a["fingerprint"] for a in payload["alerts"]] == [a.fingerprint for a in alerts]
        assert payload["truncatedAlerts"] == 0


def test_webhook_max_alerts_keeps_describing_the_whole_group() -> None:
    # The kept alert is resolved, the cut one fires: status and common labels are the group's
    # (docs/notifications.md), so a consumer is not told a firing group has resolved.
    alerts = [alert(0, resolved=True, labels={"zone": "a"}), alert(1, labels={"zone": "b"})]
    payload = WebhookIntegration(HOOK_URL, max_alerts=1).payload(group(alerts))
    assert [a["status"] for a in payload["alerts"]] == ["resolved"]
    assert payload["truncatedAlerts"] == 1
    assert payload["status"] == "firing"
    assert "zone" not in payload["commonLabels"]


def test_webhook_max_alerts_config() -> None:
    assert WebhookConfig.model_validate({"url": HOOK_URL}).max_alerts == 0
    assert WebhookConfig.model_validate({"url": HOOK_URL, "max_alerts": 10}).max_alerts == 10
    with pytest.raises(ValidationError):
        WebhookConfig.model_validate({"url": HOOK_URL, "max_alerts": -1})


# ---- non-finite values -----------------------------------------------------------------------

NON_FINITE = [math.nan, math.inf, -math.inf]


def values_of(notification: Notification) -> list[float | None]:
    return [a.value for a in notification.alerts]


def same_values(got: list[float | None], expected: list[float | None]) -> bool:
    """Equal, NaN counting as equal to NaN."""
    def same(g: float | None, e: float | None) -> bool:
        if g is None or e is None:
            return g is e
        return g == e or (math.isnan(g) and math.isnan(e))

    return len(got) == len(expected) and all(same(g, e) for g, e in zip(got, expected))


def test_notification_record_round_trips_nan_and_inf_as_json() -> None:
    values: list[float | None] = [*NON_FINITE, 0.5, None]
    notification = group([alert(i, value=v) for i, v in enumerate(values)])
    text = json.dumps(notification.to_record(), allow_nan=False)  # what the store writes
    assert "NaN" in text and "+Inf" in text and "-Inf" in text  # as strings, which JSON can hold
    back = Notification.from_record(json.loads(text))
    assert same_values(values_of(back), values)
    assert back.alerts[3] == notification.alerts[3] and back.alerts[4] == notification.alerts[4]
    assert back.to_record() == notification.to_record()


def test_alert_records_written_before_keep_loading() -> None:
    # Records in a store written before values were spelled out: numbers and nulls.
    old = {"fingerprint": "f", "labels": {}, "annotations": {}, "starts_at": T0, "ends_at": None,
           "value": 3, "generator_url": ""}
    assert Alert.from_record(old).value == 3.0
    assert Alert.from_record({**old, "value": None}).value is None
    with pytest.raises(ValueError, match="alert value"):
        Alert.from_record({**old, "value": "lots"})


async def test_nan_survives_the_state_store(tmp_path: Any) -> None:
    # The outbox row and the group's "told" record both hold the alert; with NaN in them the
    # store refused the whole change (and the writer retried it forever).
    notification = group([alert(0, value=math.nan), alert(1, value=-math.inf)])
    store = SqliteStore(str(tmp_path / "state.db"))
    await store.open()
    try:
        await store.commit(StateChange(
            outbox=[OutboxEntry(id="e1", seq=1, target="oncall/webhook_configs/0",
                                payload=notification.to_record(), created_at=T0)],
            groups={"g1": {"told": {a.fingerprint: a.to_record() for a in notification.alerts}}},
        ))
        (entry,) = await store.load_outbox()
        groups = await store.load_groups()
    finally:
        await store.close()
    assert same_values(values_of(Notification.from_record(entry.payload)), [math.nan, -math.inf])
    told = [Alert.from_record(r) for r in groups["g1"]["told"].values()]
    assert same_values([a.value for a in told], [math.nan, -math.inf])


@pytest.fixture
def non_finite_group() -> Iterator[Notification]:
    yield group([alert(i, value=v) for i, v in enumerate(NON_FINITE)]
                + [alert(9, value=math.nan, resolved=True)])


def test_every_receiver_payload_is_strict_json(non_finite_group: Notification) -> None:
    payloads: dict[str, Any] = {
        "slack": SlackIntegration(SLACK_URL).payload(non_finite_group),
        "pagerduty": PagerDutyIntegration(ROUTING_KEY).event(non_finite_group),
        "webhook": WebhookIntegration(HOOK_URL).payload(non_finite_group),
        "alertmanager": AlertmanagerIntegration(AM_URL, clock=FakeClock(T0)).payload(non_finite_group),
    }
    for payload in payloads.values():
        json.dumps(payload, allow_nan=False)  # raises ValueError on NaN/Infinity
    # Where people read values, they read Prometheus' spelling.
    slack_text = json.dumps(payloads["slack"], ensure_ascii=False)
    assert "*Value:* NaN" in slack_text and "*Value:* +Inf" in slack_text and "*Value:* -Inf" in slack_text
    firing = payloads["pagerduty"]["payload"]["custom_details"]["firing"]
    assert [a["value"] for a in firing] == ["NaN", "+Inf", "-Inf"]


async def test_every_receiver_sends_strict_json(non_finite_group: Notification, client: httpx.AsyncClient) -> None:
    integrations: list[tuple[str, Integration]] = [
        (SLACK_URL, SlackIntegration(SLACK_URL)),
        (PD_URL, PagerDutyIntegration(ROUTING_KEY)),
        (HOOK_URL, WebhookIntegration(HOOK_URL)),
        (f"{AM_URL}/api/v2/alerts", AlertmanagerIntegration(AM_URL)),
    ]
    for url, integration in integrations:
        with respx.mock() as mock:
            route = mock.post(url).respond(200)
            await integration.notify(non_finite_group, client)
        strict_json(route.calls[0].request.content)


def test_slack_preview_text_cannot_mention_a_channel() -> None:
    from monitor.alerting.model import Alert, Notification
    from monitor.alerting.receivers.slack import SlackIntegration

    alert = Alert(fingerprint="f", labels={"alertname": "Down", "check": "<!channel> & <@U123>"},
                  annotations={}, starts_at=0.0)
    notification = Notification(receiver="r", group_key="{}:{}", group_labels={"check": "<!channel> & <@U123>"},
                                alerts=[alert], external_url="")
    payload = SlackIntegration("https://hooks.slack.invalid/x").payload(notification)
    assert "<!channel>" not in payload["text"] and "<@U123>" not in payload["text"]
    assert "&lt;!channel&gt;" in payload["text"]
