"""A local receiver (Slack, PagerDuty or webhook stand-in) that records what it gets and
answers as a test tells it: 200, 500, 429 with Retry-After, hang, or reset.

A thread with its own server, so a daemon subprocess or the test's own event loop can post
to it alike. ``answers`` is consumed one per request; when it runs out, ``default`` applies.
Every request is recorded with the answer it got, so a test can tell "received" from
"accepted".
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    at: float
    path: str
    headers: dict[str, str]
    body: bytes
    answer: str  # what the sink did: "200", "500", "429:N", "delay:S", "hang", "reset", "307:/path"

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def accepted(self) -> bool:
        return self.answer.startswith("2")


class ReceiverSink:
    """``answers``: e.g. ["500", "429:2", "delay:0.5", "hang", "reset", "200"]; "429:N" sends
    Retry-After N, "delay:S" answers 200 after S seconds, "307:/path" redirects there.
    ``tls``: serve HTTPS with this context (a test CA's certificate). ``pagerduty_v1``:
    answer as PagerDuty's Events API v1 does, refusing an invalid event with its 400."""

    def __init__(self, default: str = "200", tls: ssl.SSLContext | None = None, pagerduty_v1: bool = False) -> None:
        self.default = default
        self.answers: deque[str] = deque()
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._release = threading.Event()  # ends every "hang" (at stop)
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                answer = sink._next_answer()
                reply_v1 = None
                if pagerduty_v1 and answer.startswith("2"):
                    answer, reply_v1 = _pagerduty_v1(body)
                with sink._lock:
                    sink.received.append(Received(time.time(), self.path, dict(self.headers), body, answer))
                if answer == "hang":
                    sink._release.wait()
                    return
                if answer.startswith("delay:"):
                    sink._release.wait(float(answer.partition(":")[2]))
                    answer = "200"
                if answer == "reset":
                    # SO_LINGER 0: close sends RST, the client sees a reset, not a clean EOF.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    return
                status, _, extra = answer.partition(":")
                reply = b'{"status":"success"}' if status.startswith("2") else b'{"error":"sink says no"}'
                reply = reply_v1 or reply
                self.send_response(int(status))
                if extra:
                    self.send_header("Location" if status.startswith("3") else "Retry-After", extra)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.scheme = "https" if tls else "http"
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/hook") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def start(self) -> ReceiverSink:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> ReceiverSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def accepted(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.accepted and (path is None or r.path == path)]

    def _next_answer(self) -> str:
        with self._lock:
            return self.answers.popleft() if self.answers else self.default


def _pagerduty_v1(body: bytes) -> tuple[str, bytes]:
    """PagerDuty's Events API v1 checks (create_event.json): the answer and its JSON body."""
    errors: list[str] = []
    try:
        event = json.loads(body)
    except ValueError:
        event = None
    if not isinstance(event, dict):
        errors.append("Event object is not JSON")
        event = {}
    if not isinstance(event.get("service_key"), str) or not event.get("service_key"):
        errors.append("Service key is missing")
    kind = event.get("event_type")
    if kind not in ("trigger", "acknowledge", "resolve"):
        errors.append("Event type is invalid (can be trigger, acknowledge or resolve)")
    if kind == "trigger" and not event.get("description"):
        errors.append("Description is missing")
    if kind in ("acknowledge", "resolve") and not event.get("incident_key"):
        errors.append("Incident key is missing")
    if "details" in event and not isinstance(event["details"], dict):
        errors.append("Details must be an object")
    if errors:
        return "400", json.dumps({"status": "invalid event", "message": "Event object is invalid",
                                  "errors": errors}).encode()
    return "200", json.dumps({"status": "success", "message": "Event processed",
                              "incident_key": event.get("incident_key")}).encode()
