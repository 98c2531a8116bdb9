"""A local application exposing metrics, for the `metrics` and `prometheus` kinds' tests.

An aiohttp server on a free loopback port, in its own thread and event loop (so a real
Prometheus process or the probe's loop can scrape it alike). Each path serves whatever the
test put in ``pages`` (body, content type, status); every request's headers are kept in
``requests``. ``/api/v1/query`` answers with ``api_answer`` (a fake Prometheus API).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


@dataclass
class Page:
    body: bytes | str
    content_type: str = TEXT
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class MetricsApp:
    port: int = 0
    pages: dict[str, Page] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    api_answer: tuple[int, bytes | str] = (200, b'{"status":"success","data":{"resultType":"vector","result":[]}}')

    def url(self, path: str = "/metrics") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def serve(self, path: str, body: bytes | str, content_type: str = TEXT, status: int = 200) -> str:
        self.pages[path] = Page(body, content_type, status)
        return self.url(path)

    async def _handle(self, request: web.Request) -> web.Response:
        entry: dict[str, Any] = {"method": request.method, "path": request.path, "query": dict(request.query),
                                 "headers": dict(request.headers)}
        if request.method == "POST":
            entry["form"] = dict(await request.post())
        self.requests.append(entry)
        if request.path == "/api/v1/query":
            status, body = self.api_answer
            return web.Response(status=status, body=body.encode() if isinstance(body, str) else body,
                                content_type="application/json")
        page = self.pages.get(request.path)
        if page is None:
            return web.Response(status=404, text="not found")
        body = page.body.encode() if isinstance(page.body, str) else page.body
        response = web.Response(status=page.status, body=body)
        response.headers["Content-Type"] = page.content_type
        response.headers.update(page.headers)
        return response


@contextmanager
def running_metrics_app() -> Iterator[MetricsApp]:
    app = MetricsApp()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    runner_box: list[web.AppRunner] = []

    async def start() -> None:
        web_app = web.Application()
        web_app.router.add_route("*", "/{tail:.*}", app._handle)
        runner = web.AppRunner(web_app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        app.port = server.sockets[0].getsockname()[1]
        runner_box.append(runner)

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="metrics-app", daemon=True)
    thread.start()
    assert ready.wait(10), "metrics app did not start"
    try:
        yield app
    finally:
        asyncio.run_coroutine_threadsafe(runner_box[0].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
