"""The `prometheus` kind: against a local fake of /api/v1/query (every answer shape and error),
and against the real Prometheus server scraping a small local app."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from monitor.config.loader import ConfigError, load_config
from monitor.core import secrets
from monitor.core.results import Result, SeriesValue
from monitor.probes.base import ProbeEnv
from monitor.probes.prometheus import PrometheusCheck
from monitor.scheduling.runner import run_check
from tests.metrics_app import MetricsApp, running_metrics_app
from tests.prometheus_server import PrometheusServer


def prom_check(url: str, query: str = "sum(up)", **fields: Any) -> PrometheusCheck:
    config: dict[str, Any] = {"name": "p", "kind": "prometheus", "url": url, "query": query, "interval": 10,
                              "timeout": 3}
    config.update(fields)
    return PrometheusCheck.model_validate(config)


@pytest.fixture(scope="module")
def app() -> Iterator[MetricsApp]:
    with running_metrics_app() as server:
        yield server


@pytest.fixture
async def env() -> AsyncIterator[ProbeEnv]:
    probe_env = ProbeEnv()
    yield probe_env
    await probe_env.close()


def answer(result_type: str, result: Any) -> str:
    return json.dumps({"status": "success", "data": {"resultType": result_type, "result": result}})


def failure(result: Result) -> str:
    assert result.up is False, result
    assert result.error and "\n" not in result.error
    return result.error


async def test_scalar_vector_and_empty(app: MetricsApp, env: ProbeEnv) -> None:
    app.api_answer = (200, answer("scalar", [1700000000, "0.25"]))
    scalar = await run_check(prom_check(app.url("")), env)
    assert scalar.up is True and scalar.value == 0.25 and scalar.series == ()

    app.api_answer = (200, answer("vector", [{"metric": {}, "value": [1700000000, "42"]}]))
    one = await run_check(prom_check(app.url("")), env)
    assert one.value == 42.0 and one.series == ()

    app.api_answer = (200, answer("vector", [
        {"metric": {"__name__": "up", "job": "api", "instance": "a:1"}, "value": [1, "1"]},
        {"metric": {"__name__": "up", "job": "api", "instance": "b:1"}, "value": [1, "NaN"]},
    ]))
    several = await run_check(prom_check(app.url(""), "up"), env)
    assert several.up is True and several.value is None
    assert several.series[0] == SeriesValue((("instance", "a:1"), ("job", "api")), 1.0)
    assert several.detail["series"][1] == {"labels": {"instance": "b:1", "job": "api"}, "value": "NaN"}

    app.api_answer = (200, answer("vector", []))
    empty = await run_check(prom_check(app.url("")), env)
    assert empty.up is True and empty.value is None and empty.error is None


async def test_request_carries_query_time_timeout_and_auth(app: MetricsApp, env: ProbeEnv) -> None:
    app.api_answer = (200, answer("scalar", [1, "1"]))
    await run_check(prom_check(app.url("/"), "sum(rate(x[5m]))", basic_auth={"username": "u", "password": "pw"}), env)
    sent = app.requests[-1]
    assert sent["path"] == "/api/v1/query" and sent["method"] == "GET"
    assert sent["query"]["query"] == "sum(rate(x[5m]))" and sent["query"]["timeout"] == "3s"
    assert float(sent["query"]["time"]) > 1_700_000_000
    assert sent["headers"]["Authorization"] == "Basic " + base64.b64encode(b"u:pw").decode()

    await run_check(prom_check(app.url(""), "up", method="POST", bearer_token="tok"), env)
    sent = app.requests[-1]
    assert sent["method"] == "POST" and sent["form"]["query"] == "up"
    assert sent["headers"]["Authorization"] == "Bearer tok"


@pytest.mark.parametrize(("status", "body", "expected"), [
    (400, '{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected \\"}\\""}',
     'query failed (bad_data): 1:5: parse error: unexpected "}"'),
    (503, '{"status":"error","errorType":"unavailable","error":"overloaded"}', "query failed (unavailable): overloaded"),
    (200, "{not json", "invalid JSON from /api/v1/query"),
    (502, "<html>Bad Gateway</html>", "server returned HTTP status 502"),
    (200, answer("matrix", []), "query returned a range vector (matrix); it must return an instant vector or a scalar"),
    (200, answer("string", [1, "x"]), "query returned a string"),
    (200, answer("vector", [{"metric": {}, "value": "x"}]), "unexpected vector answer"),
    (200, '["status"]', "unexpected answer from /api/v1/query: not a JSON object"),
])
async def test_error_answers_are_one_line(app: MetricsApp, env: ProbeEnv, status: int, body: str,
                                          expected: str) -> None:
    app.api_answer = (status, body)
    assert failure(await run_check(prom_check(app.url("")), env)).startswith(expected)


async def test_unreachable_and_hanging_servers(env: ProbeEnv, closed_port: int) -> None:
    assert "Connect" in failure(await run_check(prom_check(f"http://127.0.0.1:{closed_port}"), env))
    with socket.socket() as listener:  # accepts connections (the kernel's backlog), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        hang = await run_check(prom_check(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=1), env)
    assert hang.error == "timeout"


async def test_huge_answer_is_capped(app: MetricsApp, env: ProbeEnv) -> None:
    app.api_answer = (200, answer("vector", [{"metric": {"i": str(i)}, "value": [1, "1"]} for i in range(40_000)]))
    error = failure(await run_check(prom_check(app.url(""), max_body="1MiB"), env))
    assert error == f"answer larger than max_body ({1024 * 1024} bytes)"
    error = failure(await run_check(prom_check(app.url(""), max_series=1000), env))
    assert error.startswith("query returned 40000 series, over the limit of 1000 (max_series)")


def test_query_syntax_is_checked_at_load_and_secrets_are_registered(tmp_path: Any) -> None:
    with pytest.raises(ValidationError, match="parse error"):
        prom_check("http://127.0.0.1:9090", "sum(rate(x[5m])")
    # A function this parser does not know may still exist on the server (holt_winters in 2.42).
    assert prom_check("http://127.0.0.1:9090", "holt_winters(x[5m], 0.5, 0.5)").query
    with pytest.raises(ValidationError, match="exclusive"):
        prom_check("http://127.0.0.1:9090", basic_auth={"username": "u", "password": "p"}, bearer_token="t")
    (tmp_path / "monitor.yaml").write_text("check_files: [checks.yaml]\nrule_files: []\n")
    (tmp_path / "checks.yaml").write_text(
        "checks:\n  - name: p\n    kind: prometheus\n    url: http://127.0.0.1:9090\n    query: up\n"
        "    bearer_token: sekr1t-bearer-value\n    basic_auth: null\n")
    load_config(tmp_path / "monitor.yaml")
    assert "sekr1t-bearer-value" not in secrets.redact("token sekr1t-bearer-value here")
    (tmp_path / "checks.yaml").write_text(
        "checks:\n  - name: p\n    kind: prometheus\n    url: http://127.0.0.1:9090\n    query: 'sum(up'\n")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "monitor.yaml")
    assert "checks.yaml:5" in str(err.value) and "parse error" in str(err.value)


async def test_against_the_real_prometheus(app: MetricsApp, env: ProbeEnv,
                                           prometheus_server: Callable[..., PrometheusServer]) -> None:
    app.serve("/real/metrics", 'jobs_total{queue="mail"} 5\njobs_total{queue="sms"} 8\n')
    prom = prometheus_server(targets=[f"127.0.0.1:{app.port}"], metrics_path="/real/metrics")
    prom.wait_for_scrapes(count=1)
    several = await run_check(prom_check(prom.url, 'sum by (queue) (jobs_total{job="app"})'), env)
    assert several.up is True, several.error
    assert [(s.label_dict(), s.value) for s in several.series] == [({"queue": "mail"}, 5.0), ({"queue": "sms"}, 8.0)]
    total = await run_check(prom_check(prom.url, "scalar(sum(jobs_total))", method="POST"), env)
    assert total.value == 13.0
    error = failure(await run_check(prom_check(prom.url, "jobs_total[5m]"), env))
    assert "range vector" in error
    bad = failure(await run_check(prom_check(prom.url, 'label_replace(up, "a", "b", "c", "(")'), env))
    assert bad == "query failed (execution): invalid regular expression in label_replace(): ("
