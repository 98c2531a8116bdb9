"""``kind: prometheus`` — a PromQL instant query on a Prometheus-compatible server's ``/api/v1/query``.

The query is evaluated by the server at the run's time (``time=``), bounded by the check's
timeout (``timeout=``). Its answer becomes a result exactly as a ``metrics`` check's does
(``metrics.query_result``): a scalar or one series is ``value``, labelled series are one
result per series, an empty vector is up with no value. A range vector or a string is an
error, as is the server's own error answer (``errorType: error`` as one line).

The query's syntax is checked when the config loads (with the same parser as the
``metrics`` kind); which functions exist is the server's business, so an unknown function
name is left for the server to judge.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any, Literal
from urllib.parse import urlencode

from pydantic import ByteSize, Field, SecretStr, field_validator, model_validator

from monitor.core.model import Model
from monitor.core.results import Result, one_line
from monitor.probes.base import CheckBase, ProbeEnv
from monitor.probes.fetch import FETCH_ERRORS, Request, fetch, fetch_error, http_url
from monitor.probes.http import TlsOptions
from monitor.probes.metrics import DEFAULT_MAX_BODY, DEFAULT_MAX_SERIES, query_result

MAX_QUERY_LENGTH = 10_000


class BasicAuth(Model):
    username: str
    password: SecretStr


class PrometheusCheck(CheckBase):
    kind: Literal["prometheus"]
    url: str
    query: str
    method: Literal["GET", "POST"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    basic_auth: BasicAuth | None = None
    bearer_token: SecretStr | None = None
    follow_redirects: bool = True
    allow_link_local: bool = False
    max_body: ByteSize = ByteSize(DEFAULT_MAX_BODY)
    max_series: int = Field(default=DEFAULT_MAX_SERIES, ge=1, le=1_000_000)
    tls: TlsOptions = Field(default_factory=TlsOptions)

    _url = field_validator("url")(http_url)

    @field_validator("query")
    @classmethod
    def _parses(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("query is empty")
        if len(text) > MAX_QUERY_LENGTH:
            raise ValueError(f"query is {len(text)} characters long, over the limit of {MAX_QUERY_LENGTH}")
        import promql_parser  # only when a prometheus check is configured

        try:
            promql_parser.parse(text)
        except Exception as err:  # the binding raises ValueError, and its own types on odd input
            if "unknown function" in str(err):
                return text  # the parser's list is not every server's (holt_winters, newer ones)
            raise ValueError(f"query: parse error: {one_line(str(err), 300) or type(err).__name__}") from None
        return text

    @model_validator(mode="after")
    def _one_credential(self) -> PrometheusCheck:
        if self.basic_auth is not None and self.bearer_token is not None:
            raise ValueError("basic_auth and bearer_token are exclusive")
        if any(name.lower() == "authorization" for name in self.headers) and (self.basic_auth or self.bearer_token):
            raise ValueError("an Authorization header and basic_auth/bearer_token are exclusive")
        return self

    def request(self, at: float) -> Request:
        params = urlencode({"query": self.query, "time": f"{at:.3f}", "timeout": f"{self.timeout:g}s"})
        headers = {"Accept": "application/json", **self.headers}
        if self.basic_auth is not None:
            pair = f"{self.basic_auth.username}:{self.basic_auth.password.get_secret_value()}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        elif self.bearer_token is not None:
            headers["Authorization"] = f"Bearer {self.bearer_token.get_secret_value()}"
        endpoint = self.url.rstrip("/") + "/api/v1/query"
        common: dict[str, Any] = {"follow_redirects": self.follow_redirects, "allow_link_local": self.allow_link_local,
                                  "max_body": int(self.max_body)}
        if self.method == "POST":  # for queries too long for a URL
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            return Request(url=endpoint, method="POST", headers=headers, body=params.encode(), **common)
        return Request(url=f"{endpoint}?{params}", headers=headers, **common)


class QueryFailed(Exception):
    """The server gave no usable answer; the message is the check's (one-line) error."""


async def probe(check: PrometheusCheck, deadline: float, env: ProbeEnv) -> Result:
    at = env.clock.time()
    started = time.perf_counter()
    try:
        response = await fetch(env.http_session(), check.request(at),
                               env.tls_context(check.tls.ca_file, not check.tls.insecure_skip_verify))
    except FETCH_ERRORS as err:
        return Result.failed(fetch_error(err), time.perf_counter() - started)
    latency = time.perf_counter() - started
    if response.too_big:
        return Result.failed(f"answer larger than max_body ({int(check.max_body)} bytes)", latency)
    try:
        data, warnings = _data(response.status, response.raw)
        outcome = _outcome(data)
    except QueryFailed as err:
        return Result.failed(str(err), latency)
    if not isinstance(outcome, float) and len(outcome) > check.max_series:
        # Each series is an alert and a metric series here: cardinality stays bounded.
        return Result.failed(f"query returned {len(outcome)} series, over the limit of {check.max_series} "
                             "(max_series); aggregate it or narrow its selectors", latency)
    detail: dict[str, Any] = {}
    if warnings:
        detail["warnings"] = [one_line(str(w), 300) for w in warnings[:10]]
    return query_result(outcome, check.labels, latency, detail)


def _data(status: int, raw: bytes) -> tuple[Any, list[Any]]:
    """The ``data`` of a success answer (and its warnings); QueryFailed otherwise."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as err:
        if not 200 <= status < 300:
            raise QueryFailed(f"server returned HTTP status {status}") from None
        raise QueryFailed(f"invalid JSON from /api/v1/query: {one_line(str(err), 200)}") from None
    if not isinstance(body, dict):
        raise QueryFailed("unexpected answer from /api/v1/query: not a JSON object")
    if body.get("status") == "error":
        kind, message = body.get("errorType") or "error", body.get("error") or "no message"
        raise QueryFailed(f"query failed ({one_line(str(kind), 40)}): {one_line(str(message), 300)}")
    if body.get("status") != "success" or not 200 <= status < 300:
        raise QueryFailed(f"server returned HTTP status {status} without a Prometheus answer")
    warnings = body.get("warnings")
    return body.get("data"), warnings if isinstance(warnings, list) else []


def _outcome(data: Any) -> float | list[tuple[dict[str, str], float]]:
    if not isinstance(data, dict):
        raise QueryFailed("unexpected answer from /api/v1/query: no data")
    kind: Any = data.get("resultType")
    result: Any = data.get("result")
    result = [] if result is None and kind == "vector" else result  # some servers send null for empty
    try:
        if kind == "scalar":
            return _number(result[1])
        if kind == "vector":
            return [({str(k): str(v) for k, v in item["metric"].items()}, _number(item["value"][1])) for item in result]
    except (TypeError, KeyError, IndexError, AttributeError):
        raise QueryFailed(f"unexpected {kind} answer from /api/v1/query") from None
    if kind in ("matrix", "string"):
        what = "a range vector (matrix)" if kind == "matrix" else "a string"
        raise QueryFailed(f"query returned {what}; it must return an instant vector or a scalar")
    raise QueryFailed(f"unexpected resultType {one_line(str(kind), 40)!r} from /api/v1/query")


def _number(text: Any) -> float:
    if not isinstance(text, str):
        raise TypeError(text)
    try:
        return float(text)
    except ValueError:
        raise TypeError(text) from None
