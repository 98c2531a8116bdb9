"""``kind: file`` through the runner, on files made here with chosen modification times."""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from monitor.core.results import Outcome
from monitor.probes import file as file_probe
from monitor.probes.file import FileCheck, scan_glob

from tests.probing import run_timed


def file_check(path: str, *, timeout: float = 5.0, name: str = "file_probe_test") -> FileCheck:
    return FileCheck(name=name, kind="file", interval=max(timeout, 10.0), timeout=timeout, path=path)


def make(path: Path, age: float, size: int = 0) -> Path:
    """A file last modified ``age`` seconds ago."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    when = time.time() - age
    os.utime(path, (when, when))
    return path


@pytest.fixture
def backups(tmp_path: Path) -> Path:
    root = tmp_path / "backups"
    make(root / "db-1.tar.gz", age=3600, size=100)
    make(root / "db-2.tar.gz", age=60, size=42)
    make(root / "notes.txt", age=5)  # newer, but does not match *.tar.gz
    make(root / ".partial.tar.gz", age=1)  # hidden: * does not match it
    return root


async def test_newest_match(backups: Path) -> None:
    result, _ = await run_timed(file_check(f"{backups}/*.tar.gz"))
    assert result.up is True and result.outcome is Outcome.SUCCESS, result.error
    assert result.value is not None and 59 <= result.value < 60 + 30
    assert result.detail == {"count": 2, "size": 42, "newest": f"{backups}/db-2.tar.gz",
                             "truncated": False, "skipped": 0}


async def test_hidden_files_need_a_dot_pattern(backups: Path) -> None:
    result, _ = await run_timed(file_check(f"{backups}/.*.tar.gz"))
    assert result.up is True
    assert result.detail["newest"] == f"{backups}/.partial.tar.gz" and result.detail["count"] == 1


async def test_double_star_is_recursive(tmp_path: Path) -> None:
    make(tmp_path / "logs" / "top.log", age=100)
    make(tmp_path / "logs" / "a" / "b" / "deep.log", age=30, size=7)
    make(tmp_path / "logs" / "a" / "other.txt", age=1)
    make(tmp_path / "logs" / ".hidden" / "secret.log", age=1)  # ** does not enter hidden directories
    result, _ = await run_timed(file_check(f"{tmp_path}/logs/**/*.log"))
    assert result.up is True
    assert result.detail["count"] == 2  # top.log too: ** matches zero directories
    assert result.detail["newest"] == f"{tmp_path}/logs/a/b/deep.log" and result.detail["size"] == 7
    everything, _ = await run_timed(file_check(f"{tmp_path}/logs/**"))
    assert everything.detail["count"] == 3 and everything.detail["newest"] == f"{tmp_path}/logs/a/other.txt"
    single, _ = await run_timed(file_check(f"{tmp_path}/logs/*/*.log"))
    assert single.up is False  # a single * is one directory level: logs/a has no .log


async def test_nothing_matches(tmp_path: Path) -> None:
    pattern = f"{tmp_path}/nothing-*.tar.gz"
    result, _ = await run_timed(file_check(pattern))
    assert result.up is False and result.outcome is Outcome.FAILURE
    assert result.value is None
    assert result.error == f"no file matches '{pattern}'"
    assert result.detail == {"count": 0, "size": None, "newest": None, "truncated": False, "skipped": 0}
    missing_dir, _ = await run_timed(file_check("/no/such/dir/**/*.gz"))
    assert missing_dir.error == "no file matches '/no/such/dir/**/*.gz'"


async def test_a_directory_is_not_a_file(tmp_path: Path) -> None:
    (tmp_path / "spool").mkdir()
    result, _ = await run_timed(file_check(str(tmp_path / "spool")))
    assert result.up is False
    assert result.error is not None and "it is a directory" in result.error


async def test_literal_path(tmp_path: Path) -> None:
    make(tmp_path / "last-run", age=120, size=3)
    result, _ = await run_timed(file_check(str(tmp_path / "last-run")))
    assert result.up is True and result.detail["count"] == 1 and result.detail["size"] == 3
    assert result.value is not None and 119 <= result.value < 120 + 30


async def test_relative_to_the_working_directory(backups: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(backups.parent)
    result, _ = await run_timed(file_check("backups/*.tar.gz"))
    assert result.up is True and result.detail["newest"] == "backups/db-2.tar.gz"
    here, _ = await run_timed(file_check("*/db-1.tar.gz"))
    assert here.detail["newest"] == "backups/db-1.tar.gz"


async def test_state_change_followed(tmp_path: Path) -> None:
    pattern = f"{tmp_path}/*.done"
    first = make(tmp_path / "job-1.done", age=300)
    healthy, _ = await run_timed(file_check(pattern))
    first.unlink()
    unhealthy, _ = await run_timed(file_check(pattern))
    make(tmp_path / "job-2.done", age=2)  # a new file appears
    again, _ = await run_timed(file_check(pattern))
    assert (healthy.up, unhealthy.up, again.up) == (True, False, True)
    assert healthy.value is not None and again.value is not None and again.value < healthy.value
    assert again.detail["newest"] == f"{tmp_path}/job-2.done"


async def test_future_mtime_counts_as_now(tmp_path: Path) -> None:
    make(tmp_path / "skewed", age=-3600)
    result, _ = await run_timed(file_check(f"{tmp_path}/skewed"))
    assert result.up is True and result.value == 0.0


async def test_dangling_symlink_and_unreadable_file(tmp_path: Path) -> None:
    make(tmp_path / "good.gz", age=50)
    (tmp_path / "dangling.gz").symlink_to(tmp_path / "missing-target")
    locked = make(tmp_path / "locked.gz", age=10)
    locked.chmod(0)
    result, _ = await run_timed(file_check(f"{tmp_path}/*.gz"))
    assert result.up is True
    # stat needs no read permission: the unreadable file still has a modification time.
    assert result.detail["newest"] == f"{tmp_path}/locked.gz"
    assert result.detail["count"] == 2 and result.detail["skipped"] == 1
    only_dangling, _ = await run_timed(file_check(f"{tmp_path}/dangling.gz"))
    assert only_dangling.up is False
    assert only_dangling.error == f"no file matches '{tmp_path}/dangling.gz' (1 unreadable)"


async def test_symlink_loop_under_double_star(tmp_path: Path) -> None:
    make(tmp_path / "tree" / "sub" / "x.dat", age=10)
    (tmp_path / "tree" / "sub" / "loop").symlink_to(tmp_path / "tree")
    result, _ = await run_timed(file_check(f"{tmp_path}/tree/**/*.dat"))
    assert result.up is True and result.detail["count"] == 1 and result.detail["truncated"] is False


def test_unreadable_directory_as_another_user() -> None:
    """Run as root, every directory is readable; a child dropped to `nobody` is not."""
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user nobody")
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to nobody")
    # Not under tmp_path: pytest's base directory is private to root.
    with tempfile.TemporaryDirectory(prefix="monitor-file-probe-") as top:
        area = Path(top)
        area.chmod(0o755)
        make(area / "open" / "a.log", age=100)
        make(area / "closed" / "b.log", age=1)
        (area / "closed").chmod(0o700)
        (area / "open").chmod(0o755)
        (area / "open" / "a.log").chmod(0o644)
        _scan_as(nobody, area)


def _scan_as(nobody: pwd.struct_passwd, area: Path) -> None:
    code = (
        "import json, os, sys\n"
        "from monitor.probes.file import scan_glob\n"  # imported first: nobody may not read the interpreter's files
        f"os.setgid({nobody.pw_gid}); os.setuid({nobody.pw_uid})\n"
        f"scan = scan_glob({str(area)!r} + '/*/*.log', 1000)\n"
        "print(json.dumps([scan.count, scan.newest, scan.skipped]))\n"
    )
    repo = str(Path(__file__).resolve().parent.parent)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", timeout=60,
                          env={"PYTHONPATH": repo, "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f'[1, "{area}/open/a.log", 1]'


# --- bounds: the entry limit, the thread, the deadline ----------------------------------------


def test_scan_stops_at_the_entry_limit(tmp_path: Path) -> None:
    for index in range(50):
        make(tmp_path / f"f{index:02}.log", age=index)
    scan = scan_glob(f"{tmp_path}/*.log", 10)
    assert scan.truncated is True and scan.examined == 10
    assert 0 < scan.count < 10
    full = scan_glob(f"{tmp_path}/*.log", 1000)
    assert full.truncated is False and full.count == 50 and full.newest == f"{tmp_path}/f00.log"


async def test_probe_reports_truncation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for index in range(30):
        make(tmp_path / f"f{index:02}.other", age=index)
    monkeypatch.setattr(file_probe, "MAX_ENTRIES", 10)
    result, _ = await run_timed(file_check(f"{tmp_path}/*.log"))
    assert result.up is False
    assert result.detail["truncated"] is True
    assert result.error == f"no file matches '{tmp_path}/*.log' (scan stopped after 10 entries)"


def test_a_set_stop_event_ends_the_scan(tmp_path: Path) -> None:
    make(tmp_path / "a.log", age=1)
    stop = threading.Event()
    stop.set()
    scan = scan_glob(f"{tmp_path}/*.log", 1000, stop)
    assert scan.truncated is True and scan.count == 0


async def test_scan_runs_off_the_event_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make(tmp_path / "a.log", age=1)
    threads: list[str] = []
    real = os.scandir

    def recording(path: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real(path)

    monkeypatch.setattr(file_probe.os, "scandir", recording)
    result, _ = await run_timed(file_check(f"{tmp_path}/*.log"))
    assert result.up is True
    assert threads and all(name.startswith("file-probe-") for name in threads), threads


async def test_hung_scan_times_out_and_is_not_started_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A filesystem that never answers (a dead NFS mount): the run times out, and the next
    run does not add a second stuck thread."""
    make(tmp_path / "a.log", age=1)
    release = threading.Event()
    real = os.scandir

    def hanging(path: Any) -> Any:
        release.wait(30)
        return real(path)

    monkeypatch.setattr(file_probe.os, "scandir", hanging)
    check = file_check(f"{tmp_path}/*.log", timeout=0.5, name="file_hung_test")
    try:
        first, took = await run_timed(check)
        assert first.outcome is Outcome.TIMEOUT and took < 0.5 + 5
        second, _ = await run_timed(check)
        assert second.up is False
        assert second.error == f"the previous scan of '{tmp_path}/*.log' is still running (a hung filesystem?)"
    finally:
        release.set()
    give_up = time.monotonic() + 10
    while "file_hung_test" in file_probe._scanning and time.monotonic() < give_up:
        await asyncio.sleep(0.02)
    monkeypatch.setattr(file_probe.os, "scandir", real)
    third, _ = await run_timed(check)
    assert third.up is True


async def test_huge_directory_keeps_the_loop_responsive(tmp_path: Path) -> None:
    for index in range(20_000):
        (tmp_path / f"entry-{index}").touch()
    make(tmp_path / "wanted.bak", age=7)
    gaps: list[float] = []
    done = False

    async def ticker() -> None:
        last = time.monotonic()
        while not done:
            await asyncio.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    result, _ = await run_timed(file_check(f"{tmp_path}/*.bak", timeout=30.0))
    done = True
    await task
    assert result.up is True and result.detail["count"] == 1
    assert gaps and max(gaps) < 1.0  # the scan (tens of ms or more) never held the loop for long


# --- glob semantics against Python's glob -----------------------------------------------------


@pytest.mark.parametrize("pattern", [
    "*", "*.log", "a/*", "a/*/*.log", "**", "**/*.log", "a/**/*.log", "a/**", "**/b/*", "[ab]/*.log",
    "?/x?.log", "a/**/**/*.log", "**/b/**/*.log", "nope/*", "a/b/x1.log",
])
def test_matches_python_glob(pattern: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for relative in ("top.log", "a/x1.log", "a/x2.txt", "a/b/x3.log", "a/b/c/x4.log", "b/x5.log", "b/b/x6.log"):
        make(tmp_path / relative, age=1)
    monkeypatch.chdir(tmp_path)
    expected = {path for path in glob.glob(pattern, recursive=True) if not os.path.isdir(path)}
    assert scan_glob(pattern, 10_000).seen == expected


@pytest.mark.parametrize("bad", ["", "a\0b"])
def test_invalid_path(bad: str) -> None:
    with pytest.raises(ValidationError):
        file_check(bad)
