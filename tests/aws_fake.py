"""A small AWS endpoint on 127.0.0.1 for what moto does not do: CloudWatch extended
statistics and metric math, SESv2 GetAccount with account-level sending switched off, and
failures (throttling, 5xx, hangs, expired tokens).

It speaks the wire formats botocore uses for these services: the JSON protocol
(``X-Amz-Target: <prefix>.<Operation>``, ``{"__type": ..., "message": ...}`` errors) for
CloudWatch and SQS, REST-JSON for SESv2 (``GET /v2/email/account``), and the query protocol
(form body with ``Action=``, XML answers) for STS. Each operation answers with what a test
set for it in ``replies``; every request is recorded with its headers.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from monitor.aws import calls
from tests.moto_server import fake_credentials


@dataclass
class Seen:
    operation: str
    headers: dict[str, str]
    body: Any


# A reply: (HTTP status, JSON-able body or raw text/XML string), or HANG.
Reply = tuple[int, Any]
HANG: Reply = (0, "hang")


def aws_json_error(code: str, message: str, status: int = 400) -> Reply:
    return status, {"__type": code, "message": message}


def query_error(code: str, message: str, status: int = 400) -> Reply:
    return status, (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message>"
                    "</Error><RequestId>fake</RequestId></ErrorResponse>")


@dataclass
class FakeAws:
    replies: dict[str, Callable[[Any], Reply]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)  # set: hanging requests end
    active: int = 0
    most_active: int = 0
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reply(self, operation: str, answer: Reply | Callable[[Any], Reply]) -> None:
        self.replies[operation] = answer if callable(answer) else (lambda _body, fixed=answer: fixed)

    def operations(self) -> list[str]:
        return [item.operation for item in self.seen]


def _handler(fake: FakeAws) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            target = self.headers.get("X-Amz-Target")
            query = "query"
            if target:  # JSON protocol
                operation = target.rsplit(".", 1)[-1]
                body: Any = json.loads(raw or b"{}")
                query = "json"
            elif self.path.startswith("/v2/email/account"):
                operation, body, query = "GetAccount", None, "rest-json"
            else:
                form = urllib.parse.parse_qs(raw.decode())
                body = {key: values[0] for key, values in form.items()}
                operation = body.get("Action", "Unknown")
            with fake._lock:
                fake.seen.append(Seen(operation, dict(self.headers.items()), body))
                fake.active += 1
                fake.most_active = max(fake.most_active, fake.active)
            try:
                answer = fake.replies.get(operation)
                status, payload = answer(body) if answer else aws_json_error("UnknownOperationException", operation)
                if (status, payload) == HANG:
                    self._hang()
                    return
                if isinstance(payload, str):
                    data, kind = payload.encode(), "text/xml"
                else:
                    data = json.dumps(payload).encode()
                    kind = "application/x-amz-json-1.0" if query == "json" else "application/json"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("x-amzn-RequestId", "fake")
                if query == "rest-json" and isinstance(payload, dict) and "__type" in payload:
                    self.send_header("x-amzn-ErrorType", payload["__type"])
                self.end_headers()
                self.wfile.write(data)
            finally:
                with fake._lock:
                    fake.active -= 1

        def _hang(self) -> None:
            # Until released or until the client gives up: `active` counts only the
            # connections a client still waits on.
            self.close_connection = True
            # select() wakes the moment the client's FIN arrives, so a client that gave up
            # and retries at once is not counted on two connections (it holds one thread).
            while not fake.release.is_set():
                readable, _, _ = select.select([self.connection], [], [], 0.05)
                if readable and not self.connection.recv(1, socket.MSG_PEEK):
                    return

        do_POST = _serve
        do_GET = _serve

    return Handler


@pytest.fixture
def fake_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAws]:
    """A fresh fake endpoint, with the fake credentials in the environment."""
    fake_credentials(monkeypatch)
    with running_fake_aws() as fake:
        yield fake
    calls.reset()


@contextmanager
def running_fake_aws() -> Iterator[FakeAws]:
    fake = FakeAws()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.release.set()
        server.shutdown()
        server.server_close()
