"""``kind: stripe`` through the runner, against a local server speaking Stripe's API shapes.

The fake keeps events (newest first, as Stripe lists them) and webhook endpoints, and
answers ``GET /v1/events`` and ``GET /v1/webhook_endpoints`` with list objects filtered by
``delivery_success``, ``created[gte]``, ``limit`` and ``starting_after``, like Stripe. A
test can make a path answer something else (401, 429, a broken body, nothing at all).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from pydantic import ValidationError

from monitor.core import secrets
from monitor.core.results import Outcome, Result
from monitor.probes.stripe import MAX_PAGES, StripeCheck

from tests.probing import run_timed

API_KEY = f"rk_test_{uuid.uuid4().hex}"  # a restricted key: read access is all the probe needs


@dataclass
class Fault:
    """What a path answers instead of the real listing, ``times`` times (None: always)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False
    times: int | None = None


class FakeStripe:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []  # newest first
        self.endpoints: list[dict[str, Any]] = []
        self.faults: dict[str, Fault] = {}
        self.requests: list[tuple[str, dict[str, str], dict[str, str]]] = []
        self.released = asyncio.Event()  # ends every hanging answer, so the server can stop
        self.url = ""
        self._runner: web.AppRunner | None = None

    def add_event(self, age: float, delivered: bool = True) -> str:
        event_id = f"evt_{uuid.uuid4().hex[:24]}"
        self.events.append({"id": event_id, "object": "event", "created": int(time.time() - age),
                            "type": "invoice.paid", "pending_webhooks": 0 if delivered else 1,
                            "_delivered": delivered})
        self.events.sort(key=lambda e: e["created"], reverse=True)
        return event_id

    def add_endpoint(self, status: str) -> str:
        endpoint_id = f"we_{uuid.uuid4().hex[:24]}"
        self.endpoints.append({"id": endpoint_id, "object": "webhook_endpoint", "status": status,
                               "url": "https://app.example.test/stripe/webhook"})
        return endpoint_id

    def requests_to(self, path: str) -> list[dict[str, str]]:
        return [query for p, query, _ in self.requests if p == path]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/v1/events", self._events)
        app.router.add_get("/v1/webhook_endpoints", self._endpoints)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        self.released.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _fault(self, request: web.Request) -> web.StreamResponse | None:
        self.requests.append((request.path, dict(request.query), dict(request.headers)))
        fault = self.faults.get(request.path)
        if fault is None or fault.times == 0:
            return None
        if fault.times is not None:
            fault.times -= 1
        if fault.hang:
            await self.released.wait()
        return web.Response(status=fault.status, body=fault.body, headers=fault.headers,
                            content_type="application/json")

    async def _events(self, request: web.Request) -> web.StreamResponse:
        if (faulty := await self._fault(request)) is not None:
            return faulty
        query = request.query
        events = self.events
        if query.get("delivery_success") == "false":
            events = [e for e in events if not e["_delivered"]]
        if "created[gte]" in query:
            events = [e for e in events if e["created"] >= int(query["created[gte]"])]
        return self._page(request, events, "/v1/events")

    async def _endpoints(self, request: web.Request) -> web.StreamResponse:
        if (faulty := await self._fault(request)) is not None:
            return faulty
        return self._page(request, self.endpoints, "/v1/webhook_endpoints")

    def _page(self, request: web.Request, items: list[dict[str, Any]], url: str) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return web.json_response({"error": {"type": "invalid_request_error",
                                                "message": "Invalid API Key provided: rk_test_****abcd"}}, status=401)
        limit = int(request.query.get("limit", "10"))
        start = 0
        if "starting_after" in request.query:
            ids = [item["id"] for item in items]
            start = ids.index(request.query["starting_after"]) + 1
        page = [{k: v for k, v in item.items() if not k.startswith("_")} for item in items[start:start + limit]]
        return web.json_response({"object": "list", "data": page, "has_more": start + limit < len(items), "url": url})


@pytest.fixture
async def stripe_api() -> AsyncIterator[FakeStripe]:
    fake = FakeStripe()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


def stripe_check(api: FakeStripe, **fields: Any) -> StripeCheck:
    config: dict[str, Any] = {"name": "stripe_probe_test", "kind": "stripe", "interval": 30, "timeout": 5,
                              "api_key": API_KEY, "api_base": api.url}
    config.update(fields)
    return StripeCheck.model_validate(config)


def assert_one_line_failure(result: Result) -> str:
    assert result.up is False
    assert result.outcome is Outcome.FAILURE
    assert result.error and "\n" not in result.error
    assert_no_key(result)
    return result.error


def assert_no_key(result: Result) -> None:
    shown = json.dumps({"error": result.error, "detail": result.detail, "value": result.value})
    assert API_KEY not in shown and API_KEY[8:] not in shown


# --- the value and the detail -----------------------------------------------------------------


async def test_undelivered_events_are_counted_across_every_page(stripe_api: FakeStripe) -> None:
    for i in range(250):
        stripe_api.add_event(age=60 + i, delivered=False)
    for i in range(30):
        stripe_api.add_event(age=30 + i, delivered=True)
    stripe_api.add_event(age=7200, delivered=False)  # before the window: not counted
    stripe_api.add_event(age=5, delivered=True)  # the newest event

    result, _ = await run_timed(stripe_check(stripe_api, window="1h"))
    assert result.up is True, result.error
    assert result.value == 250.0
    assert 4 <= result.detail["last_event_age"] < 60
    assert result.detail["truncated"] is False

    # Three pages of 100, each starting after the last id of the one before.
    pages = [q for q in stripe_api.requests_to("/v1/events") if q.get("delivery_success") == "false"]
    assert len(pages) == 3
    assert all(q["limit"] == "100" for q in pages)
    undelivered = [e["id"] for e in stripe_api.events if not e["_delivered"]]
    assert "starting_after" not in pages[0]
    assert pages[1]["starting_after"] == undelivered[99]
    assert pages[2]["starting_after"] == undelivered[199]
    assert abs(int(pages[0]["created[gte]"]) - (time.time() - 3600)) < 30
    # The newest event: one event, no filter.
    assert stripe_api.requests_to("/v1/events")[0] == {"limit": "1"}
    # Sent as a bearer token, nowhere in a URL.
    assert all(h["Authorization"] == f"Bearer {API_KEY}" for _, _, h in stripe_api.requests)
    assert all(API_KEY not in json.dumps(q) for _, q, _ in stripe_api.requests)


async def test_disabled_endpoints_are_counted_with_their_ids_across_pages(stripe_api: FakeStripe) -> None:
    stripe_api.add_event(age=10)
    disabled = []
    for i in range(130):
        status = "disabled" if i % 40 == 3 else "enabled"
        endpoint = stripe_api.add_endpoint(status)
        if status == "disabled":
            disabled.append(endpoint)

    result, _ = await run_timed(stripe_check(stripe_api))
    assert result.up is True, result.error
    assert result.value == 0.0
    assert result.detail["disabled_endpoints"] == 4
    assert result.detail["disabled_endpoint_ids"] == disabled
    pages = stripe_api.requests_to("/v1/webhook_endpoints")
    assert [q.get("starting_after") for q in pages] == [None, stripe_api.endpoints[99]["id"]]


async def test_an_account_without_events_is_up_with_no_age(stripe_api: FakeStripe) -> None:
    result, _ = await run_timed(stripe_check(stripe_api))
    assert result.up is True, result.error
    assert result.value == 0.0
    assert result.detail == {"disabled_endpoints": 0, "disabled_endpoint_ids": [], "last_event_age": None,
                             "truncated": False}


async def test_delivery_failing_then_recovering_is_followed(stripe_api: FakeStripe) -> None:
    check = stripe_check(stripe_api)
    stripe_api.add_event(age=100)
    healthy, _ = await run_timed(check)
    failing_ids = [stripe_api.add_event(age=20, delivered=False) for _ in range(3)]
    failing, _ = await run_timed(check)
    for event in stripe_api.events:  # Stripe retried and the endpoint answered
        if event["id"] in failing_ids:
            event["_delivered"] = True
    recovered, _ = await run_timed(check)
    assert [r.value for r in (healthy, failing, recovered)] == [0.0, 3.0, 0.0]
    assert all(r.up for r in (healthy, failing, recovered))


async def test_a_flood_stops_at_the_page_cap_and_says_so(stripe_api: FakeStripe,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("monitor.probes.stripe.MAX_PAGES", 3)
    for i in range(450):
        stripe_api.add_event(age=10 + i, delivered=False)
    result, _ = await run_timed(stripe_check(stripe_api))
    assert result.up is True, result.error
    assert result.value == 300.0  # a lower bound
    assert result.detail["truncated"] is True
    assert len([q for q in stripe_api.requests_to("/v1/events") if "delivery_success" in q]) == 3
    assert MAX_PAGES == 50


# --- refusals and broken answers --------------------------------------------------------------


async def test_a_refused_key_is_one_line_without_the_key(stripe_api: FakeStripe) -> None:
    wrong = f"rk_test_{uuid.uuid4().hex}"
    result, _ = await run_timed(stripe_check(stripe_api, api_key=wrong))
    assert assert_one_line_failure(result) == "Stripe refused the API key (HTTP 401)"
    assert wrong not in json.dumps(result.detail) and wrong not in (result.error or "")


async def test_other_errors_quote_stripes_message_without_key_fragments(stripe_api: FakeStripe) -> None:
    message = ("The provided key 'rk_test_*********************abcd' does not have the required permissions "
               "for this endpoint.\nHaving the 'rak_webhook_endpoint_read' permission would allow this request.")
    stripe_api.faults["/v1/webhook_endpoints"] = Fault(
        status=403, body=json.dumps({"error": {"type": "invalid_request_error", "message": message}}).encode())
    result, _ = await run_timed(stripe_check(stripe_api))
    error = assert_one_line_failure(result)
    assert error.startswith("Stripe answered HTTP 403 on /v1/webhook_endpoints: The provided key '***' does not")
    assert "rak_webhook_endpoint_read" in error and "abcd" not in error


async def test_a_server_error_without_json_is_one_line(stripe_api: FakeStripe) -> None:
    stripe_api.faults["/v1/events"] = Fault(status=502, body=b"<html>Bad Gateway</html>")
    error = assert_one_line_failure((await run_timed(stripe_check(stripe_api)))[0])
    assert error == "Stripe answered HTTP 502 on /v1/events (no JSON error body)"


@pytest.mark.parametrize(("body", "expected"), [
    (b'{"object": "list", "data": [', "not JSON"),
    (b'{"object": "event", "id": "evt_1"}', "not a list object"),
    (b'{"object": "list", "data": [{"created": 1}], "has_more": false}', "an item without an id"),
    (b'{"object": "list", "data": [{"id": "evt_1"}], "has_more": false}', "an event without created"),
    (b'{"object": "list", "data": [], "has_more": true}', "has_more with an empty page"),
])
async def test_malformed_answers_are_one_line_failures(stripe_api: FakeStripe, body: bytes, expected: str) -> None:
    stripe_api.faults["/v1/events"] = Fault(body=body)
    error = assert_one_line_failure((await run_timed(stripe_check(stripe_api)))[0])
    assert error.startswith("malformed answer from Stripe on /v1/events") and expected in error


async def test_rate_limit_is_waited_out_when_retry_after_fits(stripe_api: FakeStripe) -> None:
    stripe_api.add_event(age=30, delivered=False)
    stripe_api.faults["/v1/events"] = Fault(status=429, headers={"Retry-After": "1"}, times=1, body=json.dumps(
        {"error": {"type": "rate_limit_error", "message": "Too many requests"}}).encode())
    started = time.monotonic()
    result, _ = await run_timed(stripe_check(stripe_api, timeout=5))
    assert result.up is True, result.error
    assert result.value == 1.0
    assert time.monotonic() - started >= 1.0  # it did wait as told
    assert len(stripe_api.requests_to("/v1/events")) == 3  # the 429, its retry, the undelivered page


async def test_rate_limit_beyond_the_deadline_fails_at_once(stripe_api: FakeStripe) -> None:
    stripe_api.faults["/v1/events"] = Fault(status=429, headers={"Retry-After": "30"})
    result, took = await run_timed(stripe_check(stripe_api, timeout=3, interval=10))
    error = assert_one_line_failure(result)
    assert "rate limited by Stripe" in error and "Retry-After 30" in error
    assert took < 2.5  # no sleep into the deadline
    assert len(stripe_api.requests_to("/v1/events")) == 1


async def test_a_hanging_api_is_a_timeout_at_the_deadline(stripe_api: FakeStripe) -> None:
    stripe_api.faults["/v1/webhook_endpoints"] = Fault(hang=True)
    result, took = await run_timed(stripe_check(stripe_api, timeout=1, interval=10))
    assert result.up is False
    assert result.outcome is Outcome.TIMEOUT
    assert result.error == "timeout"
    assert took < 6.0


async def test_an_unreachable_api_is_a_one_line_failure(closed_port: int) -> None:
    check = StripeCheck.model_validate({"name": "s", "kind": "stripe", "interval": 30, "timeout": 3,
                                        "api_key": API_KEY, "api_base": f"http://127.0.0.1:{closed_port}"})
    result, took = await run_timed(check)
    error = assert_one_line_failure(result)
    assert error.startswith("Stripe API unreachable: ") and str(closed_port) in error
    assert took < 3.0


async def test_the_key_stays_out_of_logs(stripe_api: FakeStripe, caplog: pytest.LogCaptureFixture) -> None:
    secrets.register([API_KEY])  # as the config loader does for every SecretStr
    stripe_api.faults["/v1/events"] = Fault(status=500, body=json.dumps(
        {"error": {"type": "api_error", "message": f"echo {API_KEY}"}}).encode())
    caplog.set_level(logging.DEBUG)
    result, _ = await run_timed(stripe_check(stripe_api))
    assert_one_line_failure(result)
    assert API_KEY not in caplog.text


# --- configuration ----------------------------------------------------------------------------


def test_defaults() -> None:
    check = StripeCheck.model_validate({"name": "s", "kind": "stripe", "interval": 300, "timeout": 10,
                                        "api_key": API_KEY})
    assert check.api_base == "https://api.stripe.com"
    assert check.window == 3600.0
    assert API_KEY not in repr(check) and API_KEY not in str(check.model_dump())


@pytest.mark.parametrize(("fields", "message"), [
    ({"api_key": ""}, "api_key is empty"),
    ({"api_base": "ftp://api.stripe.com"}, "api_base must be an http(s) URL"),
    ({"api_base": "http://api.stripe.com"}, "must be https://"),
    ({"api_base": "https://user:pw@api.stripe.com"}, "api_base must be an http(s) URL"),
    ({"window": "0s"}, "window must be at least 1s"),
])
def test_bad_config_is_refused(fields: dict[str, Any], message: str) -> None:
    config = {"name": "s", "kind": "stripe", "interval": 300, "timeout": 10, "api_key": API_KEY, **fields}
    with pytest.raises(ValidationError, match=re.escape(message)) as caught:
        StripeCheck.model_validate(config)
    # Our message (pydantic's own text also quotes the input; the config loader scrubs that).
    assert "pw@" not in str(caught.value.errors()[0]["msg"])


def test_importing_the_probes_does_not_import_the_stripe_library() -> None:
    code = "import monitor.probes, sys; print('stripe' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
