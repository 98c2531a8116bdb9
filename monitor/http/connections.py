"""The API server's connections, bounded in number and in how long each may take.

aiohttp waits as long as a client likes for a request head, and accepts as many
connections as the process has file handles. A client that opens connections and sends
half a request head on each (slowloris) therefore held the server: at ~1,100 of them the
process ran out of file handles, probes failed with "Too many open files" and ``/healthz``
stopped answering. Here every connection is a :class:`GuardedHandler`, which adds:

- a head timeout: a connection must deliver a complete request head within
  ``head_timeout`` of connecting, and of the first byte of each later request; otherwise it
  gets a 408 (if it had started one) and is closed;
- an idle timeout between requests on a kept-alive connection (aiohttp's own
  ``keepalive_timeout``);
- a cap on open connections. Past it, the connection that has been waiting longest for a
  request head is closed to make room, so a flood of idle or half-sent connections cannot
  lock out a probe that sends its request at once; only when every connection is busy in a
  request does a new one get a 503;
- JSON error bodies, and one log line instead of a traceback, for requests aiohttp's parser
  refuses (garbage, oversized heads).

The server's request middleware reports when a request starts (:meth:`GuardedHandler.request_started`);
that disarms the head timer, and makes the connection busy until its response is written.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import structlog
from aiohttp import web
from aiohttp.web_request import BaseRequest

log = structlog.get_logger("monitor.http")

HEAD_TIMEOUT = 10.0
IDLE_TIMEOUT = 15.0
# How long a mutating request may take to send its (at most 64 KiB) body.
BODY_TIMEOUT = 10.0
# Connections past the cap are counted and logged at most this often, not one line each.
_REPORT_EVERY = 60.0


def _raw_response(status: str, message: str) -> bytes:
    """A complete response written straight to the socket, for connections that never get
    as far as aiohttp's request handling."""
    body = json.dumps({"error": message}).encode()
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode() + body


_BUSY = _raw_response("503 Service Unavailable", "too many connections: try again shortly")
_HEAD_TOO_SLOW = _raw_response("408 Request Timeout", "the request head was not complete in time")


class Connections:
    """Every open connection of one server, and the limits they live by. ``limit`` may be
    changed while running (on reload); it applies to connections opened afterwards."""

    def __init__(self, limit: int, head_timeout: float = HEAD_TIMEOUT, idle_timeout: float = IDLE_TIMEOUT) -> None:
        self.limit = limit
        self.head_timeout = head_timeout
        self.idle_timeout = idle_timeout
        self._open: set[GuardedHandler] = set()
        # Connections not in a request (waiting for a head, or idle between requests),
        # oldest first: the first to close when the cap is reached.
        self._waiting: dict[GuardedHandler, None] = {}
        self._shed = 0
        self._refused = 0
        self._reported = 0.0

    def __len__(self) -> int:
        return len(self._open)

    @property
    def waiting(self) -> int:
        """Open connections not in a request: the ones the cap may close."""
        return len(self._waiting)

    def factory(self, server: web.Server) -> Callable[[], GuardedHandler]:
        """The protocol factory for ``loop.create_server``: aiohttp's request handling,
        with the limits."""
        loop = asyncio.get_running_loop()
        return lambda: GuardedHandler(server, self, loop=loop)

    def _admit(self, handler: GuardedHandler) -> bool:
        if len(self._open) >= self.limit:
            oldest = next(iter(self._waiting), None)
            if oldest is None:
                self._refused += 1
                self._report()
                return False
            self._forget(oldest)
            oldest.force_close()
            self._shed += 1
            self._report()
        self._open.add(handler)
        self._waiting[handler] = None
        return True

    def _busy(self, handler: GuardedHandler) -> None:
        self._waiting.pop(handler, None)

    def _idle(self, handler: GuardedHandler) -> None:
        if handler in self._open:
            self._waiting.pop(handler, None)
            self._waiting[handler] = None  # now the newest

    def _forget(self, handler: GuardedHandler) -> None:
        self._open.discard(handler)
        self._waiting.pop(handler, None)

    def _report(self) -> None:
        now = time.monotonic()
        if now - self._reported < _REPORT_EVERY:
            return
        self._reported = now
        log.warning("http_connection_limit", limit=self.limit, closed_waiting=self._shed, refused_busy=self._refused,
                    detail="more clients than global.max_connections: the oldest connections still waiting for"
                           " a request were closed, and new ones refused when all were busy (logged at most once a"
                           " minute; the counts are since the last time)")
        self._shed = self._refused = 0


class GuardedHandler(web.RequestHandler):
    """aiohttp's per-connection protocol with a head timer and the connection cap."""

    def __init__(self, server: web.Server, connections: Connections, *, loop: asyncio.AbstractEventLoop) -> None:
        # access_log=None turns aiohttp's access log off (as AppRunner(access_log=None) does);
        # its annotation says Logger only.
        super().__init__(server, loop=loop, keepalive_timeout=connections.idle_timeout,
                         access_log=None)  # type: ignore[arg-type]
        self._connections = connections
        self._head_timer: asyncio.TimerHandle | None = None
        self._in_request = False
        self._head_started = False
        self._refused = False
        self._close_after_response = False

    # --- asyncio.Protocol -----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._connections._admit(self):
            # Refused before aiohttp sees it: no request task, a few bytes and the close.
            self._refused = True
            assert isinstance(transport, asyncio.Transport)
            transport.write(_BUSY)
            transport.close()
            return
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if data and not self._in_request:
            self._head_started = True
            if self._head_timer is None:  # the first byte of a request after an idle spell
                self._arm()
        super().data_received(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        self._connections._forget(self)
        if self._refused:
            return
        super().connection_lost(exc)

    # --- request life cycle -----------------------------------------------------------------
    def request_started(self) -> None:
        """A complete head arrived (called by the server's middleware)."""
        self._disarm()
        self._in_request = True
        self._head_started = False
        self._connections._busy(self)

    def close_after_response(self) -> None:
        """Close as soon as the response is written, without aiohttp's lingering read of
        the rest of the body (up to 10 s more) -- for a client too slow to send it."""
        self._close_after_response = True

    async def finish_response(self, request: BaseRequest, resp: web.StreamResponse,
                              start_time: float | None) -> tuple[web.StreamResponse, bool]:
        try:
            return await super().finish_response(request, resp, start_time)
        finally:
            # Written: the connection waits for its next request (aiohttp's idle timeout
            # runs now; the head timer starts with the next request's first byte).
            self._in_request = False
            self._connections._idle(self)
            if self._close_after_response:
                self.force_close()

    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """Requests the parser refused (and failures outside the app's middleware): a JSON
        error and one log line. aiohttp's own logs a traceback per bad request, which lets
        anyone who can connect fill the log."""
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; cannot send the error")
        if status >= 500:
            log.error("http_request_failed", status=status, error=f"{type(exc).__name__}: {exc}" if exc else message)
            text = "internal error"
        else:
            text = " ".join((message or "bad request").split())[:200]
            log.debug("http_bad_request", status=status, peer=request.remote, error=text)
        response = web.json_response({"error": text}, status=status)
        response.force_close()
        return response

    # --- the head timer -----------------------------------------------------------------------
    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self._loop.call_later(self._connections.head_timeout, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_request or self.transport is None:
            return
        if self._head_started:
            # A client that began a request learns why it got nothing; one that never
            # sent a byte (a browser's preconnect, a port scan) is just closed.
            self.transport.write(_HEAD_TOO_SLOW)
        self.force_close()


class GuardedSite(web.BaseSite):
    """``web.TCPSite`` with :class:`Connections` between the listening socket and aiohttp."""

    __slots__ = ("_host", "_port", "_connections")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, connections: Connections,
                 backlog: int = 128) -> None:
        super().__init__(runner, backlog=backlog)
        self._host = host
        self._port = port
        self._connections = connections

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self._connections.factory(server), self._host, self._port, reuse_address=True, backlog=self._backlog)
