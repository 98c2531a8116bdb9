"""The `monitor silence add ...` hint notifications print works as printed, in a real shell,
against a real daemon, and silences exactly the labels it was made from."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path

import httpx

from monitor.alerting.silence_command import silence_command
from monitor.alerting.silences import parse_matcher_args
from tests.test_cli import MONITOR, ROOT
from tests.test_http_api import free_port, write_config

AWKWARD = {
    "alertname": "ApiDown",
    "check": "api health",           # a space
    "env": "prod\"eu'",               # both quotes
    "team": " $(touch pwned) ",       # shell syntax and blanks at both ends
    "path": "=~a|b!=",                # matcher operators
    "note": "ünïcode",
}


def test_the_command_reads_back_as_exact_equality_matchers() -> None:
    line = silence_command(AWKWARD, "http://mon.example:9464")
    words = shlex.split(line)
    assert words[:3] == ["monitor", "silence", "add"]
    assert words[3] == "alertname=ApiDown"  # alertname first, the rest sorted
    options = words.index("--duration")
    assert words[options:] == ["--duration", "1h", "--comment", "silenced from a notification",
                               "--url", "http://mon.example:9464"]
    matchers = parse_matcher_args(words[3:options])
    assert {(m.name, m.type, m.value) for m in matchers} == {(k, "=", v) for k, v in AWKWARD.items()}


def test_nothing_to_match_gives_no_command_and_no_url_leaves_it_to_the_cli() -> None:
    assert silence_command({}, "http://x") == ""
    assert silence_command({"alertname": ""}, "http://x") == ""  # an empty value is an absent label
    assert silence_command({"alertname": "A"}, "") == "monitor silence add alertname=A --duration 1h --comment 'silenced from a notification'"


def test_the_printed_command_silences_on_a_running_daemon(tmp_path: Path) -> None:
    port = free_port()
    path = write_config(tmp_path, token="t0ken", checks="checks:\n  - name: beat\n    kind: heartbeat\n    max_age: 1h\n")
    text = path.read_text()
    path.write_text(text[:text.index("listen:")] + f"listen: 127.0.0.1:{port}" + text[text.index("\n", text.index("listen:")):])
    proc = subprocess.Popen([*MONITOR, "run", "-c", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "daemon did not come up"
            time.sleep(0.1)
        line = silence_command(AWKWARD, url)
        # As a person would: pasted into a shell, with the token in the environment and the
        # installed `monitor` on PATH.
        assert Path(MONITOR[0]).name == "monitor", "the console script is not installed (make test installs it)"
        env = {**os.environ, "MONITOR_API_TOKEN": "t0ken", "USER": "oncall",
               "PATH": f"{Path(MONITOR[0]).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        done = subprocess.run(["sh", "-c", line], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=30)
        assert done.returncode == 0, done.stderr
        assert not (tmp_path / "pwned").exists()
        silence_id = done.stdout.strip()
        silences = httpx.get(f"{url}/api/v1/silences", timeout=5).json()
        assert [s["id"] for s in silences] == [silence_id]
        got = silences[0]
        assert {(m["name"], m["value"], m["isRegex"], m["isEqual"]) for m in got["matchers"]} == {
            (k, v, False, True) for k, v in AWKWARD.items()}
        assert got["createdBy"] == "oncall" and got["comment"] == "silenced from a notification"
        assert got["status"]["state"] == "active"
    finally:
        proc.terminate()
        proc.wait(10)
