"""Private, throw-away Redis and PostgreSQL servers for tests that take a server down.

The shared servers on 6379/5432 are never touched here: every private server runs on a
free loopback port with its data, socket and log in its own temporary directory, and is
stopped by its own PID. Each can be killed and started again on the same port, which is
what "the target goes down and comes back" tests need.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

STARTUP_TIMEOUT = 20.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.05,
               what: str = "condition") -> None:
    """Poll ``predicate()`` until it is truthy; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(pid, 0); reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return _not_zombie(pid)


def _not_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# --- Redis -----------------------------------------------------------------------------


def redis_ping(port: int, timeout: float = 0.5) -> bool:
    """True when a Redis on 127.0.0.1:``port`` answers PING (raw RESP, no client library)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """``redis-server`` on a free port, no persistence, DEBUG allowed from loopback."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="monitor-test-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        assert not redis_ping(self.port), f"something else answers on port {self.port}"
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server is not on PATH"
        log = open(self.dir / "redis.log", "ab")
        try:
            self.proc = subprocess.Popen(
                [
                    binary,
                    "--port", str(self.port),
                    "--bind", "127.0.0.1",
                    "--dir", str(self.dir),
                    "--save", "",
                    "--appendonly", "no",
                    "--daemonize", "no",
                    "--enable-debug-command", "local",
                ],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir,
            )
        finally:
            log.close()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not redis_ping(self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"redis-server did not answer PING in {STARTUP_TIMEOUT:g}s: {self.log_tail()}")
            time.sleep(0.02)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Stop it abruptly, by its own PID, and wait until the port no longer answers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def restart(self) -> None:
        """Start again on the same port (after ``kill``)."""
        self.kill()
        self.start()

    def log_tail(self) -> str:
        try:
            return (self.dir / "redis.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def cleanup(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def running_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


# --- PostgreSQL ------------------------------------------------------------------------

PG_USER = "postgres"  # the unprivileged OS account the private server runs as


def postgres_bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` that has ``initdb`` and ``pg_ctl``."""
    candidates = [
        Path(d) for d in glob.glob("/usr/lib/postgresql/*/bin")
        if os.access(os.path.join(d, "initdb"), os.X_OK) and os.access(os.path.join(d, "pg_ctl"), os.X_OK)
    ]
    if not candidates:
        raise RuntimeError("no /usr/lib/postgresql/<version>/bin with initdb and pg_ctl")

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", path.parent.name)) or (0,)

    return max(candidates, key=version)


def pg_ready(port: int, timeout: float = 1.0) -> bool:
    """True when the server on 127.0.0.1:``port`` accepts a query (not just a TCP connect)."""
    import psycopg

    try:
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                             connect_timeout=max(1, int(timeout))) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


class PostgresServer:
    """A private cluster: ``initdb`` once, then ``pg_ctl start``/``stop -m immediate`` at will.

    Runs as the ``postgres`` OS user (PostgreSQL refuses root); trust auth, loopback only,
    its unix socket in its own directory, fsync off (it is thrown away).
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.bin = postgres_bin_dir()
        self.dir = Path(tempfile.mkdtemp(prefix="monitor-test-pg-"))
        self.data = self.dir / "data"
        self.sockets = self.dir / "sock"
        self.logfile = self.dir / "postgres.log"
        self._initialised = False

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        # As root, drop to the postgres account; as anyone else, run as ourselves.
        as_user: dict[str, Any] = {"user": PG_USER, "group": PG_USER, "extra_groups": []} if os.geteuid() == 0 else {}
        return subprocess.run(
            list(args), **as_user, cwd=self.dir,
            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C", "LANG": "C", "HOME": str(self.dir)},
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
        )

    def initdb(self) -> None:
        self.sockets.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.dir, PG_USER, PG_USER)
            shutil.chown(self.sockets, PG_USER, PG_USER)
        os.chmod(self.dir, 0o700)
        done = self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                         "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C")
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}): {done.stderr[-2000:]}")
        self._initialised = True

    def start(self) -> None:
        if not self._initialised:
            self.initdb()
        assert not pg_ready(self.port), f"something else answers on port {self.port}"
        options = " ".join([
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={self.sockets}",
            # fsync off is safe for a throw-away cluster: a commit still reaches the OS before it
            # returns, so ``stop -m immediate`` (a crash) loses nothing the daemon saw commit.
            # synchronous_commit=off would not: the WAL writer may not have written the daemon's
            # schema yet, and the cluster came back without its tables (a CI flake).
            "-c fsync=off", "-c full_page_writes=off",
            "-c max_connections=30", "-c shared_buffers=16MB",
        ])
        done = self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.logfile),
                         "-o", options, "-w", "-t", str(int(STARTUP_TIMEOUT)), "start")
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed ({done.returncode}): {done.stdout}{done.stderr} {self.log_tail()}")
        wait_until(lambda: pg_ready(self.port), STARTUP_TIMEOUT, what=f"private postgres on {self.port}")

    @property
    def pid(self) -> int | None:
        """The postmaster's PID, from its pid file (None when not running)."""
        try:
            first = (self.data / "postmaster.pid").read_text().split("\n", 1)[0]
            pid = int(first)
        except (OSError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    def stop(self) -> None:
        """``pg_ctl stop -m immediate``; falls back to signalling the postmaster's PID."""
        pid = self.pid
        if pid is None:
            return
        done = self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                         "-t", "15", "stop", timeout=30)
        if done.returncode != 0 or _pid_alive(pid):
            self.kill_by_pid(pid)

    def kill_by_pid(self, pid: int | None = None) -> None:
        """SIGQUIT (immediate shutdown) to the postmaster, then SIGKILL if it lingers."""
        pid = pid or self.pid
        if pid is None:
            return
        for sig, wait in ((signal.SIGQUIT, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not _pid_alive(pid):
                return

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def cleanup(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.cleanup()
