"""Alert state survives kill -9: the real daemon, a private Redis that goes down, and the
daemon itself killed while alerts are pending and firing."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


from tests.servers import RedisServer, free_port
from tests.test_daemon_recovery import MONITOR, RunningDaemon

RULES = """groups:
  - name: redis
    rules:
      - alert: RedisDown
        check: cache
        expr: '!up'
        labels: {severity: critical}
        annotations: {summary: 'cache is down'}
      - alert: RedisDownForAnHour
        check: cache
        expr: '!up'
        for: 1h
"""


def alerts(daemon: RunningDaemon) -> dict[str, dict[str, Any]]:
    with urllib.request.urlopen(f"{daemon.base_url}/api/v1/alerts", timeout=2.0) as response:
        body = json.load(response)
    assert body["status"] == "success"
    return {a["labels"]["alertname"]: a for a in body["data"]["alerts"]}


def two_alerts(daemon: RunningDaemon) -> dict[str, dict[str, Any]] | None:
    found = alerts(daemon)
    return found if len(found) == 2 else None


def wait(predicate: Any, daemon: RunningDaemon, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        assert daemon.proc.poll() is None, daemon.stderr()[-2000:]
        try:
            value = predicate()
            if value:
                return value
        except OSError:
            pass  # not listening yet
        assert time.monotonic() < deadline, f"condition not met; log tail: {daemon.stderr()[-1500:]}"
        time.sleep(0.1)


def start(tmp_path: Path, port: int, run: int) -> RunningDaemon:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    stderr_path = tmp_path / f"daemon-{run}.stderr"
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen([str(MONITOR), "run", "-c", str(tmp_path / "main.yaml")], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=stderr, cwd=tmp_path, env=env)
    return RunningDaemon(proc, f"http://127.0.0.1:{port}", stderr_path)


@contextlib.contextmanager
def daemon_runs(tmp_path: Path, port: int) -> Iterator[Callable[[], RunningDaemon]]:
    """``start()`` runs the daemon on tmp_path/main.yaml again (run 1, 2, ...); whatever
    still runs at the end is killed."""
    daemons: list[RunningDaemon] = []

    def start_next() -> RunningDaemon:
        daemons.append(start(tmp_path, port, len(daemons) + 1))
        return daemons[-1]

    try:
        yield start_next
    finally:
        for daemon in daemons:
            if daemon.proc.poll() is None:
                daemon.proc.kill()
                daemon.proc.wait(10)


def events(daemon: RunningDaemon, name: str) -> list[str]:
    return [e["event"] for e in daemon.events() if e.get("alert") == name]


def test_alerts_survive_sigkill_and_resolve_after_restart(tmp_path: Path, redis_server: RedisServer) -> None:
    port = free_port()
    (tmp_path / "main.yaml").write_text(
        f"global: {{listen: '127.0.0.1:{port}', state: 'sqlite:///{tmp_path}/state.db'}}\n"
        "check_files: [checks.yaml]\nrule_files: [rules.yaml]\n")
    (tmp_path / "checks.yaml").write_text(
        f"checks:\n  - {{name: cache, kind: redis, url: '{redis_server.url}', interval: 1s, timeout: 1s}}\n")
    (tmp_path / "rules.yaml").write_text(RULES)
    with daemon_runs(tmp_path, port) as start_next:
        first = start_next()
        first.wait_for("cache", up=True)
        redis_server.kill()
        before = wait(lambda: two_alerts(first), first)
        assert before["RedisDown"]["state"] == "firing" and before["RedisDownForAnHour"]["state"] == "pending"
        assert before["RedisDown"]["annotations"] == {"summary": "cache is down"}

        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
        second = start_next()
        # Straight from the store, before any new result: same states, same activeAt.
        after = wait(lambda: two_alerts(second), second)
        for name in ("RedisDown", "RedisDownForAnHour"):
            assert (after[name]["state"], after[name]["activeAt"]) == (before[name]["state"], before[name]["activeAt"])
        second.wait_for_failed_runs("cache", 2)
        assert alerts(second)["RedisDownForAnHour"]["activeAt"] == before["RedisDownForAnHour"]["activeAt"]
        assert "alert_firing" not in events(second, "RedisDown")  # still firing; not firing anew

        # The target recovers while the daemon is dead: the restarted daemon resolves it.
        second.proc.send_signal(signal.SIGKILL)
        second.proc.wait(10)
        redis_server.restart()
        third = start_next()
        wait(lambda: alerts(third) == {}, third)
        assert events(third, "RedisDown") == ["alert_resolved"]
