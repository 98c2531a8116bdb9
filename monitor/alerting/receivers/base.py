"""What every integration shares: the error it raises, how a reply is judged, how it posts.

Healthchecks' model: an integration is a class with one ``notify()``; it either returns (the
receiver accepted the message) or raises :class:`DeliveryError` saying whether trying again
can help. Retrying, backoff and bookkeeping belong to the outbox, never to an integration.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
from collections.abc import Iterable
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import httpx

from monitor.alerting.model import Notification
from monitor.alerting.receivers.http_options import CredentialError, HttpConfig
from monitor.core.clock import Clock, SystemClock
from monitor.core.results import one_line

# Alertmanager writes Go's zero time for "not resolved yet"; consumers of the v4 payload test
# for exactly this string, so it is part of the format rather than a null.
ZERO_TIME = "0001-01-01T00:00:00Z"

# Every network call has a deadline covering pool queueing, connect, TLS, write and read.
# httpx's own timeouts apply per phase, so a slow-dripping reply could outlive them; this one
# is wall-clock for the whole request.
DEFAULT_TIMEOUT = 10.0

# How often an integration that ``resends`` is told again what still fires: every minute,
# as Prometheus re-sends to Alertmanager (--rules.alert.resend-delay).
RESEND_INTERVAL = 60.0

# How much of a rejecting reply to quote: enough for Slack's "invalid_payload" or PagerDuty's
# validation errors, short enough for a table cell.
_BODY_QUOTE = 200


class DeliveryError(Exception):
    """A receiver did not take the notification.

    ``permanent`` means the same request will fail again (bad URL, revoked key, invalid
    payload): the outbox should give up and report. Otherwise it is temporary and worth
    retrying, no sooner than ``retry_after`` seconds when the receiver said so.
    The message is one line and never contains a secret (webhook path, routing key, HMAC key).
    """

    def __init__(self, message: str, *, permanent: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after

    def __repr__(self) -> str:
        kind = "permanent" if self.permanent else "temporary"
        return f"DeliveryError({str(self)!r}, {kind}, retry_after={self.retry_after!r})"


@runtime_checkable
class Integration(Protocol):
    """One configured receiver endpoint (one entry of ``slack_configs``, ``webhook_configs``...),
    with everything the outbox and the notifier read from it."""

    name: str  # short kind for metrics and logs: slack, pagerduty...
    timeout: float  # wall-clock deadline of one delivery, seconds; the outbox's claim outlasts it
    # Whether it must keep hearing about alerts that still fire, every RESEND_INTERVAL
    # (Alertmanager forwarding: it resolves alerts it stops hearing about).
    resends: bool

    async def notify(self, notification: Notification, client: httpx.AsyncClient) -> None:
        """Deliver, or skip silently when this config does not want it; raise DeliveryError on failure."""
        ...


# ---- judging replies ---------------------------------------------------------------------------

def classify(response: httpx.Response, *, secrets: Iterable[str] = (), clock: Clock | None = None,
             retry_statuses: Iterable[int] = ()) -> None:
    """Return if the receiver accepted the request, else raise DeliveryError saying whether to retry.

    2xx accepted. 429 and 5xx are the receiver's trouble, not ours: retry (429 and 503 may say
    when, in Retry-After). Any other status means the request itself is wrong (4xx) or went
    somewhere unexpected (3xx: we never follow redirects with a payload that may be signed),
    so sending it again cannot help. ``retry_statuses`` are further ones the receiver
    documents as worth retrying (PagerDuty's Events API v1 answers 403 when rate limiting).
    """
    status = response.status_code
    if 200 <= status < 300:
        return
    secrets = list(secrets)
    where = "receiver"
    if _has_request(response):
        url = str(response.request.url)
        where = safe_url(url)
        secrets += url_secrets(url)
    reason = f"HTTP {status} from {where}"
    quote = _quote_body(response, secrets)
    if quote:
        reason = f"{reason}: {quote}"
    message = scrub(reason, secrets)
    if status == 429 or status >= 500 or status in retry_statuses:
        retry_after = None
        if status in (429, 503):
            retry_after = parse_retry_after(response.headers.get("Retry-After"), clock or SystemClock())
        raise DeliveryError(message, permanent=False, retry_after=retry_after)
    raise DeliveryError(message, permanent=True)


def parse_retry_after(value: str | None, clock: Clock | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).

    Anything unreadable gives None (the outbox then uses its own backoff) rather than an error:
    a malformed hint must not turn a retryable failure into a lost notification.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # HTTP-dates are GMT by definition; be lenient with "-0000"
        when = when.replace(tzinfo=UTC)
    now = (clock or SystemClock()).time()
    # A date already past means "now": zero, not a negative wait.
    return max(0.0, when.timestamp() - now)


def _has_request(response: httpx.Response) -> bool:
    try:
        response.request
    except RuntimeError:  # a Response built by hand (tests) has no request attached
        return False
    return True


def _quote_body(response: httpx.Response, secrets: list[str]) -> str:
    try:
        text = response.text
    except Exception:  # undecodable or unread streaming body: the status alone will do
        return ""
    return one_line(scrub(text, secrets), limit=_BODY_QUOTE) if text.strip() else ""


# ---- secrets -----------------------------------------------------------------------------------

def safe_url(url: str) -> str:
    """``scheme://host[:port]/…``: enough to tell which receiver failed, nothing more.

    Slack (and many webhook) URLs carry their credential in the path or query, so an error
    message must never show either, nor user:password@.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid url>"
    if not parts.scheme or not host:
        return "<invalid url>"
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    has_more = bool(parts.path.strip("/") or parts.query or parts.fragment)
    return f"{parts.scheme}://{host}{port}/{'…' if has_more else ''}"


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace each secret (and a URL's secret-bearing tail) in text; then the usual redaction."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return one_line(text)


def url_secrets(url: str) -> list[str]:
    """The parts of a URL an error must not echo: the whole URL, its path and its query."""
    parts = urlsplit(url)
    found = [url]
    # Short paths like "/" or "/hook" are not secrets and would mangle unrelated text.
    if len(parts.path) > 8:
        found.append(parts.path)
    if parts.query:
        found.append(parts.query)
    return found


# ---- posting -----------------------------------------------------------------------------------

def encode(payload: Any, *, compact: bool = False) -> bytes:
    """The exact bytes an integration sends: JSON, UTF-8, non-ASCII kept as is.

    allow_nan=False: NaN and Infinity are not JSON, and a receiver's parser refuses the whole
    body (a 400, so a lost notification). Payloads spell such values out (``format_value``);
    one that slips through is a bug, and raising here says so instead of sending it.
    Size limits are measured on these bytes, so what is measured is what is sent.
    """
    separators = (",", ":") if compact else None
    return json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=separators).encode()


async def post(
    client: httpx.AsyncClient,
    url: str,
    *,
    content: bytes,
    headers: dict[str, str] | None = None,
    secrets: Iterable[str] = (),
    timeout: float = DEFAULT_TIMEOUT,
    http: HttpConfig | None = None,
    retry_statuses: Iterable[int] = (),
) -> httpx.Response:
    """POST JSON bytes and classify the outcome; transport failures become DeliveryError.

    The body is passed as bytes, not ``json=``, so what is signed is exactly what is sent.
    With an ``http_config`` (``http``), the request goes through a client made from it
    (proxy, TLS, redirects) and carries its credentials; otherwise through ``client``.
    """
    secrets = [*secrets, *url_secrets(url), *(http.secrets() if http else [])]
    where = safe_url(url)
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    try:
        if http is not None:
            all_headers.update(http.auth_header())
    except CredentialError as err:
        # The file may be being rotated or mounted late: worth another try.
        raise DeliveryError(f"http_config: {err}", permanent=False) from None
    try:
        async with asyncio.timeout(timeout):
            if http is None:
                response = await client.post(url, content=content, headers=all_headers)
            else:
                async with http.client(timeout) as own:
                    response = await own.post(url, content=content, headers=all_headers,
                                              extensions=http.request_extensions())
    except TimeoutError:
        raise DeliveryError(f"timed out after {timeout:g}s posting to {where}", permanent=False) from None
    except httpx.UnsupportedProtocol as err:
        # A config mistake (ftp://, missing scheme): retrying forever would only hide it.
        raise DeliveryError(scrub(f"cannot post to {where}: {err}", secrets), permanent=True) from None
    except httpx.TimeoutException as err:
        raise DeliveryError(scrub(f"{type(err).__name__} posting to {where}", secrets), permanent=False) from None
    except httpx.TransportError as err:
        # Connection refused, DNS, TLS handshake, reset: the receiver may be back in a minute.
        detail = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        raise DeliveryError(scrub(f"{detail} posting to {where}", secrets), permanent=False) from None
    except httpx.InvalidURL as err:
        raise DeliveryError(scrub(f"invalid receiver URL {where}: {err}", secrets), permanent=True) from None
    except OSError as err:
        # httpcore leaves some TLS errors unwrapped: a TLS 1.3 server refusing our client
        # certificate says so only at the first read (an ssl.SSLError). Same as a reset.
        raise DeliveryError(scrub(f"{type(err).__name__}: {err} posting to {where}", secrets), permanent=False) from None
    classify(response, secrets=secrets, retry_statuses=retry_statuses)
    return response


# ---- shared formatting -------------------------------------------------------------------------

def group_title(notification: Notification) -> str:
    """Alertmanager's default title: ``[FIRING:2] ApiHealthFailing api_health`` / ``[RESOLVED] ...``.

    Names come from the group labels (alertname first, the rest sorted), falling back to the
    common alertname/check so an ungrouped route still says what broke.
    """
    firing = sum(1 for a in notification.alerts if a.status == "firing")
    status = f"FIRING:{firing}" if notification.status == "firing" else "RESOLVED"
    labels = notification.group_labels or {
        k: v for k, v in notification.common_labels.items() if k in ("alertname", "check")
    }
    values = [labels["alertname"]] if "alertname" in labels else []
    values += [labels[k] for k in sorted(labels) if k != "alertname"]
    return f"[{status}] {' '.join(v for v in values if v)}".rstrip()


def only_wanted(notification: Notification, send_resolved: bool) -> Notification | None:
    """Alertmanager's send_resolved: without it, resolved alerts are dropped from the message and
    a notification left with none is not sent at all (None)."""
    if send_resolved:
        return notification if notification.alerts else None
    firing = [a for a in notification.alerts if a.status == "firing"]
    if not firing:
        return None
    if len(firing) == len(notification.alerts):
        return notification
    return dataclasses.replace(notification, alerts=firing)


def truncate(text: str, limit: int) -> str:
    """Cut to at most ``limit`` characters, marking the cut, for fields receivers reject when long."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def format_value(value: float | None) -> str:
    """Prometheus' ``%.4g`` look for a sample value; '' when the alert carries none."""
    if value is None:
        return ""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:.4g}"
