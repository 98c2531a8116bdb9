"""A local HTTP(S) server that misbehaves on purpose, one behaviour per path.

Raw asyncio sockets on a private event loop in a background thread, bound to
127.0.0.1 on an ephemeral port, so a test's own event loop (where the probe runs)
never shares scheduling with the server. Paths:

``/ok``               200, JSON ``{"status": "healthy", "services": {"redis": "healthy"}}``
``/status/{code}``    that status, JSON ``{"code": code}``
``/hang``             reads the request, never answers (until the client goes away)
``/reset``            reads the request, then closes with RST (SO_LINGER 0)
``/trickle``          headers, then one body byte every 0.2 s
``/big``              a 50 MB body, streamed from one reused 64 KiB chunk
``/badjson``          ``application/json`` with body ``{"status": ``
``/redirect``         302 to ``/ok`` (or to the ``to`` query parameter; ``code`` sets the status)
``/loop?n=N``         302 to ``/loop?n=N+1``, forever
``/slow?ms=N``        like ``/ok`` after N milliseconds
``/secret``           200 with a cookie (``SECRET_COOKIE``) and a JSON body holding ``SECRET_BODY``
``/escape``           200 with terminal escape sequences in a header and in the JSON body
``/echo``             200, JSON of the request: ``method``, ``target``, ``headers``, ``body``
anything else         404

Every request's method, target, headers and body are kept in ``received`` (for tests that
check what a client sent where).

Pass an ``ssl.SSLContext`` to serve HTTPS instead (see ``trustme``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import struct
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

OK_BODY: dict[str, object] = {"status": "healthy", "services": {"redis": "healthy"}}
BIG_SIZE = 50 * 1024 * 1024
TRICKLE_INTERVAL = 0.2
TRICKLE_LENGTH = 1000  # bytes promised by Content-Length; far more than any test waits for
_CHUNK = b"x" * (64 * 1024)
_REASONS = {200: "OK", 301: "Moved Permanently", 302: "Found", 303: "See Other", 307: "Temporary Redirect",
            308: "Permanent Redirect", 404: "Not Found", 500: "Internal Server Error", 503: "Service Unavailable"}
SECRET_COOKIE = "c00kie-v4lue-from-target"
SECRET_BODY = "b0dy-t0ken-from-target"
# Clears the screen, sets the window title, and a C1 CSI: what a hostile target would send.
ESCAPES = "\x1b[2J\x1b]0;owned\x07\u009b31m"

@dataclass(frozen=True)
class Received:
    """One request as it arrived."""

    method: str
    target: str
    headers: dict[str, str]  # names lowercased
    body: bytes


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, str, dict[str, list[str]]], Awaitable[None]]


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _send(writer: asyncio.StreamWriter, status: int, body: bytes, content_type: str = "application/json",
                extra: dict[str, str] | None = None) -> None:
    headers = {"Content-Type": content_type, "Content-Length": str(len(body)), "Connection": "close", **(extra or {})}
    writer.write(_head(status, headers) + body)
    await writer.drain()


class MisbehavingServer:
    """Start with ``start()`` (or as a context manager); ``url("/ok")`` gives a full URL."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.ssl_context = ssl_context
        self.host = "127.0.0.1"
        self.port = 0
        self.requests: list[str] = []  # request targets seen, in order (for assertions)
        self.received: list[Received] = []  # the same requests in full
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._stopping: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context is not None else "http"

    def url(self, path: str = "/ok", host: str | None = None) -> str:
        return f"{self.scheme}://{host or self.host}:{self.port}{path}"

    def start(self) -> MisbehavingServer:
        self._thread = threading.Thread(target=self._run, name=f"misbehaving-{self.scheme}", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("misbehaving server did not start within 10 s")
        if self._startup_error is not None:
            raise RuntimeError("misbehaving server failed to start") from self._startup_error
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._stopping.set)
        thread.join(10)
        self._loop = self._thread = None

    def __enter__(self) -> MisbehavingServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        try:
            self._server = await asyncio.start_server(self._accept, self.host, 0, ssl=self.ssl_context)
            self.port = self._server.sockets[0].getsockname()[1]
        except BaseException as err:  # surfaced by start()
            self._startup_error = err
            self._ready.set()
            return
        self._ready.set()
        await self._stopping.wait()
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    # -- one connection --------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._handle(reader, writer)
        except asyncio.CancelledError:
            pass  # only stop() cancels; returning normally keeps asyncio's accept callback quiet
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass  # the client went away mid-answer; that is most of what this server is for
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        parts = request_line.split(" ")
        target = parts[1] if len(parts) >= 2 else "/"
        self.requests.append(target)
        headers = {name.strip().lower(): value.strip()
                   for name, sep, value in (line.partition(":") for line in header_lines) if sep}
        length = int(headers.get("content-length", "0") or 0)
        body = await reader.readexactly(length) if length else b""
        self.received.append(Received(parts[0], target, headers, body))
        split = urlsplit(target)
        path, query = split.path, parse_qs(split.query)
        handler = self._route(path)
        await handler(reader, writer, path, query)

    def _route(self, path: str) -> Handler:
        if path.startswith("/status/"):
            return self._status
        return {
            "/ok": self._ok,
            "/hang": self._hang,
            "/reset": self._reset,
            "/trickle": self._trickle,
            "/big": self._big,
            "/badjson": self._badjson,
            "/redirect": self._redirect,
            "/slow": self._slow,
            "/loop": self._loop_redirect,
            "/secret": self._secret,
            "/escape": self._escape,
            "/echo": self._echo,
        }.get(path, self._not_found)

    # -- behaviours ------------------------------------------------------------------------

    async def _ok(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str,
                  query: dict[str, list[str]]) -> None:
        await _send(writer, 200, json.dumps(OK_BODY).encode())

    async def _status(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str,
                      query: dict[str, list[str]]) -> None:
        code = int(path.rsplit("/", 1)[1])
        body = b"" if code in (204, 304) or code < 200 else json.dumps({"code": code}).encode()  # no body allowed
        await _send(writer, code, body)

    async def _hang(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str,
                    query: dict[str, list[str]]) -> None:
        # Never answer; return once the client gives up and closes (read sees EOF).
        while await reader.read(4096):
            pass

    async def _reset(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str,
                     query: dict[str, list[str]]) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # close() on a linger-0 socket sends RST instead of FIN

    async def _trickle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str,
                       query: dict[str, list[str]]) -> None:
        writer.write(_head(200, {"Content-Type": "text/plain", "Content-Length": str(TRICKLE_LENGTH),
                                 "Connection": "close"}))
        await writer.drain()
        for _ in range(TRICKLE_LENGTH):
            await asyncio.sleep(TRICKLE_INTERVAL)
            if writer.is_closing() or reader.at_eof():
                return
            writer.write(b".")
            await writer.drain()

    async def _big(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str,
                   query: dict[str, list[str]]) -> None:
        writer.write(_head(200, {"Content-Type": "application/octet-stream", "Content-Length": str(BIG_SIZE),
                                 "Connection": "close"}))
        sent = 0
        while sent < BIG_SIZE:
            writer.write(_CHUNK)  # the same chunk every time: 50 MB generated, never held
            sent += len(_CHUNK)
            await writer.drain()

    async def _badjson(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str,
                       query: dict[str, list[str]]) -> None:
        await _send(writer, 200, b'{"status": ')

    async def _redirect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str,
                        query: dict[str, list[str]]) -> None:
        location = query.get("to", ["/ok"])[0]
        code = int(query.get("code", ["302"])[0])
        await _send(writer, code, b"", content_type="text/plain", extra={"Location": location})

    async def _slow(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str,
                    query: dict[str, list[str]]) -> None:
        ms = int(query.get("ms", ["0"])[0])
        await asyncio.sleep(ms / 1000)
        await _send(writer, 200, json.dumps(OK_BODY).encode())

    async def _loop_redirect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str,
                             query: dict[str, list[str]]) -> None:
        n = int(query.get("n", ["0"])[0])
        await _send(writer, 302, b"", content_type="text/plain", extra={"Location": f"/loop?n={n + 1}"})

    async def _secret(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str,
                      query: dict[str, list[str]]) -> None:
        body = json.dumps({"status": "healthy", "access_token": SECRET_BODY}).encode()
        await _send(writer, 200, body, extra={"Set-Cookie": f"session={SECRET_COOKIE}; HttpOnly; Path=/",
                                              "WWW-Authenticate": 'Bearer realm="health"'})

    async def _escape(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str,
                      query: dict[str, list[str]]) -> None:
        # `re` is an invalid regex holding escapes: a CEL `matches(body.re)` quotes it in its error.
        body = json.dumps({"note": ESCAPES, "re": "(" + ESCAPES}, ensure_ascii=False).encode()
        await _send(writer, 200, body, extra={"X-Note": ESCAPES.replace("\u009b", "")})

    async def _echo(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str,
                    query: dict[str, list[str]]) -> None:
        request = self.received[-1]  # this connection's, appended by _handle just now
        body = json.dumps({"method": request.method, "target": request.target, "headers": request.headers,
                           "body": request.body.decode("utf-8", "replace")}).encode()
        await _send(writer, 200, body)

    async def _not_found(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str,
                         query: dict[str, list[str]]) -> None:
        await _send(writer, 404, json.dumps({"error": "not found", "path": path}).encode())
