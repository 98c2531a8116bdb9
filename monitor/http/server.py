"""The aiohttp application: the endpoints of docs/http-api.md."""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import web

from monitor.alerting.silences import Silence, SilenceBook, SilenceNotFound, silence_from_api
from monitor.check_status import CheckStatuses
from monitor.http.views import alerts_json, check_json, status_page
from monitor.rules.engine import RuleEngine
from monitor.probes import ProbeEnv
from monitor.store.base import StoreError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class DaemonView(Protocol):
    """What the HTTP layer needs from the daemon, and nothing more."""

    statuses: CheckStatuses
    env: ProbeEnv
    ready: bool

    def render_metrics(self, accept: str) -> tuple[bytes, str]: ...
    engine: RuleEngine

    def api_token(self) -> str | None: ...
    def record_heartbeat(self, check: str, failed: bool) -> None: ...
    def scheduler_alive(self) -> bool: ...
    async def reload(self) -> tuple[bool, str]: ...

    silences: SilenceBook

    def now(self) -> float: ...
    async def add_silence(self, silence: Silence) -> str: ...
    async def expire_silence(self, silence_id: str) -> None: ...
    def notifications_waiting(self) -> list[tuple[str, int, str]]: ...
    def store_problem(self) -> str | None: ...


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def build_app(daemon: DaemonView) -> web.Application:
    app = web.Application(middlewares=[_errors_as_json], client_max_size=64 * 1024)

    async def metrics(request: web.Request) -> web.Response:
        # Rendering thousands of series takes tens of ms: do it off the event loop so
        # probes and their timing are not disturbed by a scrape.
        body, content_type = await asyncio.to_thread(daemon.render_metrics, request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def healthz(request: web.Request) -> web.Response:
        if not daemon.scheduler_alive():
            return error(503, "scheduler loop is not running")
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        if not daemon.ready:
            return error(503, "not ready: config or state not loaded yet")
        # Pages still go out while the store fails (from memory), but silences and alert
        # states cannot be saved: not ready, and why.
        problem = daemon.store_problem()
        if problem is not None:
            return error(503, problem)
        return web.json_response({"status": "ready"})

    async def checks(request: web.Request) -> web.Response:
        return web.json_response([check_json(s) for s in daemon.statuses.all()])

    async def one_check(request: web.Request) -> web.Response:
        status = daemon.statuses.get(request.match_info["name"])
        if status is None:
            return error(404, f"no check named {request.match_info['name']!r}")
        return web.json_response(check_json(status))

    async def heartbeat(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        status = daemon.statuses.get(name)
        if status is None or status.check.kind != "heartbeat":
            return error(404, f"no heartbeat check named {name!r}")
        failed = request.query.get("status", "ok") == "fail"
        daemon.record_heartbeat(name, failed)
        return web.json_response({"check": name, "status": "fail" if failed else "ok"})

    async def alerts(request: web.Request) -> web.Response:
        return web.json_response({"status": "success", "data": {"alerts": alerts_json(daemon.engine.alerts.values())}})

    async def reload(request: web.Request) -> web.Response:
        ok, message = await daemon.reload()
        return web.json_response({"status": "ok" if ok else "error", "message": message}, status=200 if ok else 400)

    async def list_silences(request: web.Request) -> web.Response:
        now = daemon.now()
        # Alertmanager's order: active first, then pending, then expired; newest end first.
        order = {"active": 0, "pending": 1, "expired": 2}
        ordered = sorted(daemon.silences.list(), key=lambda s: (order[s.state(now)], -s.ends_at, s.id))
        return web.json_response([s.to_api(now) for s in ordered])

    async def post_silence(request: web.Request) -> web.Response:
        if not daemon.ready:
            return error(503, "not ready: state not loaded yet")
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            return error(400, "body must be a JSON object (Alertmanager's PostableSilence)")
        now = daemon.now()
        try:
            silence = silence_from_api(body, now)
        except ValueError as exc:
            return error(400, str(exc))
        if isinstance(body, dict) and body.get("id") is not None and daemon.silences.get(silence.id) is None:
            return error(404, f"silence {silence.id} not found")
        try:
            silence_id = await daemon.add_silence(silence)
        except ValueError as exc:
            return error(400, str(exc))
        except StoreError as exc:
            return error(503, f"silence not saved: {exc}")
        return web.json_response({"silenceID": silence_id})

    async def delete_silence(request: web.Request) -> web.Response:
        if not daemon.ready:
            return error(503, "not ready: state not loaded yet")
        silence_id = request.match_info["id"]
        try:
            await daemon.expire_silence(silence_id)
        except SilenceNotFound:
            return error(404, f"silence {silence_id} not found")
        except ValueError as exc:  # already expired
            return error(400, str(exc))
        except StoreError as exc:
            return error(503, f"silence expiry not saved: {exc}")
        return web.json_response({"status": "success"})

    async def index(request: web.Request) -> web.Response:
        now = time.time()
        page = status_page(daemon.statuses.all(), now, list(daemon.engine.alerts.values()),
                           lambda labels: daemon.silences.mutes(labels, now),
                           daemon.notifications_waiting())
        return web.Response(text=page, content_type="text/html")

    def mutating(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            token = daemon.api_token()
            if token is not None:
                given = request.headers.get("Authorization", "")
                # Constant-time comparison: the token guards silences and reloads.
                if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                    return error(401, "missing or wrong bearer token")
            return await handler(request)

        return guarded

    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/api/v1/checks", checks)
    app.router.add_get("/api/v1/checks/{name}", one_check)
    app.router.add_get("/api/v1/alerts", alerts)
    app.router.add_post("/api/v1/heartbeat/{name}", mutating(heartbeat))
    app.router.add_get("/api/v1/silences", list_silences)
    app.router.add_post("/api/v1/silences", mutating(post_silence))
    app.router.add_delete("/api/v1/silences/{id}", mutating(delete_silence))
    app.router.add_post("/-/reload", mutating(reload))
    app.router.add_get("/", index)
    return app


@web.middleware
async def _errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error(exc.status, exc.reason)
