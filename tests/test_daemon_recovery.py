"""The real daemon, as a subprocess, watching a private Redis and a private PostgreSQL that
go down and come back: the API follows, and the log has one event per change of state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.servers import PostgresServer, RedisServer, free_port, running_postgres, running_redis

MONITOR = Path(sys.executable).parent / "monitor"
REDIS_CHECK = "private_redis"
PG_CHECK = "private_postgres"
STATE_CHANGE_TIMEOUT = 30.0  # interval 1s + timeout 1s, plus start-up on a loaded machine (a bound, not a speed claim)


@dataclass
class RunningDaemon:
    proc: subprocess.Popen[bytes]
    base_url: str
    stderr_path: Path

    def checks(self) -> dict[str, dict[str, Any]]:
        with urllib.request.urlopen(f"{self.base_url}/api/v1/checks", timeout=2.0) as response:
            assert response.status == 200
            body: list[dict[str, Any]] = json.load(response)
        return {item["name"]: item for item in body}

    def wait_for(self, name: str, up: bool, timeout: float = STATE_CHANGE_TIMEOUT) -> dict[str, Any]:
        """Poll the API until check ``name`` has a last result with ``up``; returns that check."""
        deadline = time.monotonic() + timeout
        seen: Any = None
        while True:
            assert self.proc.poll() is None, f"daemon exited with {self.proc.returncode}: {self.stderr()[-2000:]}"
            try:
                seen = self.checks().get(name)
            except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
                seen = f"API not answering: {err}"
            if isinstance(seen, dict) and seen["last"] is not None and seen["last"]["up"] is up:
                return seen
            if time.monotonic() >= deadline:
                raise AssertionError(f"{name} not up={up} after {timeout:g}s; last seen: {seen}")
            time.sleep(0.1)

    def wait_for_failed_runs(self, name: str, count: int, timeout: float = STATE_CHANGE_TIMEOUT) -> dict[str, Any]:
        """Poll until check ``name`` has at least ``count`` failed or timed-out runs."""
        deadline = time.monotonic() + timeout
        while True:
            # Absent until the daemon has applied its config (the API serves from the start).
            check = self.checks().get(name, {"runs": {}})
            failed = check["runs"].get("failure", 0) + check["runs"].get("timeout", 0)
            if failed >= count:
                return check
            assert time.monotonic() < deadline, f"{name}: only {failed} failed runs after {timeout:g}s: {check}"
            time.sleep(0.1)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def events(self) -> list[dict[str, Any]]:
        """The JSON log lines (stderr is not a tty, so structlog writes JSON)."""
        out = []
        for line in self.stderr().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a stdlib logging line, not structlog's
            if isinstance(event, dict) and "event" in event:
                out.append(event)
        return out


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


@pytest.fixture
def private_postgres() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


@pytest.fixture
def daemon(tmp_path: Path, private_redis: RedisServer, private_postgres: PostgresServer) -> Iterator[RunningDaemon]:
    port = free_port()
    (tmp_path / "main.yaml").write_text(
        f"global: {{listen: '127.0.0.1:{port}', state: 'sqlite:///{tmp_path}/m.db'}}\n"
        "check_files: [checks.yaml]\n"
        "rule_files: []\n"
    )
    (tmp_path / "checks.yaml").write_text(
        "checks:\n"
        f"  - name: {REDIS_CHECK}\n"
        "    kind: redis\n"
        f"    url: {private_redis.url}\n"
        "    interval: 1s\n"
        "    timeout: 1s\n"
        f"  - name: {PG_CHECK}\n"
        "    kind: postgres\n"
        f"    dsn: {private_postgres.dsn}\n"
        "    interval: 1s\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    stderr_path = tmp_path / "daemon.stderr"
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen([str(MONITOR), "run", "-c", str(tmp_path / "main.yaml")],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                                cwd=tmp_path, env=env)
    running = RunningDaemon(proc, f"http://127.0.0.1:{port}", stderr_path)
    try:
        yield running
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def transitions(events: list[dict[str, Any]], check: str) -> list[tuple[str, bool]]:
    return [(e["event"], bool(e.get("first")))
            for e in events if e.get("check") == check and e["event"] in ("check_up", "check_down")]


def test_daemon_follows_targets_going_down_and_coming_back(
    daemon: RunningDaemon, private_redis: RedisServer, private_postgres: PostgresServer,
) -> None:
    redis_up = daemon.wait_for(REDIS_CHECK, up=True)
    pg_up = daemon.wait_for(PG_CHECK, up=True)
    assert redis_up["kind"] == "redis" and redis_up["last"]["value"] == 1.0
    assert pg_up["kind"] == "postgres" and pg_up["last"]["value"] == 1.0
    assert redis_up["interval"] == "1s" and redis_up["timeout"] == "1s"
    assert pg_up["timeout"] == "1s"  # defaults to min(interval, default_timeout)

    # Redis: SIGKILL, then back on the same port.
    private_redis.kill()
    redis_down = daemon.wait_for(REDIS_CHECK, up=False)
    assert redis_down["last"]["outcome"] == "failure"
    assert redis_down["last"]["error"].startswith("ConnectionError: ")
    assert daemon.checks()[PG_CHECK]["last"]["up"] is True  # one target down does not drag the other
    daemon.wait_for_failed_runs(REDIS_CHECK, 2)  # an outage of several runs, to be logged once
    private_redis.start()
    redis_back = daemon.wait_for(REDIS_CHECK, up=True)
    assert redis_back["runs"]["failure"] >= 2 and redis_back["runs"]["success"] >= 2

    # PostgreSQL: pg_ctl stop -m immediate, then start again on the same port.
    private_postgres.stop()
    pg_down = daemon.wait_for(PG_CHECK, up=False)
    assert pg_down["last"]["outcome"] in ("failure", "timeout")
    assert pg_down["last"]["error"]
    assert private_postgres.dsn not in json.dumps(daemon.checks())  # the API never shows a DSN
    daemon.wait_for_failed_runs(PG_CHECK, 2)
    private_postgres.start()
    pg_back = daemon.wait_for(PG_CHECK, up=True)
    assert pg_back["runs"]["success"] >= 2

    daemon.proc.send_signal(signal.SIGTERM)
    try:
        code = daemon.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail(f"daemon did not stop on SIGTERM: {daemon.stderr()[-2000:]}")
    assert code == 0, daemon.stderr()[-2000:]

    events = daemon.events()
    names = [e["event"] for e in events]
    assert "started" in names and names[-1] == "stopped", names
    for check in (REDIS_CHECK, PG_CHECK):
        seen = transitions(events, check)
        # The first result (first=True) is logged as check_up; after it, exactly one
        # check_down for the outage and one check_up for the recovery, not one per run.
        assert seen == [("check_up", True), ("check_down", False), ("check_up", False)], (check, seen)
    down_events = [e for e in events if e["event"] == "check_down"]
    assert all(e["level"] == "warning" and e["error"] for e in down_events)
