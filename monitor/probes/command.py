"""``kind: command`` — run a program (a Nagios-style plugin) and read its exit code and output.

value: the first numeric performance-data value, else the exit code. detail: ``exit_code``,
``state`` (OK, WARNING, CRITICAL, UNKNOWN), ``output`` (the first line, before ``|``),
``perfdata`` (parsed). Down when the exit code is not 0.

Security model: the argv list is executed directly, never through a shell, with an
environment built from nothing but a fixed ``PATH`` and the check's own ``env``: the daemon's
environment (which may hold its API token or database passwords) is not inherited. Whoever can
write the config can run programs as the daemon's user; nothing reachable from the API can
(a reload re-reads files from disk, it takes no config from the request).

Process lifetime: the child leads its own session and process group. When it exits, whatever
it left running in that group is ended; at the deadline, and when the daemon stops (both
cancel the probe), the whole group is ended: SIGTERM, a short grace, SIGKILL, then reaped.
A descendant that starts its own session (``setsid``, a daemonising double fork) leaves the
group and cannot be followed without cgroups.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import time
from typing import Any, Literal

from pydantic import Field, field_validator

from monitor.core.results import Result, one_line, redact
from monitor.probes.base import CheckBase, ProbeEnv

# The only inherited setting: where to look for argv[0] when it has no slash. Fixed, so the
# daemon's own PATH (a virtualenv, a user's ~/bin) does not decide which program runs.
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
# Kept of standard output; anything beyond is read and dropped, so a chatty child never
# blocks on a full pipe and memory stays bounded whatever it writes.
OUTPUT_LIMIT = 64 * 1024
STDERR_LIMIT = 4 * 1024
OUTPUT_LINE_LIMIT = 1024  # detail.output is shown in tables and alerts
MAX_PERFDATA = 100
# Between SIGTERM and SIGKILL: enough for a plugin to remove its temp files, short enough
# that a stuck one does not hold up the daemon's stop.
TERMINATE_GRACE = 1.0
# After the child exited and its group was ended, how long to wait for the pipes to close:
# only a descendant that left the group (setsid) can keep them open.
PIPE_CLOSE_WAIT = 1.0

STATES = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class CommandCheck(CheckBase):
    kind: Literal["command"]
    command: list[str] = Field(min_length=1)
    env: dict[str, str] = Field(default_factory=dict)

    @field_validator("command", mode="before")
    @classmethod
    def _argv_not_string(cls, value: Any) -> Any:
        # A string would need a shell (or naive splitting) to become an argv: refuse it
        # rather than guess how it should be split.
        if isinstance(value, str):
            raise ValueError("command must be a list of arguments, e.g. [/usr/lib/nagios/plugins/check_load, -w, '5,4,3']; "
                             "it is run without a shell")
        return value

    @field_validator("command")
    @classmethod
    def _argv(cls, argv: list[str]) -> list[str]:
        if not argv[0]:
            raise ValueError("command[0] (the program) must not be empty")
        if any("\0" in arg for arg in argv):
            raise ValueError("command arguments must not contain NUL characters")
        return argv

    @field_validator("env")
    @classmethod
    def _env(cls, env: dict[str, str]) -> dict[str, str]:
        for name, value in env.items():
            if not _ENV_NAME.match(name):
                raise ValueError(f"invalid environment variable name {name!r} (use [A-Za-z_][A-Za-z0-9_]*)")
            if "\0" in value:
                raise ValueError(f"environment variable {name} must not contain NUL characters")
        return env


async def probe(check: CommandCheck, deadline: float, env: ProbeEnv) -> Result:
    started = time.perf_counter()
    child_env = {"PATH": DEFAULT_PATH, **check.env}
    program = check.command[0]
    if "/" not in program:
        # Looked up here, in the child's PATH, not the daemon's: event loops differ in
        # which PATH their spawn searches (uvloop's libuv may use the parent's).
        found = shutil.which(program, path=child_env["PATH"])
        if found is None:
            return Result.failed(f"cannot run {program!r}: not found in PATH={child_env['PATH']}",
                                 time.perf_counter() - started)
        program = found
    loop = asyncio.get_running_loop()
    spawn = asyncio.ensure_future(loop.subprocess_exec(
        _Plugin, program, *check.command[1:],
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=child_env,
        start_new_session=True,  # its own process group, so its descendants can be ended with it
    ))
    try:
        # Shielded: cancelled half-way, asyncio's own clean-up kills the child but then waits
        # for its pipes to close, which a grandchild holding them can delay until it exits.
        transport, plugin = await asyncio.shield(spawn)
    except asyncio.CancelledError:
        spawn.add_done_callback(_kill_spawned)
        # Starting takes a few loop iterations; staying until then means the child is ended
        # before this task is, even when the loop stops right after (asyncio.run would
        # otherwise cancel the start itself, and the child would never be killed).
        await asyncio.wait([spawn])
        if not spawn.cancelled() and spawn.exception() is None:
            transport, plugin = spawn.result()
            try:
                await _reaped(transport, plugin)
            finally:
                transport.close()
        raise
    except OSError as err:
        reason = err.strerror or type(err).__name__
        return Result.failed(f"cannot run {check.command[0]!r}: {reason}", time.perf_counter() - started)
    code = await _run(transport, plugin, deadline)
    latency = time.perf_counter() - started
    return _result(code, bytes(plugin.stdout), bytes(plugin.stderr), latency)


class _Plugin(asyncio.SubprocessProtocol):
    """Keeps the first bytes of each output stream and drops the rest as it arrives, so a
    chatty child never blocks on a full pipe and memory stays bounded whatever it writes.

    A protocol rather than ``create_subprocess_exec``'s Process: ``Process.wait()`` returns
    only once the pipes are closed too, and a background child holding them open would keep
    the probe waiting until the deadline; ``process_exited`` here fires when the child exits.
    """

    def __init__(self) -> None:
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.exited = asyncio.Event()
        self.closed = asyncio.Event()  # both pipes at EOF
        self._open = {1, 2}

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        kept, limit = (self.stdout, OUTPUT_LIMIT) if fd == 1 else (self.stderr, STDERR_LIMIT)
        if len(kept) < limit:
            kept += data[: limit - len(kept)]

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._open.discard(fd)
        if not self._open:
            self.closed.set()

    def process_exited(self) -> None:
        self.exited.set()


async def _run(transport: asyncio.SubprocessTransport, plugin: _Plugin, deadline: float) -> int:
    """Wait for the child; end its process group whatever happens, including the probe being
    cancelled at the deadline or at shutdown. Returns the exit code."""
    try:
        await plugin.exited.wait()
        # Exited: anything it left behind in its group is ended now, so a background child
        # holding the pipes open cannot keep the probe waiting for EOF until the deadline.
        await _end_group(transport, plugin)
        wait = min(PIPE_CLOSE_WAIT, max(deadline - time.monotonic(), 0.0))
        try:
            await asyncio.wait_for(plugin.closed.wait(), wait)
        except TimeoutError:
            pass  # held open by a descendant that left the group: go with what arrived
        code = transport.get_returncode()
        assert code is not None
        return code
    finally:
        if transport.get_returncode() is None or _group_exists(transport.get_pid()):
            await _end_group(transport, plugin)
        # Closes our ends of the pipes (a descendant that left the group may still hold
        # theirs: without this every run would leak them for as long as it lives).
        transport.close()


async def _end_group(transport: asyncio.SubprocessTransport, plugin: _Plugin) -> None:
    """SIGTERM to the whole group, a short grace, SIGKILL, and reap the child. The SIGKILL is
    sent even if this task is cancelled during the grace (a second cancellation at shutdown)."""
    pgid = transport.get_pid()  # start_new_session: the child's pid is its group id
    try:
        if _signal_group(pgid, signal.SIGTERM):
            give_up = time.monotonic() + TERMINATE_GRACE
            while time.monotonic() < give_up and (transport.get_returncode() is None or _group_exists(pgid)):
                await asyncio.sleep(0.05)
    finally:
        _signal_group(pgid, signal.SIGKILL)
        await _reaped(transport, plugin)


async def _reaped(transport: asyncio.SubprocessTransport, plugin: _Plugin) -> None:
    """The loop reaps the child; after SIGKILL that is a matter of milliseconds, unless it is
    stuck in the kernel (uninterruptible I/O): then do not wait forever."""
    if transport.get_returncode() is None:
        try:
            await asyncio.wait_for(plugin.exited.wait(), 5.0)
        except TimeoutError:
            pass


def _kill_spawned(spawn: asyncio.Future[tuple[asyncio.SubprocessTransport, _Plugin]]) -> None:
    """The probe was cancelled while the child was being started: end it as soon as it is."""
    if spawn.cancelled() or spawn.exception() is not None:
        return
    transport, _ = spawn.result()
    _signal_group(transport.get_pid(), signal.SIGKILL)


def _signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False  # nobody left in the group (or only members we may not signal)
    return True


def _group_exists(pgid: int) -> bool:
    """Is any member of the group still running? Zombies do not count: ended members
    orphaned to init wait there until it reaps them, which some inits do only now and then."""
    if not _signal_group(pgid, 0):  # signal 0: only asks whether any member is left
        return False
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True  # no procfs: a zombie member counts as running, the grace is waited out
    for entry in entries:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as stat:
                    # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
                    fields = stat.read().rsplit(b")", 1)[1].split()
            except (OSError, IndexError):
                continue  # gone meanwhile
            if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != b"Z":
                return True
    return False


# --- reading the plugin's answer ------------------------------------------------------------


def _result(code: int | None, stdout: bytes, stderr: bytes, latency: float) -> Result:
    assert code is not None
    text = stdout.decode("utf-8", errors="replace")
    first, perf_text = split_output(text)
    if not first and not perf_text:
        # Nagios reads standard output only; a plugin that printed nothing there but failed
        # usually said why on standard error ("No such file or directory"), so show that.
        first = stderr.decode("utf-8", errors="replace").strip().split("\n", 1)[0].strip()
    output = redact(first)[:OUTPUT_LINE_LIMIT]
    perfdata = parse_perfdata(perf_text)
    state = STATES.get(code, "UNKNOWN")
    numbers = [item["value"] for item in perfdata if item["value"] is not None]
    value = float(numbers[0]) if numbers else float(code)
    detail: dict[str, Any] = {"exit_code": code, "state": state, "output": output, "perfdata": perfdata}
    if code == 0:
        return Result(up=True, value=value, latency=latency, detail=detail)
    how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
    error = f"{state} ({how}): {output}" if output else f"{state} ({how})"
    return Result.failed(one_line(error), latency, detail, value=value)


def split_output(text: str) -> tuple[str, str]:
    """The first line's text (before ``|``) and all performance data: after ``|`` on the first
    line, and after the first ``|`` in the long output together with every line after it."""
    lines = text.splitlines()
    if not lines:
        return "", ""
    first, _, perf = lines[0].partition("|")
    parts = [perf]
    for index, line in enumerate(lines[1:], start=2):
        if "|" in line:
            parts.append(line.partition("|")[2])
            parts.extend(lines[index:])
            break
    return first.strip(), " ".join(parts)


_NUMBER = r"[-+]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][-+]?\d+)?"
_ITEM = re.compile(r"(?:'(?P<quoted>(?:[^']|'')*)'|(?P<plain>[^\s'=]+))=(?P<data>\S*)")
_VALUE = re.compile(rf"^(?P<value>{_NUMBER}|U)(?P<uom>[A-Za-z%]*)$")
_LIMIT = re.compile(rf"^{_NUMBER}$")


def parse_perfdata(text: str) -> list[dict[str, Any]]:
    """``'label'=value[UOM];[warn];[crit];[min];[max]`` items, separated by whitespace.

    Lenient: an item that does not parse is skipped, the rest are kept. ``warn`` and ``crit``
    are range strings (``10``, ``10:``, ``~:10``, ``@10:20``) kept as written; a value of
    ``U`` (undetermined) is ``None``. A decimal comma (a plugin run in a German locale) is
    read as a point.
    """
    items: list[dict[str, Any]] = []
    position, end = 0, len(text)
    while position < end and len(items) < MAX_PERFDATA:
        if text[position].isspace():
            position += 1
            continue
        match = _ITEM.match(text, position)
        if match is None:
            while position < end and not text[position].isspace():  # skip the unreadable token
                position += 1
            continue
        position = match.end()
        item = _item(match)
        if item is not None:
            items.append(item)
    return items


def _item(match: re.Match[str]) -> dict[str, Any] | None:
    quoted = match.group("quoted")
    label = quoted.replace("''", "'") if quoted is not None else match.group("plain")
    fields = match.group("data").split(";")
    value = _VALUE.match(fields[0])
    if value is None or not label:
        return None
    fields += [""] * (5 - len(fields))
    return {
        "label": label,
        "value": None if value.group("value") == "U" else _number(value.group("value")),
        "uom": value.group("uom"),
        "warn": fields[1] or None,
        "crit": fields[2] or None,
        "min": _number(fields[3]) if _LIMIT.match(fields[3]) else None,
        "max": _number(fields[4]) if _LIMIT.match(fields[4]) else None,
    }


def _number(text: str) -> float:
    return float(text.replace(",", "."))
