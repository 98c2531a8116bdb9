"""``kind: command`` through the runner, with shell scripts written here as Nagios plugins.

Every run test runs on both event loops the daemon may use: asyncio's own, and uvloop (what
``monitor run`` uses where installed), because they spawn and reap children differently.
Process-group tests record the pids the plugin started and check afterwards that none of them
is still running.
"""

from __future__ import annotations

import asyncio
import os
import time
import tracemalloc
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvloop
from pydantic import ValidationError

from monitor.core import secrets
from monitor.core.results import Outcome, Result
from monitor.probes import ProbeEnv
from monitor.probes.command import DEFAULT_PATH, OUTPUT_LINE_LIMIT, CommandCheck, parse_perfdata, split_output
from monitor.scheduling.runner import run_check

from tests.probing import run_timed

T = TypeVar("T")
Runner = Callable[[Coroutine[Any, Any, T]], T]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Runner[Any]:
    if request.param == "uvloop":
        return uvloop.run
    return asyncio.run


def command_check(*argv: str, timeout: float = 5.0, env: dict[str, str] | None = None,
                  name: str = "command_probe_test") -> CommandCheck:
    return CommandCheck(name=name, kind="command", interval=max(timeout, 10.0), timeout=timeout,
                        command=list(argv), env=env or {})


def plugin(tmp_path: Path, body: str, name: str = "check_test") -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent to reap it is not running)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def group_alive(pgid: int) -> bool:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def wait_until_gone(pids: list[int], within: float = 5.0) -> list[int]:
    """The pids still running after ``within`` seconds (orphans are reaped by init, a moment
    after the kill)."""
    give_up = time.monotonic() + within
    while time.monotonic() < give_up:
        left = [pid for pid in pids if alive(pid)]
        if not left:
            return []
        time.sleep(0.05)
    return [pid for pid in pids if alive(pid)]


def read_pids(path: Path) -> list[int]:
    return [int(word) for word in path.read_text().split()]


# --- exit codes -----------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "state"), [(0, "OK"), (1, "WARNING"), (2, "CRITICAL"), (3, "UNKNOWN"), (4, "UNKNOWN")])
def test_exit_code_gives_state(code: int, state: str, run: Runner[Any], tmp_path: Path) -> None:
    script = plugin(tmp_path, f'echo "{state} - the thing is {state.lower()}"\nexit {code}')
    result, _ = run(run_timed(command_check(script)))
    assert result.up is (code == 0)
    assert result.outcome is (Outcome.SUCCESS if code == 0 else Outcome.FAILURE)
    assert result.value == float(code)  # no perfdata: the exit code
    assert result.detail == {"exit_code": code, "state": state, "output": f"{state} - the thing is {state.lower()}",
                             "perfdata": []}
    if code == 0:
        assert result.error is None
    else:
        assert result.error == f"{state} (exit code {code}): {state} - the thing is {state.lower()}"


def test_killed_by_a_signal_is_unknown(run: Runner[Any], tmp_path: Path) -> None:
    script = plugin(tmp_path, "echo dying\nkill -9 $$")
    result, _ = run(run_timed(command_check(script)))
    assert result.up is False
    assert result.detail["exit_code"] == -9
    assert result.detail["state"] == "UNKNOWN"
    assert result.error == "UNKNOWN (killed by signal 9): dying"


def test_output_on_stderr_only_is_shown(run: Runner[Any], tmp_path: Path) -> None:
    script = plugin(tmp_path, "echo 'cannot open /etc/thing: Permission denied' >&2\nexit 3")
    result, _ = run(run_timed(command_check(script)))
    assert result.up is False
    assert result.detail["output"] == "cannot open /etc/thing: Permission denied"
    assert "Permission denied" in (result.error or "")


def test_state_change_is_followed(run: Runner[Any], tmp_path: Path) -> None:
    state = tmp_path / "state"
    script = plugin(tmp_path, f'code=$(cat {state})\necho "exit $code | queue=$((code * 10))"\nexit $code')

    async def three_runs() -> list[Result]:
        results = []
        for code in ("0", "2", "0"):
            state.write_text(code)
            results.append((await run_timed(command_check(script)))[0])
        return results

    healthy, unhealthy, again = run(three_runs())
    assert (healthy.up, unhealthy.up, again.up) == (True, False, True)
    assert (healthy.value, unhealthy.value, again.value) == (0.0, 20.0, 0.0)
    assert unhealthy.detail["state"] == "CRITICAL" and again.detail["state"] == "OK"


# --- perfdata -------------------------------------------------------------------------------


def test_perfdata_forms(run: Runner[Any], tmp_path: Path) -> None:
    script = plugin(tmp_path, (
        "echo \"DISK OK - free space | 'disk used'=95%;80;90;0;100 time=0.125s;1;2 size=1024B rx=12KB "
        "hits=42c;;;0 load1=0.5;5:;@1:2\"\n"
        "exit 0"
    ))
    result, _ = run(run_timed(command_check(script)))
    assert result.up is True
    assert result.detail["output"] == "DISK OK - free space"
    assert result.value == 95.0  # the first perfdata value
    assert result.detail["perfdata"] == [
        {"label": "disk used", "value": 95.0, "uom": "%", "warn": "80", "crit": "90", "min": 0.0, "max": 100.0},
        {"label": "time", "value": 0.125, "uom": "s", "warn": "1", "crit": "2", "min": None, "max": None},
        {"label": "size", "value": 1024.0, "uom": "B", "warn": None, "crit": None, "min": None, "max": None},
        {"label": "rx", "value": 12.0, "uom": "KB", "warn": None, "crit": None, "min": None, "max": None},
        {"label": "hits", "value": 42.0, "uom": "c", "warn": None, "crit": None, "min": 0.0, "max": None},
        {"label": "load1", "value": 0.5, "uom": "", "warn": "5:", "crit": "@1:2", "min": None, "max": None},
    ]


def test_perfdata_in_long_output(run: Runner[Any], tmp_path: Path) -> None:
    script = plugin(tmp_path, (
        "echo 'WARNING - 2 of 3 | first=1'\n"
        "echo 'long line one'\n"
        "echo 'long line two | second=2ms'\n"
        "echo \"'third one'=3;;;;\"\n"
        "exit 1"
    ))
    result, _ = run(run_timed(command_check(script)))
    assert result.up is False
    assert result.value == 1.0  # the first perfdata value, also when down
    assert result.detail["output"] == "WARNING - 2 of 3"
    assert [(p["label"], p["value"], p["uom"]) for p in result.detail["perfdata"]] == [
        ("first", 1.0, ""), ("second", 2.0, "ms"), ("third one", 3.0, "")]
    assert result.error == "WARNING (exit code 1): WARNING - 2 of 3"


def test_split_output() -> None:
    def split(text: str) -> tuple[str, list[str]]:
        first, perf = split_output(text)
        return first, perf.split()

    assert split("") == ("", [])
    assert split("OK\n") == ("OK", [])
    assert split("OK | a=1\nlong\n") == ("OK", ["a=1"])
    assert split("OK\nlong | b=2\nc=3\nd=4") == ("OK", ["b=2", "c=3", "d=4"])
    assert split("OK | a=1\nlong\nmore | b=2\nc=3") == ("OK", ["a=1", "b=2", "c=3"])


def test_parse_perfdata_edge_cases() -> None:
    parsed = parse_perfdata("'it''s'=3 undetermined=U;1;2 neg=-1.5e2 comma=1,5 garbage no=value 'spaced label'=7KB x=")
    assert [(p["label"], p["value"], p["uom"]) for p in parsed] == [
        ("it's", 3.0, ""), ("undetermined", None, ""), ("neg", -150.0, ""), ("comma", 1.5, ""),
        ("spaced label", 7.0, "KB")]
    assert parsed[1]["warn"] == "1" and parsed[1]["crit"] == "2"
    assert parse_perfdata("") == []
    assert parse_perfdata("'unterminated=1 ok=2") == [
        {"label": "ok", "value": 2.0, "uom": "", "warn": None, "crit": None, "min": None, "max": None}]
    assert len(parse_perfdata(" ".join(f"v{i}=1" for i in range(500)))) == 100


def test_undetermined_first_value_is_skipped_for_value(run: Runner[Any], tmp_path: Path) -> None:
    script = plugin(tmp_path, "echo 'OK | a=U b=7'")
    result, _ = run(run_timed(command_check(script)))
    assert result.value == 7.0


# --- bad input: one line, no secrets --------------------------------------------------------


def test_missing_executable(run: Runner[Any], tmp_path: Path) -> None:
    result, _ = run(run_timed(command_check(str(tmp_path / "no_such_plugin"))))
    assert result.up is False and result.outcome is Outcome.FAILURE
    assert result.error == f"cannot run '{tmp_path / 'no_such_plugin'}': No such file or directory"
    assert result.value is None


def test_not_executable(run: Runner[Any], tmp_path: Path) -> None:
    script = plugin(tmp_path, "exit 0")
    Path(script).chmod(0o644)
    result, _ = run(run_timed(command_check(script)))
    assert result.up is False
    assert result.error == f"cannot run '{script}': Permission denied"


def test_program_looked_up_in_the_fixed_path_only(run: Runner[Any], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A program found only through the daemon's PATH is not run; one in the fixed PATH is,
    even when the daemon's own PATH is useless."""
    plugin(tmp_path, "exit 0", name="only_in_daemon_path")
    monkeypatch.setenv("PATH", str(tmp_path))
    result, _ = run(run_timed(command_check("only_in_daemon_path")))
    assert result.up is False
    assert result.error == f"cannot run 'only_in_daemon_path': not found in PATH={DEFAULT_PATH}"
    result, _ = run(run_timed(command_check("sh", "-c", "echo fine")))
    assert result.up is True and result.detail["output"] == "fine"


def test_environment_is_explicit(run: Runner[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_API_TOKEN", "daemon-secret-value")
    monkeypatch.setenv("HOME", "/root-of-the-daemon")
    dump = tmp_path / "env"
    script = plugin(tmp_path, f"/usr/bin/env > {dump}\necho \"seen=${{MONITOR_API_TOKEN:-absent}} extra=$EXTRA\"")
    result, _ = run(run_timed(command_check(script, env={"EXTRA": "given"})))
    assert result.up is True
    assert result.detail["output"] == "seen=absent extra=given"
    seen = dict(line.split("=", 1) for line in dump.read_text().splitlines())
    assert "daemon-secret-value" not in dump.read_text()
    assert seen["PATH"] == DEFAULT_PATH and seen["EXTRA"] == "given"
    # What a POSIX shell adds by itself, and nothing else.
    assert set(seen) - {"PATH", "EXTRA", "PWD", "SHLVL", "OLDPWD", "_"} == set()


def test_env_may_override_path(run: Runner[Any], tmp_path: Path) -> None:
    plugin(tmp_path, "echo custom", name="custom_plugin")
    result, _ = run(run_timed(command_check("custom_plugin", env={"PATH": f"{tmp_path}:/usr/bin:/bin"})))
    assert result.up is True and result.detail["output"] == "custom"


def test_configured_secret_in_output_is_redacted(run: Runner[Any], tmp_path: Path) -> None:
    secrets.register(["plugin-password-123"])
    script = plugin(tmp_path, 'echo "CRITICAL - login as admin with $DB_PASSWORD refused"\nexit 2')
    result, _ = run(run_timed(command_check(script, env={"DB_PASSWORD": "plugin-password-123"})))
    assert result.up is False
    assert "plugin-password-123" not in repr(result)
    assert result.detail["output"] == "CRITICAL - login as admin with *** refused"


def test_multiline_error_is_one_line(run: Runner[Any], tmp_path: Path) -> None:
    script = plugin(tmp_path, "printf 'CRITICAL\\tbad\\r\\nsecond line\\n'\nexit 2")
    result, _ = run(run_timed(command_check(script)))
    assert result.error is not None and "\n" not in result.error and "\r" not in result.error
    assert "second line" not in result.error


@pytest.mark.parametrize("bad", [
    {"command": "check_load -w 5"},  # a string would need a shell
    {"command": []},
    {"command": [""]},
    {"command": ["x\0y"]},
    {"command": ["true"], "env": {"BAD-NAME": "x"}},
    {"command": ["true"], "env": {"A": "x\0"}},
])
def test_invalid_config(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as info:
        CommandCheck(name="c", kind="command", interval=10, timeout=5, **bad)
    if isinstance(bad["command"], str):
        assert "list of arguments" in str(info.value) and "without a shell" in str(info.value)


# --- the process group: deadline, escaping children, shutdown -------------------------------


def test_hang_is_killed_at_the_timeout(run: Runner[Any], tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = plugin(tmp_path, f"sleep 60 &\necho $$ $! > {pids}\nwait")
    result, took = run(run_timed(command_check(script, timeout=1.0)))
    assert result.outcome is Outcome.TIMEOUT and result.error == "timeout" and result.up is False
    assert took < 1.0 + 5
    assert wait_until_gone(read_pids(pids)) == []
    assert not group_alive(read_pids(pids)[0])


def test_sigterm_ignored_is_killed(run: Runner[Any], tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    # SIG_IGN survives exec, so the sleep ignores SIGTERM too: only SIGKILL ends them.
    script = plugin(tmp_path, f"trap '' TERM\nsleep 60 &\necho $$ $! > {pids}\nwait")
    result, took = run(run_timed(command_check(script, timeout=1.0)))
    assert result.outcome is Outcome.TIMEOUT
    assert took < 1.0 + 5
    assert wait_until_gone(read_pids(pids)) == []


@pytest.mark.parametrize("spawn", [
    "(sleep 60 & echo $! > {pids}) ; echo 'OK - done'",  # a double fork: the sleep is orphaned at once
    "sleep 60 & echo $! > {pids}; echo 'OK - done'",  # a direct background child
])
def test_children_outliving_the_plugin_are_killed(spawn: str, run: Runner[Any], tmp_path: Path) -> None:
    """Both hold the plugin's stdout open; the probe must not wait for them until the deadline."""
    pids = tmp_path / "pids"
    script = plugin(tmp_path, spawn.format(pids=pids) + "\nexit 0")
    result, took = run(run_timed(command_check(script, timeout=20.0)))
    assert result.outcome is Outcome.SUCCESS, result.error
    assert result.detail["output"] == "OK - done"
    assert took < 10.0  # far less than the timeout: it did not wait for the sleep's 60 s
    assert wait_until_gone(read_pids(pids)) == []


def test_shutdown_cancel_kills_the_group(run: Runner[Any], tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = plugin(tmp_path, f"sleep 60 &\necho $$ $! > {pids}\nwait")

    async def cancelled_midway() -> None:
        env = ProbeEnv()
        task = asyncio.create_task(run_check(command_check(script, timeout=30.0), env))
        while not pids.exists() or len(pids.read_text().split()) < 2:
            await asyncio.sleep(0.02)
        task.cancel()  # what the scheduler does to runs still going at shutdown
        with pytest.raises(asyncio.CancelledError):
            await task
        await env.close()

    started = time.monotonic()
    run(cancelled_midway())
    assert time.monotonic() - started < 10.0
    assert wait_until_gone(read_pids(pids)) == []


def test_no_zombie_left(run: Runner[Any], tmp_path: Path) -> None:
    script = plugin(tmp_path, "echo OK")

    async def runs() -> None:
        for _ in range(5):
            assert (await run_timed(command_check(script)))[0].up

    run(runs())
    me = os.getpid()
    zombies = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if fields[0] == "Z" and int(fields[1]) == me:
                zombies.append(entry.name)
    assert zombies == []


def test_ten_megabytes_of_output_is_capped(run: Runner[Any], tmp_path: Path) -> None:
    script = plugin(tmp_path, "head -c 10000000 /dev/zero | tr '\\0' x\necho\nyes 'more | a=1' | head -c 1000000\nexit 0")

    tracemalloc.start()
    try:
        result, _ = run(run_timed(command_check(script, timeout=30.0)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.up is True, result.error
    assert result.detail["output"] == "x" * OUTPUT_LINE_LIMIT
    assert peak < 4 * 1024 * 1024, f"peak Python allocation {peak} bytes for 11 MB of output"


def test_result_is_json_safe(run: Runner[Any], tmp_path: Path) -> None:
    import json

    script = plugin(tmp_path, "printf 'OK \\377\\376 bytes | a=1\\n'")
    result, _ = run(run_timed(command_check(script)))
    json.dumps(result.detail)
    assert result.detail["output"].startswith("OK ")


def test_sigterm_grace_lets_a_plugin_clean_up(run: Runner[Any], tmp_path: Path) -> None:
    marker = tmp_path / "cleaned"
    script = plugin(tmp_path, f"trap 'touch {marker}; exit 3' TERM\nsleep 60 &\nwait")
    result, _ = run(run_timed(command_check(script, timeout=1.0)))
    assert result.outcome is Outcome.TIMEOUT
    assert marker.exists()



@pytest.mark.parametrize("iterations", [0, 1, 2, 3, 5, 8])
def test_cancelled_while_starting_leaves_nothing(iterations: int, run: Runner[Any], tmp_path: Path) -> None:
    """Cancelled a few loop iterations after the run began: the child may be half-started
    (forked, pipes not yet connected). Whatever it got to start is ended."""
    pids = tmp_path / "pids"
    script = plugin(tmp_path, f"sleep 60 &\necho $$ $! > {pids}\nwait")

    async def cancelled_early() -> None:
        env = ProbeEnv()
        task = asyncio.create_task(run_check(command_check(script, timeout=30.0), env))
        for _ in range(iterations):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await env.close()

    started = time.monotonic()
    run(cancelled_early())
    assert time.monotonic() - started < 10.0
    time.sleep(0.3)  # a child that was started must have written its pids by now, if it lives
    if pids.exists() and pids.read_text().strip():
        assert wait_until_gone(read_pids(pids)) == []


def test_loaded_config_registers_credential_env_values(run: Runner[Any], tmp_path: Path) -> None:
    """From a config file, as the daemon loads it: an env value named like a credential is a
    secret, and the plugin echoing it does not show it."""
    from monitor.config.loader import load_config

    script = plugin(tmp_path, 'echo "CRITICAL - $DB_PASSWORD rejected, lang $LC_ALL"\nexit 2')
    (tmp_path / "main.yaml").write_text("check_files: [checks.yaml]\n")
    (tmp_path / "checks.yaml").write_text(
        "checks:\n  - name: cmd\n    kind: command\n    interval: 10s\n    timeout: 5s\n"
        f"    command: ['{script}']\n    env: {{DB_PASSWORD: 'from-the-config-77', LC_ALL: C}}\n")
    config = load_config(tmp_path / "main.yaml", environ={})
    [check] = config.checks
    assert isinstance(check, CommandCheck)
    result, _ = run(run_timed(check))
    assert result.detail["output"] == "CRITICAL - *** rejected, lang C"
    assert "from-the-config-77" not in repr(result)
