"""One HTTP request the way the http kind makes it, shared by every kind that reads a URL.

Redirects are followed here, hop by hop, not by aiohttp: the configured URL is trusted (its
author may reach any URL), but where it redirects to is decided by the target. So a hop to
another origin (scheme, host, port) gets none of the configured headers and no body, and a
hop away from the configured origin may not reach a link-local or cloud metadata address
unless the check allows it. The body is read up to a cap. See docs/security.md.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field

import aiohttp
from yarl import URL

from monitor.core.results import describe_exception, redact
from monitor.core.secrets import mask_url_queries
from monitor.probes.base import REFUSE_LINK_LOCAL, IpAddress, parse_address, refused_address

MAX_REDIRECTS = 10
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Methods that may be repeated at another origin without their headers: they carry no body
# and (by HTTP's definition) change nothing there.
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class RedirectRefused(Exception):
    """A redirect this probe will not follow; the message is the check's error."""


@dataclass(frozen=True)
class Request:
    """What to ask: the configured URL (trusted) and how to treat where it leads."""

    url: str
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    follow_redirects: bool = True
    allow_link_local: bool = False
    max_body: int = 1024 * 1024


@dataclass(frozen=True)
class Response:
    """The final answer of a request, read and released."""

    url: URL
    status: int
    headers: dict[str, str]
    raw: bytes
    too_big: bool
    redirects: int


async def fetch(session: aiohttp.ClientSession, check: Request, tls: ssl.SSLContext) -> Response:
    """The request, and the redirects it leads to, one hop at a time, all within the
    runner's deadline. Only the final response's body is read (and capped)."""
    url = URL(check.url)
    # The configured URL's origin is trusted (its author chose that host); anywhere else a
    # redirect leads is the target's choice.
    trusted = _origin(url)
    method: str = check.method
    headers = dict(check.headers)
    body = check.body
    redirects = 0
    while True:
        guard = REFUSE_LINK_LOCAL.set(not check.allow_link_local and _origin(url) != trusted)
        try:
            async with session.request(method, url, headers=headers, data=body, allow_redirects=False,
                                       ssl=tls) as response:
                location = response.headers.get("Location")
                if not (check.follow_redirects and response.status in REDIRECT_STATUSES and location):
                    raw, too_big = await _read_capped(response, int(check.max_body))
                    return Response(url=response.url, status=response.status,
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


def http_url(url: str) -> str:
    """Validate a configured http(s) URL (a config field validator); the text is kept."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError) as err:
        raise ValueError(f"invalid URL: {shown_url(str(err))}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"url must be http:// or https:// with a host, got {shown_url(url)!r}")
    return url


def fetch_error(err: Exception) -> str:
    """The one-line error of a request that got no answer (for ``Result.failed``)."""
    if isinstance(err, RedirectRefused):
        return str(err)
    if isinstance(err, aiohttp.ClientSSLError):
        return f"TLS error: {describe_exception(err)}"
    return describe_exception(err)


# What `fetch` raises for a target's failure (anything else is a bug).
FETCH_ERRORS = (RedirectRefused, aiohttp.ClientError, OSError, ValueError)
