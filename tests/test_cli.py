"""The `monitor` command as users run it: exit codes and one-line errors, never tracebacks."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.test_http_api import free_port

ROOT = Path(__file__).resolve().parent.parent
# The installed console script when there is one (that is what users run).
_SCRIPT = Path(sys.executable).parent / "monitor"
MONITOR = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "monitor.cli.main"]


def monitor(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MONITOR, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd or ROOT,
                          env={**os.environ, **(env or {})})


def config(tmp_path: Path, checks: str, port: int | None = None) -> Path:
    (tmp_path / "monitor.yaml").write_text(
        f"global:\n  listen: 127.0.0.1:{port or free_port()}\n  state: sqlite:///{tmp_path}/state.db\ncheck_files: [checks.yaml]\nrule_files: [rules.yaml]\n"
    )
    (tmp_path / "checks.yaml").write_text(checks)
    (tmp_path / "rules.yaml").write_text(
        "groups:\n  - name: g\n    rules:\n      - alert: Down\n        check: db\n        expr: '!up'\n"
        "      - alert: Slow\n        check: db\n        expr: 'avg_over_time(\"latency\", \"5m\") > 1'\n"
    )
    return tmp_path / "monitor.yaml"


DB_OK = "checks:\n  - name: db\n    kind: postgres\n    dsn: postgresql://postgres@127.0.0.1:5432/postgres\n"
DB_DOWN = "checks:\n  - name: db\n    kind: postgres\n    dsn: postgresql://postgres:pw@127.0.0.1:1/postgres\n    timeout: 2s\n"


def test_validate_ok_and_shipped_default(tmp_path: Path) -> None:
    done = monitor("validate")
    assert done.returncode == 0, done.stderr
    assert "ok" in done.stdout
    # From any other directory, without -c, the shipped default is found too.
    elsewhere = monitor("validate", cwd=tmp_path, env={"MONITOR_CONFIG": ""})
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert str(ROOT / "monitor.yaml") in elsewhere.stdout


def test_validate_reports_every_problem_without_traceback(tmp_path: Path) -> None:
    path = config(tmp_path, "checks:\n  - name: db\n    kind: postgres\n  - name: x\n    kind: http\n    url: nope\n")
    done = monitor("validate", "-c", str(path))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert f"{tmp_path}/checks.yaml:2: db: missing required field 'dsn'" in lines
    assert any(line.startswith(f"{tmp_path}/checks.yaml:6: x.url:") for line in lines)
    assert "Traceback" not in done.stderr


def test_missing_config_file_is_one_line(tmp_path: Path) -> None:
    done = monitor("validate", "-c", str(tmp_path / "absent.yaml"))
    assert done.returncode == 2
    assert done.stderr.strip() == f"{tmp_path}/absent.yaml:0: file not found"


def test_check_prints_result_and_rules(tmp_path: Path) -> None:
    ok = monitor("check", "db", "-c", str(config(tmp_path, DB_OK)))
    assert ok.returncode == 0, ok.stderr
    assert "OK" in ok.stdout and "rule     Down: ok" in ok.stdout and "window functions saw only this run" in ok.stdout
    down = monitor("check", "db", "--json", "-c", str(config(tmp_path, DB_DOWN)))
    assert down.returncode == 1
    result = json.loads(down.stdout)
    assert result["up"] is False and result["error"]
    assert "pw@" not in down.stdout
    assert {r["alert"]: r["fires"] for r in result["rules"]}["Down"] is True
    unknown = monitor("check", "nope", "-c", str(config(tmp_path, DB_OK)))
    assert unknown.returncode == 2 and "no check named 'nope'" in unknown.stderr


def test_run_exits_2_on_invalid_config(tmp_path: Path) -> None:
    done = monitor("run", "-c", str(config(tmp_path, "checks: 5\n")))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"{tmp_path}/checks.yaml:1:")


def test_run_reports_busy_port_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = monitor("run", "-c", str(config(tmp_path, DB_OK, port=port)))
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "Traceback" not in done.stderr


def test_run_serves_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([*MONITOR, "run", "-c", str(config(tmp_path, DB_OK, port=port))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "daemon never became ready"
            time.sleep(0.1)
        proc.send_signal(signal.SIGHUP)  # reload with the same config: must keep running
        time.sleep(0.3)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=15)
    finally:
        proc.kill() if proc.poll() is None else None
    assert proc.returncode == 0, stderr
    events = [json.loads(line)["event"] for line in stderr.splitlines() if line.startswith("{")]
    assert events[0] == "started" and "config_reloaded" in events and events[-1] == "stopped"


def test_status_against_a_running_daemon_and_none(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([*MONITOR, "run", "-c", str(config(tmp_path, DB_DOWN, port=port))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            done = monitor("status", "--url", url)
            if done.returncode == 0 and "DOWN" in done.stdout:
                break
            assert time.monotonic() < deadline, done.stdout + done.stderr
            time.sleep(0.3)
        header, row = done.stdout.splitlines()[:2]
        assert header.split() == ["CHECK", "KIND", "STATE", "VALUE", "LATENCY", "ERROR"]
        assert row.split()[:3] == ["db", "postgres", "DOWN"]
        assert "1 checks, 1 down" in done.stdout
    finally:
        proc.terminate()
        proc.wait(10)
    unreachable = monitor("status", "--url", f"http://127.0.0.1:{free_port()}")
    assert unreachable.returncode == 1 and "cannot reach a daemon" in unreachable.stderr


def test_closed_pipe_is_not_a_traceback(tmp_path: Path) -> None:
    path = config(tmp_path, DB_OK)
    proc = subprocess.Popen([*MONITOR, "check", "db", "--json", "-c", str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # like `| head -0`: nobody reads the output
    stderr = proc.stderr.read().decode()
    proc.wait(30)
    assert "Traceback" not in stderr
