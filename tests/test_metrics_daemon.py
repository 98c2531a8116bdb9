"""The `metrics` kind inside the real daemon: per-series alerts, per-series
`monitor_check_value`, `detail.series` in the API; a target answering badly costs its own
check only. And `monitor check` on a metrics check."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.config.loader import load_config
from monitor.daemon import Daemon
from tests.metrics_app import MetricsApp, running_metrics_app
from tests.test_cli import MONITOR
from tests.test_http_api import eventually, free_port

QUEUES = 'queue_depth{queue="mail"} 3\nqueue_depth{queue="billing"} 7\nqueue_depth{queue="sms"} 12\n'


@pytest.fixture(scope="module")
def app() -> Iterator[MetricsApp]:
    with running_metrics_app() as server:
        yield server


def write_config(tmp_path: Path, app: MetricsApp, token: str = "t0ken") -> Path:
    (tmp_path / "monitor.yaml").write_text(
        f"global:\n  listen: 127.0.0.1:{free_port()}\n  state: sqlite:///{tmp_path}/state.db\n  api_token: {token}\n"
        "check_files: [checks.yaml]\nrule_files: [rules.yaml]\n")
    (tmp_path / "checks.yaml").write_text(f"""\
checks:
  - name: queues
    kind: metrics
    url: {app.url('/d/queues')}
    query: queue_depth
    interval: 1s
    labels: {{team: jobs}}
  - name: broken
    kind: metrics
    url: {app.url('/d/html')}
    query: sum(queue_depth)
    interval: 1s
  - name: total
    kind: metrics
    url: {app.url('/d/queues')}
    query: sum(queue_depth)
    interval: 1s
""")
    (tmp_path / "rules.yaml").write_text("""\
groups:
  - name: g
    rules:
      - alert: Backlog
        check: queues
        expr: value > 5
""")
    return tmp_path / "monitor.yaml"


@pytest.fixture
async def daemon(tmp_path: Path, app: MetricsApp) -> AsyncIterator[tuple[Daemon, httpx.AsyncClient]]:
    app.serve("/d/queues", QUEUES)
    app.serve("/d/html", "<html><body>sign in</body></html>", "text/html")
    config = load_config(write_config(tmp_path, app))
    d = Daemon(config)
    task = asyncio.create_task(d.run())
    await eventually(lambda: d.ready)
    async with httpx.AsyncClient(base_url=f"http://{config.settings.listen}", timeout=10) as client:
        yield d, client
    d.stop()
    await asyncio.wait_for(task, 15)


async def test_series_alerts_metrics_and_api(daemon: tuple[Daemon, httpx.AsyncClient], app: MetricsApp) -> None:
    d, client = daemon
    def settled() -> bool:
        last = {s.check.name: s.last for s in d.statuses.all()}
        return all(r is not None and r.error != "timeout" for r in last.values()) and len(d.engine.alerts) == 2

    await eventually(settled, timeout=30)
    alerts = (await client.get("/api/v1/alerts")).json()["data"]["alerts"]
    assert sorted((a["labels"]["queue"], a["labels"]["team"], a["state"]) for a in alerts) == [
        ("billing", "jobs", "firing"), ("sms", "jobs", "firing")]

    families = {f.name: f for f in text_string_to_metric_families((await client.get("/metrics")).text)}
    values = {(s.labels["check"], s.labels.get("queue")): s.value for s in families["monitor_check_value"].samples}
    assert values[("queues", "mail")] == 3.0 and values[("queues", "sms")] == 12.0
    assert values[("total", None)] == 22.0
    assert ("broken", None) not in values
    assert all(s.labels.get("team") == "jobs" for s in families["monitor_check_value"].samples
               if s.labels["check"] == "queues")

    checks = {c["name"]: c for c in (await client.get("/api/v1/checks")).json()}
    assert checks["queues"]["last"]["value"] is None
    assert checks["queues"]["last"]["detail"]["series"] == [
        {"labels": {"queue": "billing"}, "value": 7.0}, {"labels": {"queue": "mail"}, "value": 3.0},
        {"labels": {"queue": "sms"}, "value": 12.0}]
    assert checks["total"]["last"]["value"] == 22.0 and checks["total"]["last"]["up"] is True
    # The target answering HTML fails its own check, with the line, and nothing else.
    assert checks["broken"]["last"]["up"] is False
    assert "invalid exposition at line 1" in checks["broken"]["last"]["error"]
    assert "3 series" in (await client.get("/")).text

    # A series goes away: its alert resolves, the other stays.
    app.serve("/d/queues", 'queue_depth{queue="mail"} 3\nqueue_depth{queue="sms"} 12\n')
    await eventually(lambda: {a.labels["queue"] for a in d.engine.alerts.values()} == {"sms"}, timeout=30)


def test_check_command_prints_series_and_query_result(tmp_path: Path, app: MetricsApp) -> None:
    app.serve("/cli/metrics", 'http_requests_total{code="200"} 10\nhttp_requests_total{code="500"} 2\nother 1\n')
    (tmp_path / "monitor.yaml").write_text("check_files: [checks.yaml]\nrule_files: [rules.yaml]\n")
    (tmp_path / "checks.yaml").write_text(f"""\
checks:
  - name: errors
    kind: metrics
    url: {app.url('/cli/metrics')}
    query: sum by (code) (rate(http_requests_total[1m]))
    interval: 1s
  - name: plain
    kind: metrics
    url: {app.url('/cli/metrics')}
    query: http_requests_total
""")
    (tmp_path / "rules.yaml").write_text(
        "groups:\n  - name: g\n    rules:\n      - alert: Many\n        check: plain\n        expr: value > 5\n")
    out = subprocess.run([*MONITOR, "check", "plain", "-c", str(tmp_path / "monitor.yaml")], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "series   2 kept for the query's selectors, of 3 samples in the last scrape" in out.stdout
    assert 'http_requests_total{code="500"} 2' in out.stdout
    assert "query    vector of 2 series" in out.stdout
    assert "rule     Many: WOULD FIRE" in out.stdout and '1 of 2 series: {code="200"}' in out.stdout
    ranged = subprocess.run([*MONITOR, "check", "errors", "--json", "-c", str(tmp_path / "monitor.yaml")],
                            capture_output=True, text=True, timeout=60)
    assert ranged.returncode == 0, ranged.stderr
    body = json.loads(ranged.stdout)
    assert body["scrapes"] == 2 and body["gap_seconds"] == 1.0
    assert body["kept_series"]["count"] == 2
    # The counters did not move between the two scrapes: a rate of 0 per series.
    assert [(s["labels"], s["value"]) for s in body["detail"]["series"]] == [({"code": "200"}, 0.0),
                                                                              ({"code": "500"}, 0.0)]
