"""The CLI finds its daemon (--url, $MONITOR_URL, $MONITOR_LISTEN, the config's listen, the
default) and `monitor status` shows its checks, alerts and silences; the URL notifications
carry follows the listen address when external_url is not set. One real daemon, subprocess CLI."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from monitor.cli.main import main
from monitor.config.loader import load_config
from tests.test_cli import MONITOR, ROOT
from tests.test_http_api import free_port

TOKEN = "t0ken-for-status"
CHECKS = ("checks:\n  - name: db\n    kind: postgres\n    interval: 2s\n    timeout: 1s\n"
          "    dsn: postgresql://postgres:pw@127.0.0.1:1/postgres\n    labels: {service: database, env: prod}\n")
RULES = ("groups:\n  - name: g\n    rules:\n      - alert: DatabaseDown\n        check: db\n        expr: '!up'\n"
         "        labels: {severity: critical}\n        annotations: {summary: 'see {{ $externalURL }}'}\n")


@dataclass
class Running:
    port: int
    url: str
    dir: Path
    config: Path


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("daemon")
    port, file_port = free_port(), free_port()
    # The file says one port and has no external_url; MONITOR_LISTEN moves the daemon to another.
    main = tmp / "monitor.yaml"
    main.write_text(f"global:\n  listen: ${{MONITOR_LISTEN:-127.0.0.1:{file_port}}}\n  state: sqlite:///{tmp}/state.db\n"
                    f"  api_token: {TOKEN}\ncheck_files: [checks.yaml]\nrule_files: [rules.yaml]\n")
    (tmp / "checks.yaml").write_text(CHECKS)
    (tmp / "rules.yaml").write_text(RULES)
    started = subprocess.Popen([*MONITOR, "run", "-c", str(main)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               cwd=ROOT, env={**_clean_env(), "MONITOR_LISTEN": f"127.0.0.1:{port}"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                alerts = httpx.get(f"{url}/api/v1/alerts", timeout=1).json()["data"]["alerts"]
                if alerts and alerts[0]["state"] == "firing":
                    break
            except httpx.HTTPError:
                pass
            assert started.poll() is None and time.monotonic() < deadline, "daemon did not come up with a firing alert"
            time.sleep(0.2)
        # A file that says this daemon's port, for `-c` and ./monitor.yaml.
        here = tmp / "here"
        here.mkdir()
        (here / "monitor.yaml").write_text(f"global:\n  listen: 127.0.0.1:{port}\n  api_token: ${{NOT_SET_HERE}}\n")
        yield Running(port, url, tmp, here / "monitor.yaml")
    finally:
        started.terminate()
        started.wait(10)


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k not in ("MONITOR_URL", "MONITOR_LISTEN", "MONITOR_CONFIG")}


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str
    args: list[str]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Done]:
    """`monitor ARGS` in this process (the same code as the console script, without paying
    an interpreter start per call on a busy machine), in its own environment and directory."""

    def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Done:
        with monkeypatch.context() as patch:
            for name in ("MONITOR_URL", "MONITOR_LISTEN", "MONITOR_CONFIG"):
                patch.delenv(name, raising=False)
            for name, value in (env or {}).items():
                patch.setenv(name, value)
            patch.chdir(cwd or ROOT)
            capsys.readouterr()
            code = main(list(args))
            out, err = capsys.readouterr()
        return Done(code, out, err, list(args))

    return run


def test_the_daemon_follows_monitor_listen_and_so_does_its_url(daemon: Running) -> None:
    alert = httpx.get(f"{daemon.url}/api/v1/alerts", timeout=5).json()["data"]["alerts"][0]
    # $externalURL (and every notification's link and silence command) follow the listen port.
    assert alert["annotations"]["summary"] == f"see {daemon.url}"


def test_every_way_to_find_the_daemon_in_order(daemon: Running, tmp_path: Path, cli: Callable[..., Done]) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    found = [
        cli("status", env={"MONITOR_LISTEN": f"127.0.0.1:{daemon.port}"}, cwd=tmp_path),
        cli("status", env={"MONITOR_LISTEN": f"0.0.0.0:{daemon.port}"}, cwd=tmp_path),   # asked on loopback
        cli("status", env={"MONITOR_URL": daemon.url, "MONITOR_LISTEN": nowhere}, cwd=tmp_path),
        cli("status", "--url", daemon.url, env={"MONITOR_URL": f"http://{nowhere}"}, cwd=tmp_path),
        cli("status", "-c", str(daemon.config), cwd=tmp_path),          # the file's listen (its secrets unset)
        cli("status", cwd=daemon.config.parent),                        # ./monitor.yaml
        cli("status", env={"MONITOR_CONFIG": str(daemon.config)}, cwd=tmp_path),
        cli("silence", "list", env={"MONITOR_LISTEN": f"127.0.0.1:{daemon.port}"}, cwd=tmp_path),
    ]
    for done in found:
        assert done.returncode == 0, done.args + [done.stderr]
        assert ("DatabaseDown" if done.args[0] == "status" else "ID") in done.stdout, done.args
    missed = cli("status", env={"MONITOR_URL": f"http://{nowhere}", "MONITOR_LISTEN": f"127.0.0.1:{daemon.port}"})
    assert missed.returncode == 1 and f"cannot reach a daemon at http://{nowhere}" in missed.stderr
    bad = cli("status", env={"MONITOR_LISTEN": "no-port"})
    assert bad.returncode == 2 and bad.stderr == "monitor: MONITOR_LISTEN: listen must be host:port, got 'no-port'\n"
    # The console script as users run it: the same lookup, one line when nothing answers.
    script = subprocess.run([*MONITOR, "silence", "list"], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                            env={**_clean_env(), "MONITOR_LISTEN": f"127.0.0.1:{daemon.port}"})
    assert script.returncode == 0 and script.stdout.startswith("ID"), script.stderr
    script = subprocess.run([*MONITOR, "status"], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                            env={**_clean_env(), "MONITOR_LISTEN": nowhere})
    assert script.returncode == 1 and script.stderr.startswith(f"monitor: cannot reach a daemon at http://{nowhere}")
    assert len(script.stderr.splitlines()) == 1


def test_status_shows_alerts_and_silences(daemon: Running, cli: Callable[..., Done]) -> None:
    env = {"MONITOR_URL": daemon.url, "MONITOR_API_TOKEN": TOKEN, "USER": "alice"}
    before = cli("status", env=env)
    assert before.returncode == 0, before.stderr
    lines = before.stdout.splitlines()
    alert_header = lines.index(next(line for line in lines if line.startswith("ALERT")))
    assert lines[alert_header].split() == ["ALERT", "STATE", "SINCE", "VALUE", "LABELS"]
    row = lines[alert_header + 1].split()
    assert row[:2] == ["DatabaseDown", "firing"] and row[2].endswith("s")
    assert "check=db env=prod service=database severity=critical" in lines[alert_header + 1]
    assert "No active or pending silences." in before.stdout
    assert "1 checks, 1 down; 1 alerts firing, 0 pending; 0 silences active" in before.stdout

    tokenless = cli("silence", "add", "DatabaseDown", "--comment", "x", env={**env, "MONITOR_API_TOKEN": ""})
    assert tokenless.returncode == 1
    assert tokenless.stderr.rstrip().endswith("(no token given: set $MONITOR_API_TOKEN or pass --token)")
    added = cli("silence", "add", "DatabaseDown", "env=prod", "--comment", "restoring backup", env=env)
    assert added.returncode == 0, added.stderr
    silence_id = added.stdout.strip()
    after = cli("status", env=env)
    lines = after.stdout.splitlines()
    assert any(line.startswith("DatabaseDown  firing (silenced)") for line in lines), after.stdout
    silence_row = next(line for line in lines if line.startswith(silence_id))
    assert "alertname=DatabaseDown env=prod" in silence_row and "active" in silence_row
    assert silence_row.endswith("restoring backup")
    assert "1 silences active" in after.stdout
    assert cli("silence", "expire", silence_id, env=env).returncode == 0
    assert "No active or pending silences." in cli("status", env=env).stdout


def test_shipped_main_files_derive_external_url_from_listen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_LISTEN", "127.0.0.1:9555")
    monkeypatch.delenv("MONITOR_EXTERNAL_URL", raising=False)
    assert load_config(ROOT / "monitor.yaml").settings.public_url == "http://127.0.0.1:9555"
    monkeypatch.setenv("MONITOR_EXTERNAL_URL", "https://monitor.example.com")
    assert load_config(ROOT / "monitor.yaml").settings.public_url == "https://monitor.example.com"
