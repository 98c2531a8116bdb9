"""A deliberately tiny HTTP/1.1 target for the benchmarks: every request gets
``200 {"status":"healthy"}``, so the cost of a probe is all on the prober's side.

Raw asyncio protocol, no framework: a framework would spend more CPU per request than the
prober under test and the target would become the bottleneck.  It keeps the connection
alive unless the client asks for ``Connection: close`` (or speaks HTTP/1.0), which is what
the daemon's force-close connector and blackbox_exporter do.

``GET /stats`` answers ``{"requests": N}`` (all workers) so the driver can cross-check the
probe rate the prober claims against what actually arrived.  Requests carrying
``?check=NAME`` are also time-stamped on arrival; ``GET /arrivals`` returns and clears them
as ``<unix time> <NAME>`` lines (per worker process, so use it with ``--workers 1``): the
driver derives each check's real start jitter from them, independently of what the
prober's own metrics claim.

    python -m bench.target --port 8080 [--workers 2] [--cpu 1]
"""

from __future__ import annotations

import argparse
import asyncio
import mmap
import multiprocessing
import os
import signal
import socket
import struct
import sys
import time

BODY = b'{"status":"healthy"}'
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: %s\r\n\r\n"
RESPONSE_KEEP = HEAD % (len(BODY), b"keep-alive") + BODY
RESPONSE_CLOSE = HEAD % (len(BODY), b"close") + BODY
SLOT = struct.Struct("Q")
MAX_WORKERS = 64
MAX_ARRIVALS = 2_000_000  # ~40 min at 1,000/s; beyond that, stop recording rather than grow
ARRIVALS: list[tuple[float, bytes]] = []


class Counter:
    """Per-worker request counts in an anonymous shared mmap (one 8-byte slot each, so no
    locking).  Workers bump a plain int per request and publish it on /stats or every
    100 ms, keeping shared-memory writes off the hot path."""

    def __init__(self) -> None:
        self.shared = mmap.mmap(-1, SLOT.size * MAX_WORKERS)
        self.slot = 0
        self.local = 0

    def publish(self) -> None:
        SLOT.pack_into(self.shared, self.slot * SLOT.size, self.local)

    def total(self) -> int:
        self.publish()
        return sum(SLOT.unpack_from(self.shared, i * SLOT.size)[0] for i in range(MAX_WORKERS))


COUNTER = Counter()


class HttpProtocol(asyncio.Protocol):
    __slots__ = ("transport", "buffer")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        # Loop because a pipelining client may send several requests in one segment.
        while (end := buffer.find(b"\r\n\r\n")) >= 0:
            head = buffer[:end].lower()
            body_len = _content_length(head)
            if len(buffer) < end + 4 + body_len:
                break  # wait for the rest of the request body
            buffer = buffer[end + 4 + body_len :]
            if not self._respond(head):
                return
        self.buffer = buffer

    def _respond(self, head: bytes) -> bool:
        """Answer one request; False when the connection was closed."""
        assert self.transport is not None
        first_line = head.split(b"\r\n", 1)[0]
        close = b"connection: close" in head or (first_line.endswith(b"http/1.0") and b"keep-alive" not in head)
        if first_line.startswith(b"get /stats"):
            self._write_body(b'{"requests": %d}' % COUNTER.total(), close)
        elif first_line.startswith(b"get /arrivals"):
            self._write_body(_drain_arrivals(), close)
        else:
            COUNTER.local += 1  # the bookkeeping endpoints are not counted
            if b"?check=" in first_line and len(ARRIVALS) < MAX_ARRIVALS:
                # Keep the hot path cheap: store raw bytes, parse only when dumped.
                ARRIVALS.append((time.time(), first_line))
            self.transport.write(RESPONSE_CLOSE if close else RESPONSE_KEEP)
        if close:
            # Server closes first, so TIME_WAIT lands here rather than eating the
            # client's ephemeral ports.
            self.transport.close()
            return False
        return True


    def _write_body(self, body: bytes, close: bool) -> None:
        assert self.transport is not None
        self.transport.write(HEAD % (len(body), b"close" if close else b"keep-alive") + body)


def _drain_arrivals() -> bytes:
    lines = [b"%.6f %s" % (t, line.split(b"?check=", 1)[1].split(b" ", 1)[0]) for t, line in ARRIVALS]
    ARRIVALS.clear()
    return b"\n".join(lines)


def _content_length(head: bytes) -> int:
    start = head.find(b"content-length:")
    if start < 0:
        return 0
    stop = head.find(b"\r\n", start)
    return int(head[start + 15 : stop if stop >= 0 else None])


def _listening_socket(port: int) -> socket.socket:
    # SO_REUSEPORT lets every worker own its own accept queue on the same port, so the
    # kernel balances connections without a shared accept lock.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(4096)  # 1,000 new connections/s must never overflow the backlog
    sock.setblocking(False)
    return sock


async def _serve(sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(HttpProtocol, sock=sock, backlog=4096)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        while not stop.is_set():
            COUNTER.publish()
            try:
                await asyncio.wait_for(stop.wait(), 0.1)
            except TimeoutError:
                pass


def _worker(slot: int, port: int, cpus: set[int] | None) -> None:
    if cpus:
        os.sched_setaffinity(0, cpus)
    COUNTER.slot = slot
    asyncio.run(_serve(_listening_socket(port)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1, help="processes sharing the port via SO_REUSEPORT")
    parser.add_argument("--cpu", default="", help="comma-separated CPUs to pin to, e.g. 1")
    args = parser.parse_args(argv)
    cpus = {int(c) for c in args.cpu.split(",") if c.strip()} or None
    workers = max(1, min(args.workers, MAX_WORKERS))
    if workers == 1:
        _worker(0, args.port, cpus)
        return 0
    # Fork so the children inherit the shared counter mmap.
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_worker, args=(i, args.port, cpus), daemon=True) for i in range(workers)]
    for proc in procs:
        proc.start()
    def forward_term(*_: object) -> None:
        for proc in procs:
            proc.terminate()

    signal.signal(signal.SIGTERM, forward_term)
    for proc in procs:
        proc.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
