"""``kind: http`` — one request; value is the status code.

detail: ``status``, ``headers``, ``body`` (parsed JSON, or text up to 4 KiB), ``body_bytes``,
``final_url``, ``redirects``, and for HTTPS ``tls`` with ``days_to_expiry`` of the server
certificate.

Redirects, the link-local refusal and the body cap are ``fetch.py``'s: the configured URL is
trusted, where it redirects to is the target's choice (``allow_link_local: true`` lets a
redirect reach a link-local or cloud metadata address). See docs/security.md.
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal

from cryptography import x509
from pydantic import ByteSize, Field, PrivateAttr, field_validator

from monitor.core.model import Model
from monitor.core.expressions import Expression, ExpressionError, compile_expression
from monitor.probes.base import PEER_CERTIFICATES, CheckBase, ProbeEnv, loadable_ca_file
from monitor.probes.fetch import (
    FETCH_ERRORS, MAX_REDIRECTS, Request, fetch, fetch_error, http_url, shown_url,
)
from monitor.core.results import Result, one_line, redact

# Names an `expect.cel` condition can use.
EXPECT_VARIABLES = ("status", "body", "headers", "latency", "tls")
TEXT_DETAIL_LIMIT = 4096
__all__ = ["MAX_REDIRECTS", "HttpCheck", "TlsOptions", "probe", "shown_url"]


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

    _url = field_validator("url")(http_url)

    def request(self) -> Request:
        return Request(url=self.url, method=self.method, headers=self.headers,
                       body=self.body.encode() if self.body is not None else None,
                       follow_redirects=self.follow_redirects, allow_link_local=self.allow_link_local,
                       max_body=int(self.max_body))


async def probe(check: HttpCheck, deadline: float, env: ProbeEnv) -> Result:
    session = env.http_session()
    # Always pass the context: aiohttp uses it only on https hops, and an http:// URL that
    # redirects to https:// (or one spelled HTTPS://) must be verified like any other.
    tls = env.tls_context(check.tls.ca_file, not check.tls.insecure_skip_verify)
    peers: list[tuple[bytes, str]] = []
    token = PEER_CERTIFICATES.set(peers)
    started = time.perf_counter()
    try:
        response = await fetch(session, check.request(), tls)
    except FETCH_ERRORS as err:
        return Result.failed(fetch_error(err), time.perf_counter() - started)
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
