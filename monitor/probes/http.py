"""``kind: http`` — one request; value is the status code.

detail: ``status``, ``headers``, ``body`` (parsed JSON, or text up to 4 KiB), ``body_bytes``,
``final_url``, ``redirects``, and for HTTPS ``tls`` with ``days_to_expiry`` of the server
certificate.

Redirects are followed here, hop by hop, not by aiohttp: the configured URL is trusted (its
author may reach any URL), but where it redirects to is decided by the target. So a hop to
another origin (scheme, host, port) gets none of the configured headers and no body, and a
hop away from the configured origin may not reach a link-local or cloud metadata address
unless the check says ``allow_link_local: true``. See docs/security.md.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
from cryptography import x509
from yarl import URL
from pydantic import ByteSize, Field, PrivateAttr, field_validator

from monitor.core.model import Model
from monitor.core.expressions import Expression, ExpressionError, compile_expression
from monitor.probes.base import (
    PEER_CERTIFICATES, REFUSE_LINK_LOCAL, CheckBase, IpAddress, ProbeEnv, loadable_ca_file, parse_address,
    refused_address,
)
from monitor.core.results import Result, describe_exception, one_line, redact
from monitor.core.secrets import mask_url_queries

# Names an `expect.cel` condition can use.
EXPECT_VARIABLES = ("status", "body", "headers", "latency", "tls")
TEXT_DETAIL_LIMIT = 4096
MAX_REDIRECTS = 10
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Methods that may be repeated at another origin without their headers: they carry no body
# and (by HTTP's definition) change nothing there.
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class HttpExpect(Model):
    status: list[int] | None = None  # default: any 2xx
    cel: str | None = None
    body_contains: str | None = None

    _expression: Expression | None = PrivateAttr(default=None)

    @field_validator("status")
    @classmethod
    def _valid_codes(cls, codes: list[int] | None) -> list[int] | None:
        if codes is not None:
            if not codes:
                raise ValueError("status must list at least one code")
            bad = [c for c in codes if not 100 <= c <= 599]
            if bad:
                raise ValueError(f"invalid HTTP status code(s): {bad}")
        return codes

    @field_validator("cel")
    @classmethod
    def _compiles(cls, source: str | None) -> str | None:
        if source is not None:
            compile_expression(source, EXPECT_VARIABLES)
        return source

    def model_post_init(self, __context: Any) -> None:
        if self.cel is not None:
            self._expression = compile_expression(self.cel, EXPECT_VARIABLES)

    def status_ok(self, status: int) -> bool:
        return 200 <= status < 300 if self.status is None else status in self.status


class TlsOptions(Model):
    ca_file: str | None = None
    insecure_skip_verify: bool = False

    _ca_file = field_validator("ca_file")(loadable_ca_file)


class HttpCheck(CheckBase):
    kind: Literal["http"]
    url: str
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    follow_redirects: bool = True
    # Let a redirect lead to a link-local or cloud metadata address (169.254.0.0/16, fe80::/10,
    # fd00:ec2::254...). The configured URL itself may always be one.
    allow_link_local: bool = False
    # Show the response body in the API and on the status page (it is always available to
    # `expect` and to rules); by default only its size is shown.
    expose_body: bool = False
    max_body: ByteSize = ByteSize(1024 * 1024)
    tls: TlsOptions = Field(default_factory=TlsOptions)
    expect: HttpExpect = Field(default_factory=HttpExpect)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        try:
            parsed = URL(url)
        except (ValueError, TypeError) as err:
            raise ValueError(f"invalid URL: {shown_url(str(err))}") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"url must be http:// or https:// with a host, got {shown_url(url)!r}")
        return url


async def probe(check: HttpCheck, deadline: float, env: ProbeEnv) -> Result:
    session = env.http_session()
    # Always pass the context: aiohttp uses it only on https hops, and an http:// URL that
    # redirects to https:// (or one spelled HTTPS://) must be verified like any other.
    tls = env.tls_context(check.tls.ca_file, not check.tls.insecure_skip_verify)
    peers: list[tuple[bytes, str]] = []
    token = PEER_CERTIFICATES.set(peers)
    started = time.perf_counter()
    try:
        response = await _fetch(session, check, tls)
    except RedirectRefused as err:
        return Result.failed(str(err), time.perf_counter() - started)
    except aiohttp.ClientSSLError as err:
        return Result.failed(f"TLS error: {describe_exception(err)}", time.perf_counter() - started)
    except (aiohttp.ClientError, OSError, ValueError) as err:
        return Result.failed(describe_exception(err), time.perf_counter() - started)
    finally:
        PEER_CERTIFICATES.reset(token)
    # The certificate of the last hop is the one that served the answer.
    tls_detail = _certificate_detail(*peers[-1], env.clock.time()) if peers and response.url.scheme == "https" else None
    latency = time.perf_counter() - started

    status, headers, raw, too_big = response.status, response.headers, response.raw, response.too_big
    detail: dict[str, Any] = {
        "status": status,
        "headers": headers,
        "final_url": redact(str(response.url)),
        "redirects": response.redirects,
    }
    if tls_detail is not None:
        detail["tls"] = tls_detail
    if too_big:
        return Result.failed(
            f"response body larger than max_body ({int(check.max_body)} bytes)", latency, detail, value=float(status)
        )
    body, body_error = _decode_body(raw, headers.get("content-type", ""))
    detail["body"] = body
    detail["body_bytes"] = len(raw)

    if not check.expect.status_ok(status):
        wanted = check.expect.status or "2xx"
        return Result.failed(f"status {status}, expected {wanted}", latency, detail, value=float(status))
    if check.expect.body_contains is not None and check.expect.body_contains not in raw.decode("utf-8", "replace"):
        return Result.failed(f"body does not contain {check.expect.body_contains!r}", latency, detail, value=float(status))
    expression = check.expect._expression
    if expression is not None:
        if body_error is not None and "body" in expression.program.variables():
            return Result.failed(f"invalid JSON body: {body_error}", latency, detail, value=float(status))
        try:
            passed = expression.evaluate(
                {"status": status, "body": body, "headers": headers, "latency": latency, "tls": tls_detail or {}}
            )
        except ExpressionError as err:
            return Result.failed(f"expect.cel: {err}", latency, detail, value=float(status))
        if passed is not True:
            return Result.failed(f"expect.cel is {_short(passed)}: {check.expect.cel}", latency, detail, value=float(status))
    return Result(up=True, value=float(status), latency=latency, detail=detail)


class RedirectRefused(Exception):
    """A redirect this probe will not follow; the message is the check's error."""


@dataclass(frozen=True)
class _Response:
    """The final answer of a request, read and released."""

    url: URL
    status: int
    headers: dict[str, str]
    raw: bytes
    too_big: bool
    redirects: int


async def _fetch(session: aiohttp.ClientSession, check: HttpCheck, tls: ssl.SSLContext) -> _Response:
    """The request, and the redirects it leads to, one hop at a time, all within the
    runner's deadline. Only the final response's body is read (and capped)."""
    url = URL(check.url)
    # The configured URL's origin is trusted (its author chose that host); anywhere else a
    # redirect leads is the target's choice.
    trusted = _origin(url)
    method: str = check.method
    headers = dict(check.headers)
    body = check.body.encode() if check.body is not None else None
    redirects = 0
    while True:
        guard = REFUSE_LINK_LOCAL.set(not check.allow_link_local and _origin(url) != trusted)
        try:
            async with session.request(method, url, headers=headers, data=body, allow_redirects=False,
                                       ssl=tls) as response:
                location = response.headers.get("Location")
                if not (check.follow_redirects and response.status in REDIRECT_STATUSES and location):
                    raw, too_big = await _read_capped(response, int(check.max_body))
                    return _Response(url=response.url, status=response.status,
                                     headers={k.lower(): v for k, v in response.headers.items()},
                                     raw=raw, too_big=too_big, redirects=redirects)
                status = response.status
        finally:
            REFUSE_LINK_LOCAL.reset(guard)
        target = _redirect_target(url, location)
        if redirects == MAX_REDIRECTS:
            raise RedirectRefused(f"more than {MAX_REDIRECTS} redirects (last: {shown_url(str(target))})")
        method, headers, body = _next_request(status, url, target, method, headers, body)
        if not check.allow_link_local and _origin(target) != trusted:
            await _refuse_link_local(target)
        url = target
        redirects += 1


def _redirect_target(url: URL, location: str) -> URL:
    """Where ``Location`` points, resolved against the URL that answered, as browsers do."""
    try:
        target = URL(location)
        if not target.absolute or not target.scheme:  # "/path", "path", "//host/path", "http:/path"
            target = url.join(target)
    except (ValueError, TypeError):
        raise RedirectRefused(f"redirect to an invalid Location: {shown_url(location)!r}") from None
    if target.scheme not in ("http", "https") or not target.host:
        raise RedirectRefused(f"redirect to {shown_url(str(target))!r}: only http:// and https:// are followed")
    return target.with_fragment(None)


def _next_request(status: int, url: URL, target: URL, method: str, headers: dict[str, str],
                  body: bytes | None) -> tuple[str, dict[str, str], bytes | None]:
    """Method, headers and body for the hop to ``target``.

    303 (and 301/302 after a POST) turn into a GET without body, as in browsers and
    aiohttp. Same origin keeps everything else. Another origin gets none of the configured
    headers (they are often credentials for this origin: `X-Dash-Key`, `Authorization`)
    and no body. A 307/308 to another origin keeps its method by definition; repeating a
    POST, PUT, PATCH or DELETE there without its body and headers would be a different
    request with side effects, so that hop is refused instead.
    """
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        method, body = "GET", None
    if _origin(target) == _origin(url):
        return method, headers, body
    if method not in _SAFE_METHODS:
        raise RedirectRefused(
            f"redirect {status} to another origin ({shown_url(str(target))}) would repeat {method} "
            "without its body and headers; not followed"
        )
    return method, {}, None


def _origin(url: URL) -> tuple[str, str, int | None]:
    # Compared as parts: yarl keeps an explicit default port (http://h:80 vs http://h) in origin().
    return url.scheme.lower(), (url.host or "").lower(), url.port


async def _refuse_link_local(target: URL) -> None:
    """Refuse, before connecting, a hop whose host is or resolves to a link-local or cloud
    metadata address. Every resolved address counts: a name that resolves to a public and
    a link-local address could be connected to either."""
    host = target.host or ""
    literal = parse_address(host)
    addresses: list[IpAddress]
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, target.port, type=socket.SOCK_STREAM)
        except OSError as err:
            raise RedirectRefused(f"redirect to {shown_url(str(target))}: cannot resolve {host}: {err}") from None
        addresses = [a for info in infos if (a := parse_address(str(info[4][0]))) is not None]
    refused = [a for a in addresses if refused_address(a)]
    if refused:
        raise RedirectRefused(
            f"redirect to {shown_url(str(target))} refused: {refused[0]} is a link-local or cloud metadata "
            "address (set allow_link_local: true to follow it)"
        )


def shown_url(url: str) -> str:
    """A URL as it may appear in an error: no userinfo, query values masked."""
    return mask_url_queries(redact(url))


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """Read at most ``limit`` bytes; a target sending 50 MB must not cost us 50 MB."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            return b"", True
        chunks.append(chunk)
    return b"".join(chunks), False


def _decode_body(raw: bytes, content_type: str) -> tuple[Any, str | None]:
    """Parsed JSON when the body is (or claims to be) JSON, else bounded text.

    The error is set only when a body that claims to be JSON does not parse: then a
    condition on ``body`` cannot be judged and the check fails saying why.
    """
    text = raw.decode("utf-8", "replace")
    if "json" in content_type or text.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(text), None
        except (ValueError, RecursionError) as err:
            return text[:TEXT_DETAIL_LIMIT], one_line(str(err), 200)
    return text[:TEXT_DETAIL_LIMIT], None


def _certificate_detail(der: bytes, version: str, now: float) -> dict[str, Any]:
    cert = x509.load_der_x509_certificate(der)
    not_after = cert.not_valid_after_utc
    return {
        "not_after": not_after.isoformat(),
        "days_to_expiry": round((not_after.timestamp() - now) / 86400, 2),
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "version": version,
    }


def _short(value: Any) -> str:
    return one_line(repr(value), 80)
