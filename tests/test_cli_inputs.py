"""The CLI with bad and awkward input: every unset variable at once, rule functions' errors
in our words, `check` on a heartbeat reading the saved pushes, no traceback or library text."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from monitor.cli.main import main
from tests.test_cli import MONITOR, ROOT, config
from tests.test_http_api import free_port

DB_OK = "checks:\n  - name: db\n    kind: postgres\n    dsn: postgresql://postgres@127.0.0.1:5432/postgres\n"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exit:  # argparse's usage errors
        code = int(exit.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_reports_every_unset_variable_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CLI_A", "CLI_B", "CLI_C", "CLI_D", "CLI_E"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "monitor.yaml").write_text(
        f"global:\n  state: sqlite:///{tmp_path}/s.db\n  api_token: ${{CLI_A}}\n"
        "check_files: [checks.yaml]\nrule_files: [rules.yaml]\n")
    (tmp_path / "checks.yaml").write_text(
        "checks:\n  - name: db\n    kind: postgres\n    dsn: postgresql://${CLI_B}:${CLI_C}@127.0.0.1/x\n"
        "  - name: api\n    kind: http\n    url: ${CLI_D:-http://x.test}/health\n")
    (tmp_path / "rules.yaml").write_text(
        "groups:\n  - name: g\n    rules:\n      - alert: Down\n        check: db\n        expr: '!up'\n"
        "        labels: {team: '${CLI_E}'}\n")
    code, out, err = run(capsys, "validate", "-c", str(tmp_path / "monitor.yaml"))
    assert code == 2 and out == ""
    assert err.splitlines() == [
        f"{tmp_path}/checks.yaml:4: environment variable CLI_B is not set (use ${{CLI_B:-default}} for a default)",
        f"{tmp_path}/checks.yaml:4: environment variable CLI_C is not set (use ${{CLI_C:-default}} for a default)",
        f"{tmp_path}/monitor.yaml:3: environment variable CLI_A is not set (use ${{CLI_A:-default}} for a default)",
        f"{tmp_path}/rules.yaml:7: environment variable CLI_E is not set (use ${{CLI_E:-default}} for a default)",
    ]
    # Set, everything loads: none was hiding another problem.
    for name in ("CLI_A", "CLI_B", "CLI_C", "CLI_E"):
        monkeypatch.setenv(name, "value-0123456789")
    assert run(capsys, "validate", "-c", str(tmp_path / "monitor.yaml"))[0] == 0


def test_rule_functions_speak_plainly(tmp_path: Path) -> None:
    path = config(tmp_path, DB_OK)
    (tmp_path / "rules.yaml").write_text(
        "groups:\n  - name: g\n    rules:\n      - alert: Flapping\n        check: db\n"
        "        expr: 'rate(\"value\", \"5m\") > 1.0'\n")
    # One run has one sample: rate() has no data. Said as a note, with no library line anywhere.
    done = subprocess.run([*MONITOR, "check", "db", "-c", str(path)], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert '\nrule     Flapping: ok  [rate("value", "5m") > 1.0]  (rate needs two samples in the last 5m)\n' in done.stdout
    for expr, message in [
        ('rate("value") > 1.0', "Flapping.expr: rate(): wrong arguments (missing 1 required positional argument: 'window')"),
        ('rate("valu", "5m") > 1.0', "Flapping.expr: rate(): unknown field 'valu' (use one of value, latency, up)"),
        ("rate(value[5m]) > 1.0", 'rules are CEL: a window is a string argument, e.g. rate("value", "5m")'),
        ("int(value) / 0 > 1", "Flapping.expr: division by zero in CEL expression"),
    ]:
        (tmp_path / "rules.yaml").write_text(
            f"groups:\n  - name: g\n    rules:\n      - alert: Flapping\n        check: db\n        expr: '{expr}'\n")
        bad = subprocess.run([*MONITOR, "validate", "-c", str(path)], capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert bad.returncode == 2 and bad.stdout == ""
        assert len(bad.stderr.splitlines()) == 1 and bad.stderr.startswith(f"{tmp_path}/rules.yaml:6: "), bad.stderr
        assert message in bad.stderr
        assert "Python function" not in bad.stderr and "Check function arguments" not in bad.stderr


def test_check_on_a_heartbeat_reads_the_saved_pushes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    main_file = tmp_path / "monitor.yaml"
    main_file.write_text(f"global:\n  listen: 127.0.0.1:{port}\n  state: sqlite:///{tmp_path}/state.db\n"
                         "check_files: [checks.yaml]\nrule_files: []\n")
    (tmp_path / "checks.yaml").write_text(
        "checks:\n  - name: nightly\n    kind: heartbeat\n    max_age: 1h\n    push_key: push-key-0123456789\n")
    code, out, _ = run(capsys, "check", "nightly", "-c", str(main_file))  # no daemon has run: no store yet
    assert code == 1 and f"error    no heartbeat saved in the state store (global.state: {tmp_path}/state.db)" in out
    assert not (tmp_path / "state.db").exists()  # looked, did not create
    daemon = subprocess.Popen([*MONITOR, "run", "-c", str(main_file)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, cwd=ROOT)
    url = f"http://127.0.0.1:{port}/api/v1/heartbeat/nightly"
    auth = {"Authorization": "Bearer push-key-0123456789"}
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.post(url, headers=auth, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert daemon.poll() is None and time.monotonic() < deadline, "daemon did not come up"
            time.sleep(0.2)
        code, out, _ = run(capsys, "check", "nightly", "-c", str(main_file))
        assert code == 0, out
        assert "result   OK (success)" in out
        assert float(out.split("value    ")[1].split()[0]) < 60  # seconds since the push just made
        assert httpx.post(f"{url}?status=fail", headers=auth, timeout=5).status_code == 200
        deadline = time.monotonic() + 10  # the push is written to the store by the daemon's writer
        while (result := run(capsys, "check", "nightly", "-c", str(main_file)))[0] != 1:
            assert time.monotonic() < deadline, result
            time.sleep(0.2)
        assert "error    last heartbeat reported failure" in result[1]
    finally:
        daemon.terminate()
        daemon.wait(10)


@pytest.mark.parametrize("argv, code, message", [
    (["status", "--url", "http://[::1"], 2, "monitor: --url: 'http://[::1' is not a URL"),
    (["status", "--url", "ftp://x"], 2, "monitor: --url: 'ftp://x' is not an http:// or https:// URL"),
    (["silence", "list", "--url", "nohost"], 2, "monitor: --url: 'nohost' is not an http:// or https:// URL"),
    (["silence", "add", "X", "--comment", "c", "--duration", "5x", "--url", "http://127.0.0.1:1"], 2,
     "monitor: --duration: invalid duration '5x'"),
    (["silence", "add", "X", "--comment", "c", "--duration=-1h", "--url", "http://127.0.0.1:1"], 2,
     "monitor: --duration: "),
    (["silence", "add", "env=~(", "--comment", "c", "--url", "http://127.0.0.1:1"], 2, "invalid regex"),
    (["silence", "expire", "abc", "--url", "http://127.0.0.1:1"], 1, "monitor: cannot reach a daemon at http://127.0.0.1:1"),
    (["validate", "-c", "/"], 2, "/:0: cannot read file"),
    (["routes", "test", "-c", "/nonexistent.yaml", "a=b"], 2, "/nonexistent.yaml:0: file not found"),
    (["check", "nope", "-c", str(ROOT / "monitor.yaml")], 2, "monitor: no check named 'nope'"),
    (["notify-test", "nope", "-c", str(ROOT / "monitor.yaml")], 2, "monitor: no receiver named 'nope'"),
])
def test_bad_input_is_one_line_without_internals(capsys: pytest.CaptureFixture[str], argv: list[str], code: int,
                                                 message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MONITOR_URL", "MONITOR_LISTEN"):
        monkeypatch.delenv(name, raising=False)
    got, out, err = run(capsys, *argv)
    assert got == code
    assert message in err and len(err.splitlines()) == 1, err
    assert "Traceback" not in err + out and "httpx" not in err and "Error:" not in err
