"""Helpers shared by the benchmark scripts: pinned subprocesses, /proc accounting, the
local target server, and the sectioned RESULTS.md writer.

Everything here is Linux-specific on purpose: CPU accounting comes from /proc so that the
measured process does not have to cooperate (the daemon and blackbox_exporter know nothing
about the benchmark).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import platform
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_FILE = BENCH_DIR / "RESULTS.md"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# On the 2-core reference machine the measured process gets CPU 0 and everything that
# generates or serves load (target server, load generator, this driver) gets CPU 1, so
# "CPU seconds" and "one core" mean the same thing and the target never steals the core
# under test.  With a single CPU both land on CPU 0 and the numbers are only indicative.
MEASURED_CPU = 0
LOAD_CPU = 1 if (os.cpu_count() or 1) > 1 else 0


def pin_self(cpu: int) -> None:
    """Pin the calling process (all future threads included) to one CPU, if allowed."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {cpu})


def pinned(cpu: int) -> Callable[[], None]:
    """A preexec_fn pinning the child *before* exec: Go sizes GOMAXPROCS from the affinity
    mask at start-up, and Python threads inherit it, so pinning afterwards is too late."""
    return lambda: pin_self(cpu)


def free_port() -> int:
    """A port that was free a moment ago (race-prone in theory; fine on a quiet box)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (all its threads) from /proc/<pid>/stat."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    # The comm field may contain spaces/parentheses; fields resume after the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 in proc(5)
    return (utime + stime) / CLK_TCK


def descendants(pid: int) -> list[int]:
    """The PIDs of ``pid``'s children, grandchildren and so on (e.g. the daemon's AWS worker)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        ppid = int(raw[raw.rindex(")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its running descendants."""
    total = 0.0
    for each in [pid, *descendants(pid)]:
        try:
            total += cpu_seconds(each)
        except OSError:
            pass  # exited meanwhile
    return total


def tree_status_kib(pid: int, key: str) -> int:
    """:func:`status_kib` summed over ``pid`` and its running descendants."""
    total = 0
    for each in [pid, *descendants(pid)]:
        try:
            total += status_kib(each, key)
        except (OSError, KeyError):
            pass
    return total


def status_kib(pid: int, key: str) -> int:
    """A kB-valued line of /proc/<pid>/status, e.g. VmHWM (peak RSS) or VmRSS."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def spawn(
    argv: Sequence[str], cpu: int, log_path: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a pinned child with its output in a log file (a pipe nobody reads would
    eventually block a chatty child and distort the measurement)."""
    log = open(log_path, "wb")  # noqa: SIM115 - closed when the child is stopped
    return subprocess.Popen(
        list(argv),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        preexec_fn=pinned(cpu),
        env=env,
        start_new_session=True,  # a Ctrl-C in the terminal goes to us, and we clean up
    )


def stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> int | None:
    """SIGTERM, wait, then SIGKILL — only ever the process we started, by pid."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


def tail(path: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


@dataclass
class Target:
    port: int
    pid: int

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/health"

    def check_url(self, name: str) -> str:
        """/health tagged with the check name, so the target can time each check's runs."""
        return f"{self.health_url}?check={name}"


@contextlib.contextmanager
def run_target(log_dir: Path, workers: int = 1, timeout: float = 15.0) -> Iterator[Target]:
    """Start bench/target.py on the load CPU and yield its port once it accepts."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.target", "--port", str(port), "--workers", str(workers), "--cpu", str(LOAD_CPU)]
    proc = spawn(argv, LOAD_CPU, log_dir / "target.log", env={**os.environ, "PYTHONPATH": str(BENCH_DIR.parent)})
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"target exited with {proc.returncode}:\n{tail(log_dir / 'target.log')}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("target did not start listening")
            time.sleep(0.05)
        yield Target(port, proc.pid)
    finally:
        stop(proc)


def _target_get(port: int, path: str) -> bytes:
    # A raw socket rather than urllib: this runs between CPU readings and should be cheap.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(1 << 20):
            chunks.append(chunk)
    return b"".join(chunks).split(b"\r\n\r\n", 1)[1]


def target_arrivals(port: int) -> list[tuple[float, str]]:
    """(unix time, check name) of every ``?check=`` request since the last call."""
    body = _target_get(port, "/arrivals")
    return [(float(t), name.decode()) for t, name in (line.split(b" ", 1) for line in body.splitlines() if line)]


def target_requests(port: int) -> int:
    """Requests served so far by the target (all workers), from its /stats endpoint."""
    body = _target_get(port, "/stats")
    match = re.search(rb'"requests":\s*(\d+)', body)
    if not match:
        raise ValueError(f"unexpected /stats answer: {body[:200]!r}")
    return int(match.group(1))


def machine_info() -> list[str]:
    """Markdown bullet lines describing where the numbers came from."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return [
        f"- date: {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: nproc={os.cpu_count()}, CPU `{model}`, kernel {platform.release()}",
        f"- python: {platform.python_version()} ({sys.executable})",
        # Other work on the box skews everything (pinning cannot keep it off our cores).
        f"- load average at report time (1/5/15 min): {' / '.join(f'{x:.2f}' for x in os.getloadavg())}",
    ]


def command_line() -> str:
    """The exact command as a user would type it from the repo root."""
    module = Path(sys.argv[0]).stem
    return shlex.join(["python", "-m", f"bench.{module}", *sys.argv[1:]])


def update_results_section(name: str, body: str) -> None:
    """Replace (or append) the ``<!-- name:start -->`` … ``<!-- name:end -->`` block so
    re-running one script never clobbers another script's numbers."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    text = RESULTS_FILE.read_text() if RESULTS_FILE.exists() else "# Benchmark results\n\nGenerated by the scripts in `bench/` (see bench/README.md); each section is rewritten by its own script.\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    RESULTS_FILE.write_text(text)


def md_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
