"""Pages do not wait for the state store (docs/notifications.md, "When the state store fails").

The real daemon, its state in a private PostgreSQL that the tests stop: the outage that
should page is not allowed to keep the page from going out, nothing is sent twice once the
store is back, and SIGTERM finishes within its grace whatever the store does.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.receiver_sink import ReceiverSink
from tests.servers import PostgresServer, RedisServer, free_port
from tests.test_alert_restart import daemon_runs, wait
from tests.test_daemon_recovery import RunningDaemon

ALERTING = """
route:
  receiver: oncall
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: oncall
    pagerduty_configs: [{{routing_key: 'rk-secret', url: '{sink}/pd'}}]
    webhook_configs: [{{url: '{sink}/hook'}}]
"""


@pytest.fixture
def sink() -> Iterator[ReceiverSink]:
    with ReceiverSink(default="200") as server:
        yield server


def write_config(tmp_path: Path, port: int, redis_url: str, state: str, sink: ReceiverSink) -> None:
    (tmp_path / "main.yaml").write_text(
        f"global: {{listen: '127.0.0.1:{port}', state: '{state}'}}\n"
        "check_files: [checks.yaml]\nrule_files: [rules.yaml]\n" + ALERTING.format(sink=sink.url("")))
    (tmp_path / "checks.yaml").write_text(
        f"checks:\n  - {{name: cache, kind: redis, url: '{redis_url}', interval: 1s, timeout: 1s}}\n")
    (tmp_path / "rules.yaml").write_text(
        "groups:\n  - name: redis\n    rules:\n"
        "      - {alert: RedisDown, check: cache, expr: '!up', labels: {severity: critical}}\n")


def readyz(daemon: RunningDaemon) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"{daemon.base_url}/readyz", timeout=5.0) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def metric(daemon: RunningDaemon, name: str) -> float:
    with urllib.request.urlopen(f"{daemon.base_url}/metrics", timeout=5.0) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exported")


def pages(sink: ReceiverSink) -> list[str]:
    return [r.json["event_action"] for r in sink.accepted("/pd")]


def page_during_outage(daemon: RunningDaemon, redis_server: RedisServer, postgres_server: PostgresServer,
                       sink: ReceiverSink) -> None:
    daemon.wait_for("cache", up=True)
    assert readyz(daemon)[0] == 200 and metric(daemon, "monitor_state_store_up") == 1.0
    postgres_server.stop()  # the store is gone...
    redis_server.kill()  # ...and then what it should page about happens
    wait(lambda: pages(sink) == ["trigger"], daemon, timeout=20)


def test_a_page_goes_out_while_the_store_is_down_and_is_not_repeated_after(
        tmp_path: Path, redis_server: RedisServer, postgres_server: PostgresServer, sink: ReceiverSink) -> None:
    port = free_port()
    write_config(tmp_path, port, redis_server.url, postgres_server.dsn, sink)
    with daemon_runs(tmp_path, port) as start_next:
        daemon = start_next()
        page_during_outage(daemon, redis_server, postgres_server, sink)
        # PagerDuty and the webhook are delivered concurrently: the second may land a moment later.
        wait(lambda: [r.json["status"] for r in sink.accepted("/hook")] == ["firing"], daemon, timeout=20)
        status, body = readyz(daemon)
        assert status == 503 and "state store failing" in body["error"]
        assert metric(daemon, "monitor_state_store_up") == 0.0
        assert "rk-secret" not in body["error"]

        postgres_server.start()  # back: the commit lands and what was sent is recorded, not resent
        wait(lambda: readyz(daemon)[0] == 200, daemon, timeout=20)
        redis_server.restart()
        wait(lambda: pages(sink) == ["trigger", "resolve"], daemon, timeout=20)
        time.sleep(2.5)  # more than two group intervals: nothing else to tell
        assert pages(sink) == ["trigger", "resolve"]
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(20) == 0

        again = start_next()  # a new run finds nothing due: the outcomes reached the store
        again.wait_for("cache", up=True)
        time.sleep(2.5)
        assert pages(sink) == ["trigger", "resolve"]
        assert [r.json["status"] for r in sink.accepted("/hook")] == ["firing", "resolved"]
        events = {e["event"] for d in (daemon, again) for e in d.events()}
        assert {"state_store_failing", "state_store_recovered"} <= events


def test_sigterm_finishes_within_the_grace_while_the_store_is_down(
        tmp_path: Path, redis_server: RedisServer, postgres_server: PostgresServer, sink: ReceiverSink) -> None:
    port = free_port()
    write_config(tmp_path, port, redis_server.url, postgres_server.dsn, sink)
    with daemon_runs(tmp_path, port) as start_next:
        daemon = start_next()
        page_during_outage(daemon, redis_server, postgres_server, sink)  # state now waits on the store
        started = time.monotonic()
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(30) == 0
        took = time.monotonic() - started
        assert took < 25, f"stop took {took:.1f}s"  # the 10 s grace, with room for a slow machine
        events = [e for e in daemon.events() if e["event"] == "state_not_persisted"]
        assert events and events[0]["changes"] >= 1  # says what it could not persist
