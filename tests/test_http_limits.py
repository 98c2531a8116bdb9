"""The API server is bounded: connections that do not deliver a request head in time are
closed, idle kept-alive ones too, their number is capped, and the process has the file
handles to spare. Measured with raw sockets against the real daemon in-process (and as a
subprocess for the open-file limit)."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import pytest

from monitor.config.loader import load_config
from monitor.daemon import Daemon
from monitor.http.connections import BODY_TIMEOUT, HEAD_TIMEOUT, IDLE_TIMEOUT
from tests.test_cli import MONITOR
from tests.test_http_api import eventually, free_port

HALF_HEAD = b"GET /healthz HTTP/1.1\r\nHost: x"  # the final CRLFs never come
FULL_HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
CHECKS = "checks:\n  - name: beat\n    kind: heartbeat\n    interval: 1s\n    max_age: 1h\n"


def write(tmp_path: Path, global_lines: str = "") -> Path:
    (tmp_path / "monitor.yaml").write_text(
        f"global:\n  listen: 127.0.0.1:{free_port()}\n  state: sqlite:///{tmp_path}/state.db\n{global_lines}"
        "check_files: [checks.yaml]\nrule_files: []\n")
    (tmp_path / "checks.yaml").write_text(CHECKS)
    return tmp_path / "monitor.yaml"


@asynccontextmanager
async def running(path: Path) -> AsyncIterator[tuple[Daemon, int]]:
    d = Daemon(load_config(path))
    task = asyncio.create_task(d.run())
    try:
        await eventually(lambda: d.ready or task.done())
        assert not task.done(), task.exception()
        yield d, int(d.config.settings.listen.rpartition(":")[2])
    finally:
        d.stop()
        await asyncio.wait_for(task, 15)


@contextmanager
def sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    try:
        yield opened
    finally:
        for sock in opened:
            sock.close()


async def connect(port: int, opened: list[socket.socket], send: bytes = b"") -> socket.socket:
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    opened.append(sock)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    if send:
        await loop.sock_sendall(sock, send)
    return sock


async def until_closed(sock: socket.socket, timeout: float) -> bytes:
    """What the server sends until it closes the connection; TimeoutError if it does not
    close it within ``timeout``."""
    loop = asyncio.get_running_loop()
    data = b""
    async with asyncio.timeout(timeout):
        while True:
            try:
                chunk = await loop.sock_recv(sock, 65536)
            except (ConnectionResetError, BrokenPipeError):
                return data
            if not chunk:
                return data
            data += chunk


async def still_open(sock: socket.socket, wait: float = 0.3) -> bool:
    try:
        await until_closed(sock, wait)
    except TimeoutError:
        return True
    return False


async def read_response(sock: socket.socket) -> bytes:
    """One complete response (with Content-Length) from a kept-alive connection."""
    loop = asyncio.get_running_loop()
    data = b""
    async with asyncio.timeout(5):
        while b"\r\n\r\n" not in data:
            data += await loop.sock_recv(sock, 65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
        while len(body) < length:
            body += await loop.sock_recv(sock, 65536)
    return head + b"\r\n\r\n" + body


def open_files() -> int:
    """File handles this process holds (the daemon's and the test's): Linux's /proc."""
    return len(os.listdir("/proc/self/fd"))


async def healthz(port: int) -> tuple[int, float]:
    """/healthz on a new connection, as a kubelet probe does: status and seconds taken."""
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"http://127.0.0.1:{port}/healthz", headers={"Connection": "close"})
    return response.status_code, time.monotonic() - started


# --- timeouts --------------------------------------------------------------------------------


async def test_connections_that_do_not_deliver_a_request_are_closed(tmp_path: Path) -> None:
    assert (HEAD_TIMEOUT, IDLE_TIMEOUT) == (10.0, 15.0)  # the bounds below are generous around these

    async def timed(work: Awaitable[bytes], since: float) -> tuple[bytes, float]:
        data = await work
        return data, time.monotonic() - since

    async def trickle(sock: socket.socket) -> None:
        # Slowloris: a byte a second, forever; the timer does not restart on each byte.
        loop = asyncio.get_running_loop()
        for byte in FULL_HEAD * 10:
            try:
                await loop.sock_sendall(sock, bytes([byte]))
            except OSError:
                return
            await asyncio.sleep(1.0)

    async with running(write(tmp_path)) as (d, port):
        with sockets() as opened:
            start = time.monotonic()
            half = await connect(port, opened, HALF_HEAD)
            silent = await connect(port, opened)
            slow = await connect(port, opened)
            trickling = asyncio.create_task(trickle(slow))
            kept = await connect(port, opened, FULL_HEAD)
            assert (await read_response(kept)).startswith(b"HTTP/1.1 200")
            idle_since = time.monotonic()
            again = await connect(port, opened, FULL_HEAD)
            assert (await read_response(again)).startswith(b"HTTP/1.1 200")
            await asyncio.get_running_loop().sock_sendall(again, HALF_HEAD)  # the next request, never finished
            again_since = time.monotonic()

            results = await asyncio.gather(
                timed(until_closed(half, 30), start),
                timed(until_closed(silent, 30), start),
                timed(until_closed(slow, 30), start),
                timed(until_closed(kept, 30), idle_since),
                timed(until_closed(again, 30), again_since),
            )
            trickling.cancel()
    (half_data, half_after), (silent_data, silent_after), (slow_data, slow_after), \
        (kept_data, kept_after), (again_data, again_after) = results
    # A started head that never finished: 408 with a JSON error, then closed.
    assert half_data.startswith(b"HTTP/1.1 408") and b'"error"' in half_data
    assert 8 <= half_after <= 20
    assert slow_data.startswith(b"HTTP/1.1 408") and 8 <= slow_after <= 20
    # Nothing sent at all: just closed.
    assert silent_data == b"" and 8 <= silent_after <= 20
    # Idle after a response: closed by the keep-alive timeout, without a word.
    assert kept_data == b"" and 12 <= kept_after <= 25
    # A kept-alive connection that starts its next request gets the head timeout again.
    assert again_data.startswith(b"HTTP/1.1 408") and 8 <= again_after <= 20


# --- the connection cap -------------------------------------------------------------------------


async def test_past_the_cap_the_oldest_waiting_connection_makes_room(tmp_path: Path) -> None:
    async with running(write(tmp_path, "  max_connections: 8\n")) as (d, port):
        assert d.connections.limit == 8
        with sockets() as opened:
            waiting = []
            for i in range(8):
                waiting.append(await connect(port, opened, HALF_HEAD))
                await eventually(lambda: len(d.connections) == i + 1)
            status, _ = await healthz(port)
            assert status == 200
            assert await until_closed(waiting[0], 2) == b""  # the oldest went
            assert all([await still_open(sock) for sock in waiting[1:]])
            assert len(d.connections) <= 8


async def test_when_every_connection_is_busy_a_new_one_gets_503(tmp_path: Path) -> None:
    slow_post = (b"POST /api/v1/silences HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer t0ken\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"matchers\":")
    async with running(write(tmp_path, "  max_connections: 3\n  api_token: t0ken\n")) as (d, port):
        with sockets() as opened:
            busy = [await connect(port, opened, slow_post) for _ in range(3)]
            await eventually(lambda: len(d.connections) == 3 and d.connections.waiting == 0)
            started = time.monotonic()
            refused = await connect(port, opened, FULL_HEAD)
            answer = await until_closed(refused, 5)
            assert answer.startswith(b"HTTP/1.1 503") and b'"error"' in answer
            assert time.monotonic() - started < 5
            # A body that never arrives is a timeout as well.
            for sock in busy:
                late = await until_closed(sock, BODY_TIMEOUT + 10)
                assert late.startswith(b"HTTP/1.1 408"), late
            assert len(d.silences) == 0
            status, _ = await healthz(port)
            assert status == 200


async def test_a_flood_of_half_open_connections_does_not_take_healthz_down(tmp_path: Path) -> None:
    flood = 2000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # Both ends of the connections live in this process (plus the cap's worth of the
    # server's); raise our own soft limit as the daemon does for itself.
    needed = flood + 1000
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("counting open files needs /proc")
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"the open-file hard limit {hard} is below the {needed} this test needs")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else max(soft, needed), hard))
    try:
        async with running(write(tmp_path)) as (d, port):
            cap = 256  # the default global.max_connections
            fds_before = open_files()
            with sockets() as opened:
                half_open: list[socket.socket] = []
                connecting = asyncio.Semaphore(50)

                async def one() -> None:
                    async with connecting:
                        try:
                            half_open.append(await connect(port, opened, HALF_HEAD))
                        except OSError:
                            pass  # refused or reset at once: the server kept its handles

                flooding = asyncio.gather(*(one() for _ in range(flood)))
                answers: list[tuple[int, float]] = []
                most_fds = 0
                flood_done_at: float | None = None
                while flood_done_at is None or time.monotonic() - flood_done_at < 3:
                    answers.append(await asyncio.wait_for(healthz(port), 5))
                    most_fds = max(most_fds, open_files())
                    if flooding.done() and flood_done_at is None:
                        flood_done_at = time.monotonic()
                    await asyncio.sleep(0.2)
                await flooding

                assert len(half_open) >= flood * 0.9
                assert len(answers) >= 5
                assert all(status == 200 for status, _ in answers), answers
                assert max(took for _, took in answers) < 5
                # Our end of each connection is one handle; the daemon's ends stay within the cap.
                assert most_fds <= fds_before + len(opened) + cap + 50, (most_fds, fds_before, len(opened))

                # Every half-open connection is closed by the server (evicted, or at the head timeout).
                closed = await asyncio.gather(*(until_closed(sock, HEAD_TIMEOUT + 20) for sock in half_open),
                                              return_exceptions=True)
                still = [c for c in closed if isinstance(c, BaseException)]
                assert not still, f"{len(still)} of {len(half_open)} connections were not closed: {still[:3]}"
                await eventually(lambda: len(d.connections) == 0)
                assert d.connections.limit == cap
                assert (await healthz(port))[0] == 200
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# --- the open-file limit ------------------------------------------------------------------------


def test_the_daemon_raises_its_open_file_limit_and_keeps_the_cap_below_a_quarter(tmp_path: Path) -> None:
    path = write(tmp_path)  # max_connections: the default 256

    def low_limits() -> None:  # in the child only: soft 256, hard 400
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 400))

    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    proc = subprocess.Popen([*MONITOR, "run", "-c", str(path)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env, preexec_fn=low_limits)
    try:
        port = int(path.read_text().split("listen: 127.0.0.1:")[1].split()[0])
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "daemon did not come up"
            time.sleep(0.2)
        with open(f"/proc/{proc.pid}/limits") if os.path.exists(f"/proc/{proc.pid}/limits") else open(os.devnull) as f:
            limits = f.read()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    started = next(e for e in events if e["event"] == "started")
    assert started["open_files_limit_was"] == 256
    assert started["open_files_limit"] == 400 and started["open_files_hard_limit"] == 400
    assert started["max_connections"] == 100
    lowered = next(e for e in events if e["event"] == "max_connections_lowered")
    assert lowered["level"] == "warning" and lowered["configured"] == 256 and lowered["used"] == 100
    if limits:
        assert any(line.startswith("Max open files") and line.split()[3:5] == ["400", "400"] for line in limits.splitlines())
