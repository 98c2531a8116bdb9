"""Delivery guarantees (docs/notifications.md) end to end: the real daemon as a subprocess, receivers that are down, kill -9.

Every receiver must get exactly one trigger and exactly one resolve for one outage, with the
same PagerDuty dedup_key, although the daemon is killed twice: once while the page cannot be
delivered (receivers answer 503), once while the alert is firing and the target recovers
behind its back.
"""

from __future__ import annotations

import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.receiver_sink import ReceiverSink
from tests.servers import RedisServer, free_port
from tests.test_alert_restart import alerts, daemon_runs, wait
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
    slack_configs: [{{api_url: '{sink}/slack'}}]
    webhook_configs: [{{url: '{sink}/hook', hmac_secret: 'hmac-secret'}}]
"""


@pytest.fixture
def sink() -> Iterator[ReceiverSink]:
    with ReceiverSink(default="503") as server:
        yield server


def write_config(tmp_path: Path, port: int, redis_url: str, sink: ReceiverSink) -> None:
    (tmp_path / "main.yaml").write_text(
        f"global: {{listen: '127.0.0.1:{port}', state: 'sqlite:///{tmp_path}/state.db'}}\n"
        "check_files: [checks.yaml]\nrule_files: [rules.yaml]\n"
        + ALERTING.format(sink=sink.url(""))
    )
    (tmp_path / "checks.yaml").write_text(
        f"checks:\n  - {{name: cache, kind: redis, url: '{redis_url}', interval: 1s, timeout: 1s}}\n")
    (tmp_path / "rules.yaml").write_text(
        "groups:\n  - name: redis\n    rules:\n"
        "      - {alert: RedisDown, check: cache, expr: '!up', labels: {severity: critical},"
        " annotations: {summary: 'cache is down'}}\n")


def _metrics(daemon: RunningDaemon) -> str:
    with urllib.request.urlopen(f"{daemon.base_url}/metrics", timeout=5.0) as response:
        return response.read().decode()


def _page(daemon: RunningDaemon) -> str:
    with urllib.request.urlopen(f"{daemon.base_url}/", timeout=5.0) as response:
        return response.read().decode()


def kill(daemon: RunningDaemon) -> None:
    daemon.proc.send_signal(signal.SIGKILL)
    daemon.proc.wait(10)


def by_path(sink: ReceiverSink) -> dict[str, list[Any]]:
    return {path: [r.json for r in sink.accepted(path)] for path in ("/pd", "/slack", "/hook")}


def test_one_trigger_and_one_resolve_per_receiver_across_two_kill_9(
        tmp_path: Path, redis_server: RedisServer, sink: ReceiverSink) -> None:
    port = free_port()
    write_config(tmp_path, port, redis_server.url, sink)
    with daemon_runs(tmp_path, port) as start_next:
        first = start_next()
        first.wait_for("cache", up=True)
        redis_server.kill()
        wait(lambda: alerts(first).get("RedisDown", {}).get("state") == "firing", first)
        # The page is decided and committed, but every receiver answers 503: it is retried.
        wait(lambda: {r.path for r in sink.received} >= {"/pd", "/slack", "/hook"}, first, timeout=15)
        assert sink.accepted() == []
        # The status page says which receiver is holding pages back, and why.
        wait(lambda: "oncall/pagerduty_configs/0</b>: 1 waiting — HTTP 503" in _page(first), first)
        kill(first)

        sink.default = "200"  # the receivers come back while the daemon is dead
        second = start_next()
        wait(lambda: all(len(v) == 1 for v in by_path(sink).values()), second, timeout=40)
        second.wait_for_failed_runs("cache", 3)  # it keeps evaluating the firing alert...
        time.sleep(2.5)  # ...over more than two group intervals: nothing new to tell
        got = by_path(sink)
        assert [len(v) for v in got.values()] == [1, 1, 1], got
        trigger = got["/pd"][0]
        assert trigger["event_action"] == "trigger" and trigger["routing_key"] == "rk-secret"
        assert trigger["payload"]["severity"] == "critical"
        assert got["/hook"][0]["status"] == "firing"

        # Killed again while firing; the target recovers while nobody watches.
        kill(second)
        redis_server.restart()
        third = start_next()
        wait(lambda: all(len(v) == 2 for v in by_path(sink).values()), third, timeout=40)
        time.sleep(2.5)
        got = by_path(sink)
        assert [len(v) for v in got.values()] == [2, 2, 2], got
        resolve = got["/pd"][1]
        assert resolve["event_action"] == "resolve"
        assert resolve["dedup_key"] == trigger["dedup_key"]
        assert got["/hook"][1]["status"] == "resolved"
        assert got["/hook"][1]["groupKey"] == got["/hook"][0]["groupKey"]
        assert alerts(third) == {}
        metrics = _metrics(third)
        assert 'monitor_notifications_total{integration="pagerduty",outcome="delivered",receiver="oncall"} 1.0' in metrics
        assert 'monitor_notification_queue_length{integration="webhook",receiver="oncall"} 0.0' in metrics
        assert 'monitor_notification_delivery_seconds_count{integration="slack",receiver="oncall"} 1.0' in metrics
        # Signed with the configured secret, which never shows in the daemon's log.
        hook = sink.accepted("/hook")[-1]
        assert hook.headers.get("X-Monitor-Signature", "").startswith("sha256=")
        logs = "".join(d.stderr() for d in (first, second, third))
        assert "rk-secret" not in logs and "hmac-secret" not in logs
