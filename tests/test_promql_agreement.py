"""The `metrics` kind's PromQL gives what Prometheus gives (docs/configuration.md, "PromQL").

A real Prometheus server (Debian's package, installed by `make test` when missing) scrapes the
app of ``tests/promql_app.py`` once a second for about half a minute, through a counter reset,
an error burst, a series that appears, one that disappears and a NaN gauge. Then every query
of the corpus (every `metrics` query of the shipped catalogs, plus one or more per supported
function, operator and aggregation) is asked of Prometheus and of the daemon's evaluator over
the same raw samples, at several evaluation times, and the answers must agree series by series
within ``TOLERANCE`` (relative). The summary line printed at the end gives the corpus size and
the worst relative difference seen.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests import promql_app
from tests.prometheus_agreement import Scrapes, compare, own_answer, prometheus_answer, read_scrapes
from tests.prometheus_server import running_prometheus

ROOT = Path(__file__).resolve().parent.parent
# Prometheus computes in milliseconds as integers, the daemon in float seconds: the answers
# differ in the last bits only. 1e-9 is far below anything an alert threshold can see.
TOLERANCE = 1e-9
RUN_SECONDS = 30.0


def catalog_queries() -> list[str]:
    """Every `metrics` query of the shipped catalogs, with ${VAR:-default} at its default."""
    queries = []
    for path in sorted((ROOT / "checks").glob("*.yaml")):
        for check in yaml.safe_load(path.read_text()).get("checks", []):
            if check.get("kind") == "metrics":
                queries.append(re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", check["query"]))
    return queries


SELECTORS = [
    'http_requests_total',
    'http_requests_total{status="500"}',
    'http_requests_total{status!="200"}',
    'http_requests_total{status=~"5.."}',
    'http_requests_total{handler!~"/api/.*"}',
    'http_requests_total{status=~"5..", handler="/api/chat"}',
    '{__name__=~"db_pool_.*"}',
    'http_requests_total offset 5s',
    'queue_depth offset 2s',
    'worker_up',
    'cache_hit_ratio',
    'no_such_metric',
]

FUNCTIONS = [
    'rate(http_requests_total[5m])',
    'rate(http_requests_total[10s])',
    'rate(http_requests_total[3s])',
    'rate(http_requests_total{handler="/health"}[20s])',
    'irate(http_requests_total[5m])',
    'increase(http_requests_total[10s])',
    'increase(http_requests_total[5m])',
    'delta(db_pool_connections_in_use[10s])',
    'delta(temperature_celsius[5m])',
    'idelta(queue_depth[5m])',
    'deriv(db_pool_connections_in_use[10s])',
    'deriv(temperature_celsius[5m])',
    'avg_over_time(db_pool_connections_in_use[10s])',
    'min_over_time(temperature_celsius[5m])',
    'max_over_time(queue_depth[10s])',
    'sum_over_time(queue_depth[5s])',
    'count_over_time(worker_up[5m])',
    'stddev_over_time(db_pool_connections_in_use[10s])',
    'stdvar_over_time(temperature_celsius[10s])',
    'quantile_over_time(0.9, db_pool_connections_in_use[20s])',
    'last_over_time(queue_depth[5m])',
    'changes(queue_depth[10s])',
    'resets(http_requests_total[5m])',
    'histogram_quantile(0.95, rate(http_request_duration_seconds_bucket[5m]))',
    'histogram_quantile(0.5, sum by (le) (rate(http_request_duration_seconds_bucket[10s])))',
    'histogram_quantile(0.99, sum by (le, handler) (rate(http_request_duration_seconds_bucket[5m])))',
    'histogram_quantile(0, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))',
    'histogram_quantile(1.5, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))',
    'absent(no_such_metric)',
    'absent(worker_up{worker="w1"})',
    'absent(nonexistent{job="x", instance=~"y"})',
    'clamp(temperature_celsius, -1, 1)',
    'clamp_min(temperature_celsius, 0)',
    'clamp_max(db_pool_connections_in_use, 5)',
    'abs(temperature_celsius)',
    'round(db_pool_connections_in_use)',
    'round(temperature_celsius, 0.5)',
    'ceil(temperature_celsius)',
    'floor(temperature_celsius)',
    'scalar(db_pool_size{pool="main"})',
    'scalar(db_pool_size)',
    'vector(1)',
    'vector(scalar(queue_depth{queue="celery"}))',
    'time()',
    'time() - 10',
]

AGGREGATIONS = [
    'sum(rate(http_requests_total[5m]))',
    'sum by (handler) (rate(http_requests_total[5m]))',
    'sum without (method, status) (rate(http_requests_total[10s]))',
    'avg(db_pool_connections_in_use)',
    'avg by (pool) (db_pool_connections_in_use)',
    'min(temperature_celsius)',
    'max by (queue) (queue_depth)',
    'count(http_requests_total)',
    'count by (status) (http_requests_total)',
    'topk(2, rate(http_requests_total[5m]))',
    'bottomk(1, queue_depth)',
    'topk by (handler) (1, http_requests_total)',
    'quantile(0.5, rate(http_requests_total[5m]))',
    'quantile by (handler) (0.9, rate(http_requests_total[5m]))',
    'sum(cache_hit_ratio)',
    'max(worker_up)',
]

OPERATORS = [
    'db_pool_connections_in_use / db_pool_size',
    'db_pool_connections_in_use / on (pool) db_pool_size * 100',
    'db_pool_connections_in_use / ignoring (pool) group_left db_pool_size{pool="main"}',
    'sum by (handler) (rate(http_requests_total{status=~"5.."}[5m])) / sum by (handler) (rate(http_requests_total[5m]))',
    'rate(http_requests_total{status=~"5.."}[5m]) / ignoring (status) group_left sum without (status) (rate(http_requests_total[5m]))',
    'sum without (status) (rate(http_requests_total[5m])) / ignoring (status) group_right rate(http_requests_total{status=~"5.."}[5m])',
    'db_pool_size - db_pool_connections_in_use',
    'queue_depth % 7',
    'temperature_celsius ^ 2',
    '2 ^ 3 ^ 2',
    '-temperature_celsius',
    '1 / 0',
    '-1 / 0',
    '0 / 0',
    'db_pool_connections_in_use / 0',
    'queue_depth > 10',
    'queue_depth > bool 10',
    'queue_depth == 0',
    'temperature_celsius != bool 0',
    'temperature_celsius <= 0',
    'temperature_celsius >= 1',
    'db_pool_connections_in_use < on (pool) db_pool_size',
    'db_pool_connections_in_use > bool on (pool) db_pool_size',
    '1 < bool 2',
    '3 > 2',
    'cache_hit_ratio > 0.5',
    'cache_hit_ratio == bool cache_hit_ratio',
    'worker_up and on (worker) worker_up{worker="w1"}',
    'queue_depth or db_pool_size',
    'http_requests_total unless http_requests_total{status="500"}',
    'queue_depth{queue="celery"} and queue_depth > 5',
    'sum(rate(http_requests_total[5m])) > 5',
    'vector(1) + on () group_left db_pool_size',
    # Prometheus refuses these; so must the daemon.
    'http_requests_total / on (handler) http_requests_total',
    'http_requests_total + ignoring (status) http_requests_total',
]

CORPUS = SELECTORS + FUNCTIONS + AGGREGATIONS + OPERATORS


@pytest.fixture(scope="module")
def recorded() -> Iterator[tuple[str, Scrapes, float]]:
    """Prometheus after ~30 s of scraping the app: (its URL, its raw scrapes, app start)."""
    with promql_app.running_app() as (app_url, clock):
        with running_prometheus([app_url.split("://", 1)[1]], job="app", scrape_interval="1s") as prometheus:
            prometheus.wait_for_scrapes(count=3)
            started = clock[0]
            time.sleep(max(0.0, started + RUN_SECONDS - time.time()))
            scrapes = read_scrapes(prometheus.url, time.time())
            yield prometheus.url, scrapes, started


def evaluation_times(scrapes: Scrapes, started: float) -> list[float]:
    """Before the reset, during the burst, just after it, at a scrape's exact timestamp, and
    between the last two scrapes."""
    times = scrapes.times
    within = [t for t in times if t - started > promql_app.RESTART - 2]
    marks = [started + promql_app.RESTART - 1.5, started + promql_app.BURST_START + 5.3,
             started + promql_app.BURST_END + 1.7, times[len(times) * 3 // 4], times[-1] - 0.4]
    return [round(t, 3) for t in marks if within and times[0] + 2 < t <= times[-1]]


def test_the_run_covered_the_timeline(recorded: tuple[str, Scrapes, float]) -> None:
    _, scrapes, started = recorded
    assert len(scrapes.times) >= 20, "Prometheus scraped too few times to compare anything"
    assert scrapes.times[0] - started < promql_app.RESTART - 3
    assert scrapes.times[-1] - started > promql_app.BURST_END + 3
    assert scrapes.series >= 30


def test_catalog_queries_are_in_the_corpus() -> None:
    catalog = catalog_queries()
    assert len(catalog) >= 5, "the shipped catalogs lost their application-metrics checks"


@pytest.mark.parametrize("query", catalog_queries() + CORPUS)
def test_agrees_with_prometheus(recorded: tuple[str, Scrapes, float], query: str,
                                request: pytest.FixtureRequest) -> None:
    prometheus, scrapes, started = recorded
    worst = 0.0
    for at in evaluation_times(scrapes, started):
        theirs = prometheus_answer(prometheus, query, at)
        ours = own_answer(scrapes, query, at)
        diff, why = compare(theirs, ours)
        assert not why, f"{query} at +{at - started:.1f}s: {why}"
        assert diff <= TOLERANCE, f"{query} at +{at - started:.1f}s: prometheus {theirs}, ours {ours}"
        worst = max(worst, diff)
        _SHAPES.append("error" if isinstance(theirs, str) else "scalar" if isinstance(theirs, float)
                       else "empty" if not theirs else "vector")
    _WORST.append((worst, query))


_WORST: list[tuple[float, str]] = []
_SHAPES: list[str] = []


def test_summary(recorded: tuple[str, Scrapes, float], capsys: pytest.CaptureFixture[str]) -> None:
    """Prints the corpus size and the worst relative difference (runs after the corpus)."""
    worst = max(_WORST, default=(math.nan, ""))
    # The comparison means something only if most answers hold data: an engine that answered
    # every query with an empty vector would agree on the empty ones and fail on the rest.
    assert _SHAPES.count("vector") + _SHAPES.count("scalar") >= 0.8 * len(_SHAPES), _SHAPES
    with capsys.disabled():
        print(f"\nPromQL agreement: {len(catalog_queries()) + len(CORPUS)} queries x "
              f"{len(evaluation_times(recorded[1], recorded[2]))} evaluation times, "
              f"{len(_WORST)} compared; answers: {_SHAPES.count('vector')} vectors, {_SHAPES.count('scalar')} scalars,"
              f" {_SHAPES.count('empty')} empty, {_SHAPES.count('error')} errors; worst relative difference"
              f" {worst[0]:.3g} ({worst[1]})")
