"""``kind: metrics`` — scrape a Prometheus or OpenMetrics endpoint, keep what the query reads,
and evaluate the query (PromQL) over it at the scrape's time.

The scrape is made as Prometheus 2.42 makes it (its ``Accept`` header, gzip, the scrape
timeout header), with the http kind's request rules (``fetch.py``: redirects, link-local
refusal, body cap). The series the query's selectors match are kept from run to run in a
``SeriesStore`` held by the probe env for this check; a failed scrape ends them (staleness
markers), as Prometheus does when a target goes down. Parsing, storing and evaluating run
in a worker thread: a 5,000-series target costs tens of milliseconds of CPU.

The result: a scalar, or the value of a one-series vector, is ``value``; a vector of
labelled series is ``Result.series`` (one alert and one ``monitor_check_value`` per
series) and ``detail.series``; an empty vector is up with no value (docs/configuration.md).
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ByteSize, Field, PrivateAttr, field_validator

from monitor.core.labels import RESERVED_LABELS, is_label_name, with_series_labels
from monitor.core.results import Result, SeriesValue, json_number
from monitor.probes.base import CheckBase, ProbeEnv
from monitor.probes.fetch import FETCH_ERRORS, Request, fetch, fetch_error, http_url
from monitor.probes.http import TlsOptions
from monitor.promql import PromQLError, Query, Sample, SeriesLimitError, SeriesStore, compile_query, evaluate
from monitor.promql.exposition import ACCEPT, ExpositionError, ParseCache, parse
from monitor.promql.query import LOOKBACK_MS

DEFAULT_MAX_BODY = 10 * 1024 * 1024
DEFAULT_MAX_SERIES = 10_000


@functools.lru_cache(maxsize=1024)
def compiled(text: str) -> Query:
    """A query compiled once per text: a reload with the same query reuses it (Query is immutable)."""
    return compile_query(text)


class MetricsCheck(CheckBase):
    kind: Literal["metrics"]
    url: str
    query: str
    headers: dict[str, str] = Field(default_factory=dict)
    follow_redirects: bool = True
    allow_link_local: bool = False
    max_body: ByteSize = ByteSize(DEFAULT_MAX_BODY)
    max_series: int = Field(default=DEFAULT_MAX_SERIES, ge=1, le=1_000_000)
    tls: TlsOptions = Field(default_factory=TlsOptions)

    _query: Query | None = PrivateAttr(default=None)
    _url = field_validator("url")(http_url)

    @field_validator("query")
    @classmethod
    def _compiles(cls, text: str) -> str:
        try:
            compiled(text)
        except PromQLError as err:  # names the unsupported function or construct
            raise ValueError(f"query: {err}") from None
        return text

    def model_post_init(self, __context: Any) -> None:
        self._query = compiled(self.query)

    @property
    def compiled_query(self) -> Query:
        assert self._query is not None
        return self._query

    def request(self) -> Request:
        # Prometheus' headers first; the check's own (an Accept of its choosing too) win.
        headers = {"Accept": ACCEPT, "Accept-Encoding": "gzip",
                   "X-Prometheus-Scrape-Timeout-Seconds": f"{self.timeout:g}", **self.headers}
        return Request(url=self.url, headers=headers, follow_redirects=self.follow_redirects,
                       allow_link_local=self.allow_link_local, max_body=int(self.max_body))


@dataclass
class Target:
    """What a metrics check keeps between runs: the scraped series and the parser's cache.

    One scrape at a time is processed (``lock``): a run that timed out while its worker
    thread was still storing finishes storing before the next run's scrape goes in. The
    event loop never waits for the lock."""

    query: Query
    store: SeriesStore
    cache: ParseCache = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    scraped: int = 0  # samples in the last successful scrape
    scrapes: int = 0  # successful scrapes since the state was made
    last_scrape_at: float | None = None

    names: frozenset[str] | None = None  # the metric names the query reads; None: any

    @classmethod
    def for_check(cls, check: MetricsCheck) -> Target:
        query = check.compiled_query
        names = frozenset(s.name for s in query.selectors if s.name is not None)
        every = any(s.name is None for s in query.selectors)  # `{job="x"}`: any name
        return cls(query, SeriesStore(query.selectors, query.retention, check.max_series),
                   names=None if every else names)

    @property
    def cache_limit(self) -> int:
        # The parse cache holds label sets of the names the query reads: about the kept series.
        return 2 * self.store.max_series + 1000

    pending_failure: float | None = None  # a failed scrape not yet marked (see `failed`)

    def failed(self, at: float) -> None:
        """A failed scrape at ``at``. Called on the event loop, so it never waits for the
        lock: while a worker still stores an earlier scrape, the failure is marked before
        the next scrape goes in."""
        if self.lock.acquire(blocking=False):
            try:
                self.store.mark_scrape_failed(at)
            finally:
                self.lock.release()
        else:
            self.pending_failure = at

    def ingest(self, at: float, raw: bytes, content_type: str) -> float | list[Sample] | str:
        """Parse, store and evaluate one scrape; the query's result, or an error (a str)."""
        with self.lock:
            if self.pending_failure is not None:
                self.store.mark_scrape_failed(self.pending_failure)
                self.pending_failure = None
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                self.store.mark_scrape_failed(at)
                return f"scrape is not UTF-8 text (byte {err.start}){_content_type_hint(content_type)}"
            try:
                scrape = parse(text, content_type, self.cache, self.cache_limit, self.names)
            except ExpositionError as err:
                self.store.mark_scrape_failed(at)
                return f"{err}{_content_type_hint(content_type)}"
            try:
                self.store.append_scrape(at, scrape.samples)
            except SeriesLimitError as err:  # the store has marked the scrape failed
                return f"{err} (max_series); raise max_series or narrow the query's selectors"
            self.scraped, self.scrapes, self.last_scrape_at = scrape.count, self.scrapes + 1, at
            try:
                return evaluate(self.query, self.store, at)
            except PromQLError as err:
                return f"query: {err}"


def _content_type_hint(content_type: str) -> str:
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind in ("", "text/plain", "application/openmetrics-text"):
        return ""
    return f" (Content-Type: {kind[:60]}; not a metrics endpoint?)"


def target_of(check: MetricsCheck, env: ProbeEnv) -> Target:
    """The check's kept state in ``env``: new when url, query or max_series changed."""
    return env.check_state(check.name, (check.url, check.query, check.max_series), lambda: Target.for_check(check))


def reads_ranges(check: MetricsCheck) -> bool:
    """Whether the query has a range selector (`[5m]`): it needs samples of earlier scrapes."""
    return check.compiled_query.retention * 1000 > LOOKBACK_MS


async def probe(check: MetricsCheck, deadline: float, env: ProbeEnv) -> Result:
    target = target_of(check, env)
    at = env.clock.time()
    started = time.perf_counter()
    handed_over = False
    try:
        try:
            response = await fetch(env.http_session(), check.request(),
                                   env.tls_context(check.tls.ca_file, not check.tls.insecure_skip_verify))
        except FETCH_ERRORS as err:
            target.failed(at)
            return Result.failed(fetch_error(err), time.perf_counter() - started)
        latency = time.perf_counter() - started
        if response.too_big:
            target.failed(at)
            return Result.failed(f"scrape body larger than max_body ({int(check.max_body)} bytes)", latency)
        if not 200 <= response.status < 300:
            target.failed(at)
            return Result.failed(f"server returned HTTP status {response.status}", latency)
        handed_over = True
        outcome = await asyncio.to_thread(target.ingest, at, response.raw, response.headers.get("content-type", ""))
    except asyncio.CancelledError:
        # The deadline passed during the scrape: for the series, a failed scrape. (Past the
        # hand-over the worker thread stores the scrape anyway.)
        if not handed_over:
            target.failed(at)
        raise
    latency = time.perf_counter() - started
    detail: dict[str, Any] = {"scraped_samples": target.scraped, "kept_series": target.store.series_count}
    if isinstance(outcome, str):
        return Result.failed(outcome, latency, detail)
    if isinstance(outcome, (int, float)):
        return query_result(outcome, check.labels, latency, detail)
    return query_result(((s.labels, s.value) for s in outcome), check.labels, latency, detail)


def query_result(outcome: float | Iterable[tuple[Mapping[str, str], float]], check_labels: dict[str, str],
                 latency: float, detail: dict[str, Any]) -> Result:
    """A query's answer as a result (shared with the prometheus kind): a scalar or one series
    is ``value``; labelled series are ``series`` and ``detail.series``; no series, no value."""
    if isinstance(outcome, (int, float)):
        detail["result_type"] = "scalar"
        return Result(up=True, value=float(outcome), latency=latency, detail=detail)
    detail["result_type"] = "vector"
    try:
        series = series_values(outcome, check_labels)
    except ValueError as err:
        return Result.failed(str(err), latency, detail)
    detail["series"] = [{"labels": s.label_dict(), "value": json_number(s.value)} for s in series]
    value = series[0].value if len(series) == 1 else None
    labelled = len(series) > 1 or (len(series) == 1 and series[0].labels)
    return Result(up=True, value=value, latency=latency, detail=detail, series=tuple(series) if labelled else ())


def series_values(samples: Iterable[tuple[Mapping[str, str], float]], check_labels: dict[str, str]) -> list[SeriesValue]:
    """Series of a vector as the daemon shows them: without ``__name__`` (as Prometheus drops
    it from alert labels), a label that collides with the check's or a reserved one renamed
    ``exported_<name>``, sorted. Two series left with the same labels are an error, as in
    Prometheus' alerting ("vector contains metrics with the same labelset")."""
    out: dict[tuple[tuple[str, str], ...], SeriesValue] = {}
    taken = {*check_labels, *RESERVED_LABELS}
    for labels, value in samples:
        own = sorted((k, v) for k, v in labels.items() if k != "__name__")
        bad = next((k for k, _ in own if not is_label_name(k) or k.startswith("__")), None)
        if bad is not None:  # a server's answer: it becomes metric and alert labels here
            raise ValueError(f"query result has an invalid label name {_shown_name(bad)}")
        merged = with_series_labels({}, own, taken)
        key = tuple(sorted(merged.items()))
        if key in out:
            raise ValueError(f"query result has several series with the labels {{{_shown(key)}}} once __name__ "
                             "is dropped; aggregate them (sum by (...)) so each series keeps labels of its own")
        out[key] = SeriesValue(key, float(value))
    return [out[key] for key in sorted(out)]


def _shown_name(name: str) -> str:
    return repr(name if len(name) <= 60 else name[:59] + "…")


def _shown(labels: tuple[tuple[str, str], ...]) -> str:
    text = ",".join(f'{k}="{v}"' for k, v in labels)
    return text if len(text) <= 120 else text[:119] + "…"
