"""The daemon's HTTP face, with the real daemon in-process on a free port."""

from __future__ import annotations

import time
import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.core.timestamps import rfc3339
from monitor.config.loader import load_config
from monitor.daemon import Daemon

CHECKS = """checks:
  - name: beat
    kind: heartbeat
    interval: 200ms
    max_age: 1h
    labels: {service: jobs, team: core}
  - name: db
    kind: postgres
    dsn: postgresql://postgres:hunter2@127.0.0.1:5432/postgres
    interval: 300ms
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(tmp_path: Path, token: str | None = None, checks: str = CHECKS) -> Path:
    port = free_port()
    token_line = f"  api_token: {token}\n" if token else ""
    (tmp_path / "monitor.yaml").write_text(
        f"global:\n  listen: 127.0.0.1:{port}\n  state: sqlite:///{tmp_path}/state.db\n{token_line}check_files: [checks.yaml]\nrule_files: []\n"
    )
    (tmp_path / "checks.yaml").write_text(checks)
    return tmp_path / "monitor.yaml"


async def eventually(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[tuple[Daemon, httpx.AsyncClient]]:
    config = load_config(write_config(tmp_path, token="t0ken"))
    d = Daemon(config)
    task = asyncio.create_task(d.run())
    await eventually(lambda: d.ready)
    async with httpx.AsyncClient(base_url=f"http://{config.settings.listen}", timeout=5) as client:
        yield d, client
    d.stop()
    await asyncio.wait_for(task, 10)


async def test_probes_of_its_own_health(daemon: tuple[Daemon, httpx.AsyncClient]) -> None:
    _, client = daemon
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/readyz")).json() == {"status": "ready"}


async def test_metrics_carry_check_labels(daemon: tuple[Daemon, httpx.AsyncClient]) -> None:
    d, client = daemon
    await eventually(lambda: all(s.last is not None for s in d.statuses.all()))
    text = (await client.get("/metrics")).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    up = {s.labels["check"]: s for s in families["monitor_check_up"].samples}
    assert up["beat"].labels == {"check": "beat", "service": "jobs", "team": "core"}
    assert up["beat"].value == 1.0 and up["db"].value == 1.0
    runs = [s for s in families["monitor_check_runs"].samples if s.labels["check"] == "beat"]
    assert {s.labels["result"] for s in runs} == {"success", "failure", "timeout", "error"}
    assert families["monitor_scheduler_lag_seconds"].type == "histogram"
    build = families.get("monitor_build") or families["monitor_build_info"]
    assert build.samples[0].labels["version"]
    assert "hunter2" not in text
    openmetrics = await client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.rstrip().endswith("# EOF")


async def test_checks_api_and_no_secrets(daemon: tuple[Daemon, httpx.AsyncClient]) -> None:
    d, client = daemon
    await eventually(lambda: all(s.last is not None for s in d.statuses.all()))
    body = (await client.get("/api/v1/checks")).json()
    by_name = {c["name"]: c for c in body}
    assert by_name["db"]["last"]["up"] is True and by_name["db"]["last"]["value"] == 1.0
    assert by_name["beat"]["interval"] == "200ms"
    assert "hunter2" not in (await client.get("/api/v1/checks")).text
    assert "hunter2" not in (await client.get("/")).text
    missing = await client.get("/api/v1/checks/nope")
    assert missing.status_code == 404 and "error" in missing.json()


async def test_heartbeat_push_needs_token(daemon: tuple[Daemon, httpx.AsyncClient]) -> None:
    d, client = daemon
    denied = await client.post("/api/v1/heartbeat/beat")
    assert denied.status_code == 401 and denied.json()["error"]
    assert "beat" not in d.env.heartbeats
    wrong = await client.post("/api/v1/heartbeat/beat", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    auth = {"Authorization": "Bearer t0ken"}
    assert (await client.post("/api/v1/heartbeat/beat?status=fail", headers=auth)).status_code == 200
    await eventually(lambda: (s := d.statuses.get("beat")) is not None and s.last is not None and not s.last.up)
    assert (await client.post("/api/v1/heartbeat/beat", headers=auth)).status_code == 200
    await eventually(lambda: (s := d.statuses.get("beat")) is not None and s.last is not None and s.last.up)
    assert (await client.post("/api/v1/heartbeat/db", headers=auth)).status_code == 404


async def test_reload_keeps_old_config_when_new_one_is_invalid(daemon: tuple[Daemon, httpx.AsyncClient], tmp_path: Path) -> None:
    d, client = daemon
    auth = {"Authorization": "Bearer t0ken"}
    (tmp_path / "checks.yaml").write_text(CHECKS + "  - name: broken\n    kind: nosuch\n")
    bad = await client.post("/-/reload", headers=auth)
    assert bad.status_code == 400 and "nosuch" in bad.json()["message"]
    assert [s.check.name for s in d.statuses.all()] == ["beat", "db"]
    metrics = (await client.get("/metrics")).text
    assert "monitor_config_last_reload_successful 0.0" in metrics

    (tmp_path / "checks.yaml").write_text(CHECKS + "  - name: disk\n    kind: disk\n    interval: 200ms\n")
    good = await client.post("/-/reload", headers=auth)
    assert good.status_code == 200
    assert [s.check.name for s in d.statuses.all()] == ["beat", "db", "disk"]
    await eventually(lambda: (s := d.statuses.get("disk")) is not None and s.last is not None)
    assert "monitor_config_last_reload_successful 1.0" in (await client.get("/metrics")).text


async def test_status_page_shows_alerts_first_and_marks_silenced(daemon: tuple[Daemon, httpx.AsyncClient]) -> None:
    from monitor.core.records import AlertRecord

    d, client = daemon
    for name, env in (("DbDown", "prod"), ("DbDown2", "staging")):
        d.engine.alerts[name] = AlertRecord(name, name, "db", "firing", {"alertname": name, "env": env, "severity": "critical"},
                                            {"summary": f"<b>{name}</b> summary"}, active_at=d.now() - 120)
    silence = {"matchers": [{"name": "env", "value": "staging", "isRegex": False}],
               "startsAt": "2020-01-01T00:00:00Z", "endsAt": rfc3339(time.time() + 86400),
               "createdBy": "test", "comment": "maintenance"}
    assert (await client.post("/api/v1/silences", json=silence, headers={"Authorization": "Bearer t0ken"})).status_code == 200
    d.engine.alerts["Slow"] = AlertRecord("Slow", "Slow", "db", "pending", {"alertname": "Slow", "env": "staging"},
                                          {"summary": "slow"}, active_at=d.now() - 30)
    page = (await client.get("/")).text
    assert page.index("<h2>Alerts</h2>") < page.index("<h2>Silences</h2>") < page.index("<h2>Checks</h2>")
    assert '<li class="alert firing"><span class="badge state-firing">firing</span><span class="badge sev-critical">critical</span><b>DbDown</b>' in page
    assert ('<li class="alert firing muted"><span class="badge state-firing">firing</span><span class="badge sev-critical">'
            'critical</span><span class="badge muted">silenced</span><b>DbDown2</b>') in page
    # A pending alert is pending, even when a silence would mute it once it fires.
    assert '<li class="alert pending"><span class="badge state-pending">pending</span><b>Slow</b>' in page
    assert "<code>env=&quot;staging&quot;</code>" in page and "maintenance" in page
    assert "&lt;b&gt;DbDown&lt;/b&gt; summary" in page  # annotations are escaped
