"""``kind: file`` — how long ago the newest file matching a glob was modified.

value: seconds since the newest match's modification time. detail: ``count`` (files
matched), ``size`` and ``newest`` (bytes and path of the newest), ``truncated`` (the scan
stopped at its entry limit), ``skipped`` (matches or directories that could not be read).
Down when no file matches.

Glob rules (as the shell's, with ``**`` as in bash's globstar): ``*``, ``?`` and ``[...]``
match within one path component; a component that is exactly ``**`` matches any number of
directories, including none; names starting with a dot match only a pattern component that
starts with a dot; ``**`` does not descend into symbolic links to directories (a link loop
cannot make it run forever). Directories never count as matches: the check is about files.

The scan runs in its own thread, so a huge directory or a hung network filesystem never
blocks the event loop; it examines at most ``MAX_ENTRIES`` directory entries per run and
stops early when the run's deadline passes. A check whose previous scan is still stuck in
the filesystem does not start another.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Literal, TypeVar

from pydantic import Field, field_validator

from monitor.core.results import Result
from monitor.probes.base import CheckBase, ProbeEnv

# Directory entries (and stats of matches) looked at per run. Far more than a backup or
# spool directory holds; enough to cap a run that was pointed at / by mistake.
MAX_ENTRIES = 100_000

_MAGIC = re.compile(r"[*?\[]")
T = TypeVar("T")


class FileCheck(CheckBase):
    kind: Literal["file"]
    path: str = Field(min_length=1)  # a glob; relative to the daemon's working directory

    @field_validator("path")
    @classmethod
    def _no_nul(cls, path: str) -> str:
        if "\0" in path:
            raise ValueError("path must not contain NUL characters")
        return path


class _Stopped(Exception):
    """The scan hit its entry limit or its deadline."""


@dataclass
class Scan:
    count: int = 0
    newest: str | None = None
    newest_mtime: float = 0.0
    newest_size: int = 0
    examined: int = 0
    skipped: int = 0
    truncated: bool = False
    seen: set[str] = field(default_factory=set)


# Checks whose scan thread is still working. Only a scan blocked in a system call outlives
# its run (the others notice the deadline); such a check does not pile up further threads.
_scanning: set[str] = set()
_scanning_lock = threading.Lock()


async def probe(check: FileCheck, deadline: float, env: ProbeEnv) -> Result:
    started = time.perf_counter()
    if check.name in _scanning:
        return Result.failed(f"the previous scan of {check.path!r} is still running (a hung filesystem?)",
                             time.perf_counter() - started)
    stop = threading.Event()
    try:
        scan = await _in_thread(check.name, lambda: scan_glob(check.path, MAX_ENTRIES, stop))
    finally:
        stop.set()  # cancelled at the deadline or at shutdown: the thread ends at its next entry
    latency = time.perf_counter() - started
    detail = {"count": scan.count, "size": scan.newest_size if scan.newest else None, "newest": scan.newest,
              "truncated": scan.truncated, "skipped": scan.skipped}
    if scan.newest is None:
        notes = []
        if scan.truncated:
            notes.append(f"scan stopped after {scan.examined} entries")
        if scan.skipped:
            notes.append(f"{scan.skipped} unreadable")
        if os.path.isdir(check.path):
            notes.append("it is a directory: match the files in it with a pattern such as dir/*")
        suffix = f" ({'; '.join(notes)})" if notes else ""
        return Result.failed(f"no file matches {check.path!r}{suffix}", latency, detail)
    age = max(env.clock.time() - scan.newest_mtime, 0.0)  # a future mtime (clock skew) counts as just now
    return Result(up=True, value=round(age, 3), latency=latency, detail=detail)


async def _in_thread(name: str, work: Callable[[], T]) -> T:
    """Run ``work`` in a daemon thread of its own, not the loop's default executor: a scan
    stuck on a dead mount must neither hold up the daemon's exit nor take a worker that a
    config reload or another probe needs."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def run() -> None:
        try:
            result = work()
        except BaseException as err:  # handed to the awaiting task, where the runner reports it
            error = err
            report: Callable[[], None] = lambda: future.set_exception(error)
        else:
            report = lambda: future.set_result(result)
        finally:
            with _scanning_lock:
                _scanning.discard(name)
        try:
            loop.call_soon_threadsafe(deliver, report)
        except RuntimeError:
            pass  # the loop closed while this scan was stuck: nobody is waiting any more

    thread = threading.Thread(target=run, name=f"file-probe-{name}", daemon=True)
    with _scanning_lock:
        _scanning.add(name)
    try:
        thread.start()
    except BaseException:
        with _scanning_lock:
            _scanning.discard(name)
        raise
    return await future


def scan_glob(pattern: str, limit: int, stop: threading.Event | None = None) -> Scan:
    """Every file matching ``pattern``, examining at most ``limit`` entries; see the module
    docstring for the glob rules."""
    scan = Scan()
    absolute = pattern.startswith("/")
    parts = [part for part in pattern.split("/") if part]
    # `a/**/**/b` matches what `a/**/b` does; collapsing avoids scanning the tree twice.
    parts = [part for index, part in enumerate(parts) if not (part == "**" and index and parts[index - 1] == "**")]
    budget = _Budget(limit, stop, scan)
    try:
        for path in _expand("/" if absolute else "", parts, budget):
            _consider(path, scan, budget)
    except _Stopped:
        scan.truncated = True
    return scan


@dataclass
class _Budget:
    limit: int
    stop: threading.Event | None
    scan: Scan

    def spend(self) -> None:
        if self.scan.examined >= self.limit or (self.stop is not None and self.stop.is_set()):
            raise _Stopped
        self.scan.examined += 1


def _consider(path: str, scan: Scan, budget: _Budget) -> None:
    if path in scan.seen:
        return
    budget.spend()
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        if os.path.islink(path):
            scan.skipped += 1  # a dangling symlink: it matched, but has no time to report
        return
    except OSError:
        scan.skipped += 1
        return
    if stat.S_ISDIR(info.st_mode):
        return
    scan.seen.add(path)
    scan.count += 1
    if scan.newest is None or info.st_mtime > scan.newest_mtime:
        scan.newest, scan.newest_mtime, scan.newest_size = path, info.st_mtime, info.st_size


def _join(base: str, name: str) -> str:
    return name if not base else base + name if base.endswith("/") else f"{base}/{name}"


def _expand(base: str, parts: list[str], budget: _Budget) -> Iterator[str]:
    """Paths under ``base`` ("" is the working directory) that match ``parts``, lazily."""
    if not parts:
        yield base or "."
        return
    part, rest = parts[0], parts[1:]
    if part == "**":
        # bash's globstar: `**/` matches zero or more directories, a final `**` every file below.
        if rest:
            yield from _expand(base, rest, budget)
        for path, is_dir in _tree(base, budget):
            if not rest:
                yield path
            elif is_dir:
                yield from _expand(path, rest, budget)
        return
    if not _MAGIC.search(part):
        yield from _expand(_join(base, part), rest, budget)
        return
    for name, is_dir in _entries(base, budget, follow_symlinks=True):
        if name.startswith(".") and not part.startswith("."):
            continue
        if fnmatchcase(name, part) and (is_dir or not rest):
            yield from _expand(_join(base, name), rest, budget)


def _tree(base: str, budget: _Budget) -> Iterator[tuple[str, bool]]:
    """Everything below ``base``, depth first: directories (for ``**/x``) and files (for a
    final ``**``), neither hidden ones nor anything behind a symlinked directory."""
    for name, is_dir in _entries(base, budget, follow_symlinks=False):
        if name.startswith("."):
            continue
        path = _join(base, name)
        yield path, is_dir
        if is_dir:
            yield from _tree(path, budget)


def _entries(base: str, budget: _Budget, follow_symlinks: bool) -> Iterator[tuple[str, bool]]:
    try:
        with os.scandir(base or ".") as entries:
            for entry in entries:
                budget.spend()
                try:
                    is_dir = entry.is_dir(follow_symlinks=follow_symlinks)
                except OSError:
                    is_dir = False
                yield entry.name, is_dir
    except (FileNotFoundError, NotADirectoryError):
        return  # a literal part of the pattern that does not exist: simply no match
    except OSError:
        budget.scan.skipped += 1  # a directory we may not read
