"""The aiohttp application: the endpoints of docs/http-api.md."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import structlog
from aiohttp import web
from pydantic import SecretStr

from monitor.alerting.silences import Silence, SilenceBook, SilenceNotFound, silence_from_api
from monitor.check_status import CheckStatuses
from monitor.http.access import AccessPolicy, bearer, cross_site, is_loopback, matches, split_host
from monitor.http.connections import BODY_TIMEOUT, GuardedHandler
from monitor.http.status_page import PageData, status_page
from monitor.http.views import alerts_json, check_json
from monitor.rules.engine import RuleEngine
from monitor.probes import ProbeEnv
from monitor.probes.heartbeat import HeartbeatCheck
from monitor.store.base import StoreError
from monitor.uptime import UptimeCounts

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = structlog.get_logger("monitor.http")
MAX_BODY = 64 * 1024


class DaemonView(Protocol):
    """What the HTTP layer needs from the daemon, and nothing more."""

    statuses: CheckStatuses
    env: ProbeEnv
    ready: bool

    def render_metrics(self, accept: str) -> tuple[bytes, str]: ...
    engine: RuleEngine

    def access(self) -> AccessPolicy: ...
    def record_heartbeat(self, check: str, failed: bool) -> None: ...
    def scheduler_alive(self) -> bool: ...
    async def reload(self) -> tuple[bool, str]: ...

    silences: SilenceBook

    def now(self) -> float: ...
    async def add_silence(self, silence: Silence) -> str: ...
    async def expire_silence(self, silence_id: str) -> None: ...
    def notifications_waiting(self) -> list[tuple[str, int, str]]: ...
    def store_problem(self) -> str | None: ...

    uptime: UptimeCounts
    reload_failure: tuple[float, str] | None


def _query_int(request: web.Request, name: str, *, default: int | None, low: int) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < low:
        raise ValueError(f"{name}: must be a whole number of at least {low}")
    return int(raw)


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def build_app(daemon: DaemonView) -> web.Application:
    @web.middleware
    async def allowed_host(request: web.Request, handler: Handler) -> web.StreamResponse:
        hosts = daemon.access().hosts
        host = request.headers.get("Host")
        if not hosts.allows(host):
            name = split_host(host or "")[0][:100]
            return error(421, f"Host {name!r} is not served here (allowed: {hosts.describe()});"
                              " add the name to global.allowed_hosts")
        return await handler(request)

    # Outermost first: the connection learns its request head is complete before anything
    # else runs; errors become JSON; then the Host check, which applies to every endpoint.
    app = web.Application(middlewares=[_request_started, _errors_as_json, allowed_host], client_max_size=MAX_BODY)

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
        try:
            limit = _query_int(request, "limit", default=None, low=1)
            offset = _query_int(request, "offset", default=0, low=0) or 0
        except ValueError as exc:
            return error(400, str(exc))
        now = daemon.now()
        # Alertmanager's order: active first, then pending, then expired; newest end first.
        order = {"active": 0, "pending": 1, "expired": 2}
        ordered = sorted(daemon.silences.list(), key=lambda s: (order[s.state(now)], -s.ends_at, s.id))
        page = ordered[offset:None if limit is None else offset + limit]
        # Serialised off the event loop: thousands of silences take milliseconds that probes
        # and /healthz should not wait for.
        body = await asyncio.to_thread(lambda: json.dumps([s.to_api(now) for s in page]))
        headers = {"X-Total-Count": str(len(ordered))}
        return web.Response(text=body, content_type="application/json", headers=headers)

    async def post_silence(request: web.Request) -> web.Response:
        if not daemon.ready:
            return error(503, "not ready: state not loaded yet")
        try:
            body = json.loads(await request.read())
        # RecursionError: `[[[[...` nested deeper than the parser recurses fits in 64 KiB.
        except (ValueError, UnicodeDecodeError, RecursionError):
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
        page = status_page(PageData(
            statuses=daemon.statuses.all(), now=now, alerts=list(daemon.engine.alerts.values()),
            silences=[s.to_api(now) for s in daemon.silences.active(now)],
            silenced=lambda labels: daemon.silences.mutes(labels, now),
            uptime=lambda name: daemon.uptime.windows(name, now),
            waiting=daemon.notifications_waiting(), reload_failure=daemon.reload_failure))
        return web.Response(text=page, content_type="text/html")

    def heartbeat_push_key(request: web.Request) -> SecretStr | None:
        status = daemon.statuses.get(request.match_info["name"])
        return status.check.push_key if status is not None and isinstance(status.check, HeartbeatCheck) else None

    def mutating(handler: Handler, push_key: Callable[[web.Request], SecretStr | None] | None = None) -> Handler:
        """Every call that changes something: not from another site, with a credential,
        and with a JSON body if any."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            refused = cross_site(request.headers.get("Sec-Fetch-Site"), request.headers.get("Origin"), request.host)
            if refused is not None:
                return error(403, refused)
            denied = _authorize(request, daemon.access(), push_key(request) if push_key else None)
            if denied is not None:
                return denied
            if request.body_exists:
                if request.content_type != "application/json":
                    return error(415, "a request body must be JSON (Content-Type: application/json)")
                try:  # read here, under a deadline; handlers get it from aiohttp's cache
                    await asyncio.wait_for(request.read(), BODY_TIMEOUT)
                except TimeoutError:
                    if isinstance(request.protocol, GuardedHandler):
                        request.protocol.close_after_response()
                    response = error(408, f"the request body was not complete within {BODY_TIMEOUT:g}s")
                    response.force_close()
                    return response
            return await handler(request)

        return guarded

    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/api/v1/checks", checks)
    app.router.add_get("/api/v1/checks/{name}", one_check)
    app.router.add_get("/api/v1/alerts", alerts)
    app.router.add_post("/api/v1/heartbeat/{name}", mutating(heartbeat, push_key=heartbeat_push_key))
    app.router.add_get("/api/v1/silences", list_silences)
    app.router.add_post("/api/v1/silences", mutating(post_silence))
    app.router.add_delete("/api/v1/silences/{id}", mutating(delete_silence))
    app.router.add_post("/-/reload", mutating(reload))
    app.router.add_get("/", index)
    return app


def _authorize(request: web.Request, policy: AccessPolicy, push_key: SecretStr | None) -> web.Response | None:
    """None when the caller may mutate, else the refusal. A credential that is sent must be
    right even where none is needed: a client with a wrong one is misconfigured and should
    hear so."""
    given = bearer(request.headers.get("Authorization"))
    if given is not None:
        return None if matches(given, (policy.token, push_key)) else error(401, "missing or wrong bearer token")
    if policy.open_on_loopback:
        if is_loopback(request.remote):
            return None
        return error(403, "unauthenticated calls are accepted only from loopback (global.unauthenticated_api);"
                          " set global.api_token to allow other clients")
    if policy.token is not None or push_key is not None:
        return error(401, "missing or wrong bearer token")
    return error(403, "mutations are disabled: no global.api_token is set")


@web.middleware
async def _request_started(request: web.Request, handler: Handler) -> web.StreamResponse:
    if isinstance(request.protocol, GuardedHandler):
        request.protocol.request_started()
    return await handler(request)


@web.middleware
async def _errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error is ``{"error": ...}`` with its status; a bug is a one-line log and a 500
    that says nothing about the inside."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _http_error(request, exc)
    except ConnectionError:
        raise  # the client left: not a bug, and aiohttp closes the connection
    except Exception as exc:
        log.error("http_internal_error", method=request.method, path=request.path[:200],
                  error=f"{type(exc).__name__}: {str(exc)[:200]}")
        log.debug("http_internal_error_traceback", exc_info=True)
        return error(500, "internal error")


def _http_error(request: web.Request, exc: web.HTTPException) -> web.Response:
    path = request.path[:200]
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        response = error(405, f"{request.method} is not allowed on {path} (allowed: {allowed})")
        response.headers["Allow"] = allowed  # required on a 405
        return response
    if isinstance(exc, web.HTTPNotFound):
        return error(404, f"no such endpoint: {path}")
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return error(413, f"request body over the limit of {MAX_BODY // 1024} KiB")
    return error(exc.status, exc.reason)
