"""``kind: stripe`` — webhook events Stripe has not delivered, read from Stripe's API.

value: the number of events created within ``window`` that Stripe has not delivered to
every endpoint (``GET /v1/events?delivery_success=false``, every page). detail:
``disabled_endpoints`` (webhook endpoints Stripe disabled, usually after days of failed
deliveries) and their ids, ``last_event_age`` (seconds since the newest event), and
``truncated`` when the page cap stopped the count (the value is then a lower bound).

Plain HTTP through the probe env's shared aiohttp session, not the ``stripe`` library: that
one is synchronous by default (its async calls need a second HTTP client set up for them)
and large (stripe 16.1: 31 MB installed, 1.6 s and 22 MB of memory to import), and only
two read-only list calls are needed, so a restricted key with read access to events and
webhook endpoints is enough. The key goes only into the ``Authorization`` header:
never into a URL, an error, a log line or ``detail``.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

import aiohttp
from pydantic import SecretStr, field_validator
from yarl import URL

from monitor.core.durations import Duration
from monitor.core.results import Outcome, Result, describe_exception, one_line
from monitor.probes.base import CheckBase, ProbeEnv, loopback_host

PAGE_SIZE = 100  # Stripe's largest page
MAX_PAGES = 50  # per listing: a flood of failed events must not keep the probe paging forever
MAX_BODY = 16 * 1024 * 1024  # a page of 100 full events is a few MB at most
MAX_RETRIES = 3  # 429s retried per request, each only if the wait fits before the deadline
_BACKOFF = 0.5  # seconds, doubled per retry, when Stripe sends no Retry-After
# Stripe quotes keys back masked but with their last characters ("sk_live_****abcd"):
# nothing of a key belongs in an error.
_KEY_SHAPE = re.compile(r"\b(?:sk|rk|pk|whsec)_[A-Za-z0-9_*]+")


class StripeCheck(CheckBase):
    kind: Literal["stripe"]
    api_key: SecretStr
    api_base: str = "https://api.stripe.com"
    window: Duration = 3600.0

    @field_validator("api_key")
    @classmethod
    def _key_given(cls, key: SecretStr) -> SecretStr:
        # `${STRIPE_KEY}` left unset must fail at load time, not at every run with a 401.
        if not key.get_secret_value().strip():
            raise ValueError("api_key is empty")
        return key

    @field_validator("api_base")
    @classmethod
    def _base_url(cls, base: str) -> str:
        try:
            url = URL(base)
        except (ValueError, TypeError):
            raise ValueError(f"invalid api_base {one_line(base)!r}") from None
        if url.scheme not in ("http", "https") or not url.host or url.query_string or url.user:
            # one_line: a `user:password@` in it is not echoed back.
            raise ValueError(f"api_base must be an http(s) URL with a host and nothing else, got {one_line(base)!r}")
        # The key travels in a header: over plain HTTP only to this machine (a local mock).
        if url.scheme == "http" and not loopback_host(url.host):
            raise ValueError("api_base must be https:// (plain http:// only to a loopback address)")
        return base.rstrip("/")

    @field_validator("window")
    @classmethod
    def _window_positive(cls, window: float) -> float:
        if window < 1:
            raise ValueError("window must be at least 1s")
        return window


class StripeFailure(Exception):
    """A run that cannot give a value; the message is the check's (one-line) error."""


async def probe(check: StripeCheck, deadline: float, env: ProbeEnv) -> Result:
    client = _Client(check, deadline, env)
    started = time.perf_counter()
    now = env.clock.time()
    try:
        newest = await client.list_page("/v1/events", {"limit": "1"})
        last_event_age = _age(newest["data"][0], now) if newest["data"] else None
        undelivered, truncated = await client.count(
            "/v1/events", {"delivery_success": "false", "created[gte]": str(int(now - check.window))},
        )
        endpoints, endpoints_truncated = await client.collect("/v1/webhook_endpoints", {})
    except StripeFailure as err:
        return Result.failed(str(err), time.perf_counter() - started)
    except TimeoutError:
        # aiohttp's timeout (set to the time left) fired just before the runner's: the same
        # event, reported the same way.
        return Result(up=False, error="timeout", latency=time.perf_counter() - started, outcome=Outcome.TIMEOUT)
    except (aiohttp.ClientError, OSError) as err:
        return Result.failed(f"Stripe API unreachable: {describe_exception(err)}", time.perf_counter() - started)
    disabled = [item["id"] for item in endpoints if item.get("status") == "disabled"]
    detail: dict[str, Any] = {
        "disabled_endpoints": len(disabled),
        "disabled_endpoint_ids": disabled,
        "last_event_age": last_event_age,
        "truncated": truncated or endpoints_truncated,
    }
    return Result(up=True, value=float(undelivered), latency=time.perf_counter() - started, detail=detail)


def _age(event: dict[str, Any], now: float) -> float:
    return round(max(now - float(event["created"]), 0.0), 3)


class _Client:
    """GETs against one Stripe account, all inside one deadline."""

    def __init__(self, check: StripeCheck, deadline: float, env: ProbeEnv) -> None:
        self.base = check.api_base
        self.deadline = deadline
        self.session = env.http_session()
        self.tls = env.tls_context(None, True)
        self.headers = {"Authorization": f"Bearer {check.api_key.get_secret_value()}", "Accept": "application/json"}

    async def count(self, path: str, params: dict[str, str]) -> tuple[int, bool]:
        """The number of items of a listing; (count, truncated)."""
        total = 0
        truncated = False
        async for page, truncated in self.pages(path, params):
            total += len(page)
        return total, truncated

    async def collect(self, path: str, params: dict[str, str]) -> tuple[list[dict[str, Any]], bool]:
        """The items of a listing (webhook endpoints: a handful); (items, truncated)."""
        items: list[dict[str, Any]] = []
        truncated = False
        async for page, truncated in self.pages(path, params):
            items.extend(page)
        return items, truncated

    async def pages(self, path: str, params: dict[str, str]) -> AsyncIterator[tuple[list[dict[str, Any]], bool]]:
        """Every page of a listing, following ``has_more`` with ``starting_after=<last id>``
        to the end or to ``MAX_PAGES``; each with whether the cap cut the listing short."""
        query = {**params, "limit": str(PAGE_SIZE)}
        for number in range(1, MAX_PAGES + 1):
            page = await self.list_page(path, query)
            data: list[dict[str, Any]] = page["data"]
            more: bool = page["has_more"]
            if more and not data:
                raise StripeFailure(f"malformed answer from Stripe on {path}: has_more with an empty page")
            yield data, more and number == MAX_PAGES
            if not more:
                return
            query["starting_after"] = data[-1]["id"]

    async def list_page(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        body = await self.get(path, params)
        if not isinstance(body, dict) or body.get("object") != "list" or not isinstance(body.get("data"), list) \
                or not isinstance(body.get("has_more"), bool):
            raise StripeFailure(f"malformed answer from Stripe on {path}: not a list object")
        for item in body["data"]:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                raise StripeFailure(f"malformed answer from Stripe on {path}: an item without an id")
            if path == "/v1/events" and not isinstance(item.get("created"), (int, float)):
                raise StripeFailure(f"malformed answer from Stripe on {path}: an event without created")
        return body

    async def get(self, path: str, params: dict[str, str]) -> Any:
        for attempt in range(MAX_RETRIES + 1):
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            async with self.session.get(
                self.base + path, params=params, headers=self.headers, ssl=self.tls, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=remaining),
            ) as response:
                raw = await _read_capped(response)
                status = response.status
                retry_after = response.headers.get("Retry-After")
            if status == 429:
                wait = _retry_after(retry_after, time.time()) if retry_after else _BACKOFF * 2 ** attempt
                # Only a wait that leaves time for the request itself; otherwise say so now
                # rather than sleep into the deadline and report a bare timeout.
                if attempt < MAX_RETRIES and wait is not None and time.monotonic() + wait < self.deadline - 0.2:
                    await asyncio.sleep(wait)
                    continue
                after = f" (Retry-After {retry_after})" if retry_after else ""
                raise StripeFailure(f"rate limited by Stripe on {path} (HTTP 429){after}; gave up within the timeout")
            if status == 401:
                raise StripeFailure("Stripe refused the API key (HTTP 401)")
            try:
                body = json.loads(raw)
            except (ValueError, RecursionError):
                if status != 200:
                    raise StripeFailure(f"Stripe answered HTTP {status} on {path} (no JSON error body)") from None
                raise StripeFailure(f"malformed answer from Stripe on {path}: not JSON") from None
            if status != 200:
                raise StripeFailure(f"Stripe answered HTTP {status} on {path}: {_error_message(body)}")
            return body
        raise AssertionError("unreachable")  # pragma: no cover


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_BODY:
            raise StripeFailure(f"answer from Stripe larger than {MAX_BODY // (1024 * 1024)} MiB")
        chunks.append(chunk)
    return b"".join(chunks)


def _retry_after(header: str, now: float) -> float | None:
    """Seconds to wait per a Retry-After header (seconds or an HTTP date); None if unreadable."""
    try:
        return max(float(header), 0.0)
    except ValueError:
        pass
    try:
        return max(email.utils.parsedate_to_datetime(header).timestamp() - now, 0.0)
    except (TypeError, ValueError, IndexError):
        return None


def _error_message(body: Any) -> str:
    """Stripe's own one-line reason from ``{"error": {"type": ..., "message": ...}}``."""
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    if not isinstance(message, str) or not message.strip():
        return "no error message"
    return one_line(_KEY_SHAPE.sub("***", message), 300)
