"""A tiny HTTP proxy for tests: CONNECT tunnels (for https:// targets) and absolute-URI
forwarding (for http:// ones), recording every request line and its headers."""

from __future__ import annotations

import select
import socket
import socketserver
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class ProxyRequest:
    method: str
    target: str
    headers: dict[str, str]


class Proxy:
    def __init__(self) -> None:
        self.requests: list[ProxyRequest] = []
        proxy = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                line = self.rfile.readline(65536).decode("latin-1").strip()
                if not line:
                    return
                method, target, _ = line.split(" ", 2)
                headers: dict[str, str] = {}
                raw_headers: list[bytes] = []
                while (header := self.rfile.readline(65536)) not in (b"\r\n", b"\n", b""):
                    name, _, value = header.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                    raw_headers.append(header)
                proxy.requests.append(ProxyRequest(method, target, headers))
                if method == "CONNECT":
                    host, _, port = target.rpartition(":")
                    upstream = socket.create_connection((host, int(port)), timeout=10)
                    self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    self.wfile.flush()
                    _pipe(self.connection, upstream)
                    return
                url = urlsplit(target)
                upstream = socket.create_connection((url.hostname or "", url.port or 80), timeout=10)
                body = self.rfile.read(int(headers.get("content-length", "0")))
                kept = [h for h in raw_headers if not h.lower().startswith((b"proxy-", b"connection"))]
                path = url.path + (f"?{url.query}" if url.query else "")
                upstream.sendall(f"{method} {path} HTTP/1.1\r\n".encode() + b"".join(kept)
                                 + b"Connection: close\r\n\r\n" + body)
                while chunk := upstream.recv(65536):
                    self.wfile.write(chunk)
                upstream.close()

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Proxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _pipe(a: socket.socket, b: socket.socket) -> None:
    try:
        while True:
            readable, _, _ = select.select([a, b], [], [], 10)
            if not readable:
                return
            for source in readable:
                data = source.recv(65536)
                if not data:
                    return
                (b if source is a else a).sendall(data)
    finally:
        b.close()
