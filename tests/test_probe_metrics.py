"""The `metrics` kind against real local HTTP servers: what a scrape and a query give, and
every way a target can answer badly (each a one-line up=false error, other checks unaffected).

Runs go through ``run_check`` (the runner's deadline applies) with a ``FakeClock`` in the
probe env, so scrapes are "15 s apart" without sleeping."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from monitor.core.clock import FakeClock
from monitor.core.results import Outcome, Result, SeriesValue
from monitor.probes.base import ProbeEnv
from monitor.probes.metrics import MetricsCheck
from monitor.promql.exposition import ACCEPT
from monitor.scheduling.runner import run_check
from tests.metrics_app import OPENMETRICS, MetricsApp, Page, running_metrics_app
from tests.misbehaving_server import MisbehavingServer

QUEUES = """\
# HELP queue_depth Jobs waiting.
# TYPE queue_depth gauge
queue_depth{queue="mail"} 3
queue_depth{queue="billing"} 7
# TYPE jobs_processed_total counter
jobs_processed_total{queue="mail"} 100
jobs_processed_total{queue="billing"} 40
"""


def metrics_check(url: str, query: str, **fields: Any) -> MetricsCheck:
    config: dict[str, Any] = {"name": "m", "kind": "metrics", "url": url, "query": query, "interval": 15, "timeout": 3}
    config.update(fields)
    return MetricsCheck.model_validate(config)


@pytest.fixture(scope="module")
def app() -> Iterator[MetricsApp]:
    with running_metrics_app() as server:
        yield server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def env(clock: FakeClock) -> AsyncIterator[ProbeEnv]:
    probe_env = ProbeEnv(clock=clock)
    yield probe_env
    await probe_env.close()


def failure(result: Result) -> str:
    assert result.up is False, result
    assert result.error and "\n" not in result.error and "Traceback" not in result.error
    return result.error


# -- results ----------------------------------------------------------------------------------


async def test_scalar_is_the_value(app: MetricsApp, env: ProbeEnv) -> None:
    result = await run_check(metrics_check(app.serve("/q1", QUEUES), "scalar(sum(queue_depth))"), env)
    assert result.up is True and result.error is None
    assert result.value == 10.0
    assert result.series == ()
    assert result.detail["result_type"] == "scalar"
    assert result.detail["scraped_samples"] == 4
    assert result.detail["kept_series"] == 2  # only what the query's selector matches


async def test_one_series_is_the_value(app: MetricsApp, env: ProbeEnv) -> None:
    result = await run_check(metrics_check(app.serve("/q2", QUEUES), "sum(queue_depth)"), env)
    assert result.up is True and result.value == 10.0
    assert result.series == ()  # no labels: nothing to tell series apart by
    assert result.detail["series"] == [{"labels": {}, "value": 10.0}]


async def test_several_series_are_one_result_each(app: MetricsApp, env: ProbeEnv) -> None:
    result = await run_check(metrics_check(app.serve("/q3", QUEUES), "queue_depth > 0"), env)
    assert result.up is True
    assert result.value is None  # several: each series has its own
    assert result.series == (SeriesValue((("queue", "billing"),), 7.0), SeriesValue((("queue", "mail"),), 3.0))
    assert result.detail["series"] == [{"labels": {"queue": "billing"}, "value": 7.0},
                                       {"labels": {"queue": "mail"}, "value": 3.0}]


async def test_one_labelled_series_keeps_its_labels(app: MetricsApp, env: ProbeEnv) -> None:
    # So the series' alert keeps one identity when a second series appears later.
    result = await run_check(metrics_check(app.serve("/q4", QUEUES), 'queue_depth{queue="mail"}'), env)
    assert result.value == 3.0
    assert result.series == (SeriesValue((("queue", "mail"),), 3.0),)


async def test_empty_result_is_up_without_value(app: MetricsApp, env: ProbeEnv) -> None:
    result = await run_check(metrics_check(app.serve("/q5", QUEUES), 'queue_depth{queue="none"}'), env)
    assert result.up is True and result.error is None
    assert result.value is None and result.series == ()
    assert result.detail["series"] == []


async def test_series_labels_that_collide_with_the_checks_are_exported_prefixed(app: MetricsApp, env: ProbeEnv) -> None:
    body = 'req{check="x",service="api",path="/a"} 1\nreq{check="y",service="api",path="/b"} 2\n'
    check = metrics_check(app.serve("/q6", body), "req", labels={"service": "web"})
    result = await run_check(check, env)
    assert [s.label_dict() for s in result.series] == [
        {"exported_check": "x", "exported_service": "api", "path": "/a"},
        {"exported_check": "y", "exported_service": "api", "path": "/b"},
    ]


async def test_rate_reads_the_samples_of_earlier_runs(app: MetricsApp, env: ProbeEnv, clock: FakeClock) -> None:
    check = metrics_check(app.url("/counter"), "sum(rate(jobs_processed_total[1m]))")
    app.serve("/counter", "jobs_processed_total 100\n")
    first = await run_check(check, env)
    assert first.up is True and first.value is None  # one sample: rate has nothing yet
    clock.advance(15)
    app.serve("/counter", "jobs_processed_total 130\n")
    second = await run_check(check, env)
    # Prometheus' extrapolation: 30 over 15 s of samples, extended by half an interval
    # towards the window's start (22.5 s), per second of the 1 m window.
    assert second.value == pytest.approx(30 * 22.5 / 15 / 60)


async def test_the_store_is_kept_across_a_reload_unless_url_or_query_change(app: MetricsApp, env: ProbeEnv,
                                                                             clock: FakeClock) -> None:
    app.serve("/keep", "c_total 10\n")
    query = "sum(increase(c_total[1m]))"
    await run_check(metrics_check(app.url("/keep"), query), env)
    clock.advance(15)
    app.serve("/keep", "c_total 20\n")
    # Another interval, timeout and labels: the same target and query, so the samples stay.
    same = await run_check(metrics_check(app.url("/keep"), query, interval=20, timeout=4, labels={"a": "b"}), env)
    assert same.value is not None and same.value > 0
    clock.advance(15)
    app.serve("/keep", "c_total 30\n")
    changed = await run_check(metrics_check(app.url("/keep"), query + " * 1"), env)
    assert changed.value is None  # a new query starts with one sample


async def test_scrape_sends_prometheus_accept_and_the_configured_headers(app: MetricsApp, env: ProbeEnv) -> None:
    app.serve("/hdr", QUEUES)
    await run_check(metrics_check(app.url("/hdr"), "sum(queue_depth)", headers={"Authorization": "Bearer s3cret"}), env)
    sent = [r for r in app.requests if r["path"] == "/hdr"][-1]["headers"]
    assert sent["Accept"] == ACCEPT
    assert sent["Authorization"] == "Bearer s3cret"
    assert "gzip" in sent["Accept-Encoding"]
    assert sent["X-Prometheus-Scrape-Timeout-Seconds"] == "3"


async def test_openmetrics_answer(app: MetricsApp, env: ProbeEnv) -> None:
    body = ("# TYPE jobs counter\njobs_total{queue=\"a\"} 5 1699999990.5\njobs_created{queue=\"a\"} 1.6e9\n"
            "# TYPE up_info info\nup_info{v=\"1\"} 1\n# EOF\n")
    result = await run_check(metrics_check(app.serve("/om", body, OPENMETRICS), "sum(jobs_total) + sum(up_info)"), env)
    assert result.up is True, result.error
    assert result.value == 6.0


async def test_gzip_answer(app: MetricsApp, env: ProbeEnv) -> None:
    app.pages["/gz"] = Page(gzip.compress(QUEUES.encode()), headers={"Content-Encoding": "gzip"})
    result = await run_check(metrics_check(app.url("/gz"), "sum(queue_depth)"), env)
    assert result.up is True and result.value == 10.0


# -- bad answers ------------------------------------------------------------------------------


async def test_html_answer_is_an_invalid_scrape(app: MetricsApp, env: ProbeEnv) -> None:
    url = app.serve("/html", "<!doctype html>\n<html><body>Login</body></html>\n", "text/html; charset=utf-8")
    error = failure(await run_check(metrics_check(url, "sum(queue_depth)"), env))
    assert "line 1" in error and "text/html" in error


async def test_status_500_is_a_failed_scrape(app: MetricsApp, env: ProbeEnv) -> None:
    url = app.serve("/err", "oops", status=500)
    assert failure(await run_check(metrics_check(url, "sum(queue_depth)"), env)) == "server returned HTTP status 500"


async def test_hang_times_out_within_the_timeout(misbehaving_http: MisbehavingServer, env: ProbeEnv) -> None:
    started = asyncio.get_running_loop().time()
    result = await run_check(metrics_check(misbehaving_http.url("/hang"), "sum(x)", timeout=1), env)
    assert result.outcome is Outcome.TIMEOUT and result.error == "timeout"
    assert asyncio.get_running_loop().time() - started < 10


async def test_50_mb_body_is_capped(misbehaving_http: MisbehavingServer, env: ProbeEnv) -> None:
    result = await run_check(metrics_check(misbehaving_http.url("/big"), "sum(x)", timeout=10), env)
    assert failure(result) == f"scrape body larger than max_body ({10 * 1024 * 1024} bytes)"


@pytest.mark.parametrize(("body", "line", "reason"), [
    ("a 1\nb{x=\"1\" 2\nc 3\n", 2, "invalid label set"),
    ("a 1\nb one\n", 2, "invalid value 'one'"),
    ("a 1\n\nb 2 3 4\n", 3, ""),
    ("a{x=\"1\",x=\"2\"} 1\n", 1, "label 'x' given twice"),
    ("a 1 1.5\n", 1, "invalid timestamp"),
    ("# TYPE a countr\na 1\n", 1, "invalid metric type"),
])
async def test_invalid_exposition_names_the_line(app: MetricsApp, env: ProbeEnv, body: str, line: int,
                                                 reason: str) -> None:
    error = failure(await run_check(metrics_check(app.serve(f"/bad{line}{len(body)}", body), "sum(a)"), env))
    assert error.startswith(f"invalid exposition at line {line}: {reason}")


async def test_openmetrics_without_eof_is_invalid(app: MetricsApp, env: ProbeEnv) -> None:
    error = failure(await run_check(metrics_check(app.serve("/noeof", "a_total 1\n", OPENMETRICS), "sum(a_total)"), env))
    assert error == "invalid exposition: data does not end with # EOF" or "does not end with # EOF" in error


async def test_duplicate_series_is_an_error(app: MetricsApp, env: ProbeEnv) -> None:
    body = 'a{x="1",y="2"} 1\nb 1\na{y="2",x="1"} 2\n'
    error = failure(await run_check(metrics_check(app.serve("/dup", body), "sum(a)"), env))
    assert error.startswith("invalid exposition at line 3: duplicate series")


async def test_100000_series_is_the_series_limit_and_old_data_stays(app: MetricsApp, env: ProbeEnv,
                                                                    clock: FakeClock) -> None:
    app.serve("/many", "".join(f'hits{{id="{i}"}} {i}\n' for i in range(10)))
    check = metrics_check(app.url("/many"), "count(hits)", interval=60, timeout=60)
    ok = await run_check(check, env)
    assert ok.value == 10.0
    clock.advance(15)
    app.serve("/many", "".join(f'hits{{id="{i}"}} {i}\n' for i in range(100_000)))
    error = failure(await run_check(check, env))
    assert "100000 series" in error and "limit of 10000" in error and "max_series" in error
    clock.advance(15)
    app.serve("/many", "".join(f'hits{{id="{i}"}} {i}\n' for i in range(12)))
    back = await run_check(check, env)
    assert back.value == 12.0


async def test_a_bad_target_leaves_other_checks_alone(app: MetricsApp, misbehaving_http: MisbehavingServer,
                                                      env: ProbeEnv) -> None:
    good = metrics_check(app.serve("/good", QUEUES), "sum(queue_depth)").model_copy(update={"name": "good"})
    bad = [
        metrics_check(misbehaving_http.url("/hang"), "sum(x)", name="hang", timeout=2),
        metrics_check(misbehaving_http.url("/big"), "sum(x)", name="big", timeout=3),
        metrics_check(app.serve("/html2", "<html>", "text/html"), "sum(x)", name="html"),
    ]
    results = await asyncio.gather(run_check(good, env), *(run_check(c, env) for c in bad))
    assert results[0].up is True and results[0].value == 10.0
    assert all(r.up is False for r in results[1:])


# -- config -----------------------------------------------------------------------------------


def test_unsupported_query_is_a_config_error_naming_it() -> None:
    with pytest.raises(ValidationError, match="unsupported function label_replace"):
        metrics_check("http://127.0.0.1:1/metrics", 'label_replace(up, "a", "$1", "b", "(.*)")')
    with pytest.raises(ValidationError, match="parse error"):
        metrics_check("http://127.0.0.1:1/metrics", "sum(rate(x[5m])")
    with pytest.raises(ValidationError, match="url must be http"):
        metrics_check("ftp://x/metrics", "sum(x)")
    with pytest.raises(ValidationError, match="max_series"):
        metrics_check("http://127.0.0.1:1/metrics", "sum(x)", max_series=0)


def test_bad_query_is_a_file_line_error_at_load(tmp_path: Any) -> None:
    from monitor.config.loader import ConfigError, load_config

    (tmp_path / "monitor.yaml").write_text("check_files: [checks.yaml]\nrule_files: []\n")
    (tmp_path / "checks.yaml").write_text(
        "checks:\n  - name: ok\n    kind: metrics\n    url: http://127.0.0.1:1/metrics\n    query: sum(up)\n"
        "  - name: bad\n    kind: metrics\n    url: http://127.0.0.1:1/metrics\n"
        "    query: 'label_join(up, \"a\", \",\", \"b\")'\n")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "monitor.yaml")
    problems = [str(p) for p in err.value.problems]
    assert len(problems) == 1
    assert problems[0].startswith(f"{tmp_path / 'checks.yaml'}:9:") or "checks.yaml:9:" in problems[0]
    assert "unsupported function label_join" in problems[0]
