"""Who may change what through the API: closed without a token, the loopback opt-out,
cross-site refusals, the Host allow-list, heartbeat push keys, and JSON errors for every
malformed request. The real daemon runs in-process on a free port."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from pydantic import ValidationError

from monitor.config.loader import load_config
from monitor.config.main import GlobalConfig
from monitor.core.timestamps import rfc3339
from monitor.daemon import Daemon
from monitor.http.access import AllowedHosts, cross_site, is_loopback, split_host
from tests.test_http_api import eventually, free_port

CHECKS = """checks:
  - name: beat
    kind: heartbeat
    interval: 200ms
    max_age: 1h
    push_key: k-beat-0123
  - name: nightly
    kind: heartbeat
    interval: 200ms
    max_age: 1h
    push_key: k-nightly-4567
  - name: plain
    kind: heartbeat
    interval: 200ms
    max_age: 1h
"""
TOKEN = "t0ken-admin"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSON = {"Content-Type": "application/json"}


def silence_body(comment: str = "deploy") -> dict[str, Any]:
    now = time.time()
    return {"matchers": [{"name": "alertname", "value": "ApiDown", "isRegex": False}],
            "startsAt": rfc3339(now, fixed_millis=True), "endsAt": rfc3339(now + 3600, fixed_millis=True),
            "createdBy": "test", "comment": comment}


def write(tmp_path: Path, global_lines: str = "", checks: str = CHECKS, host: str = "127.0.0.1") -> Path:
    port = free_port()
    (tmp_path / "monitor.yaml").write_text(
        f"global:\n  listen: {host}:{port}\n  state: sqlite:///{tmp_path}/state.db\n{global_lines}"
        "check_files: [checks.yaml]\nrule_files: []\n")
    (tmp_path / "checks.yaml").write_text(checks)
    return tmp_path / "monitor.yaml"


@asynccontextmanager
async def running(path: Path) -> AsyncIterator[tuple[Daemon, httpx.AsyncClient]]:
    d = Daemon(load_config(path))
    task = asyncio.create_task(d.run())
    try:
        await eventually(lambda: d.ready or task.done())
        assert not task.done(), task.exception()
        port = d.config.settings.listen.rpartition(":")[2]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            yield d, client
    finally:
        d.stop()
        await asyncio.wait_for(task, 10)


async def raw(port: int, request: bytes, host: str = "127.0.0.1") -> tuple[int, dict[str, str], bytes]:
    """One request written as given (bytes a client library would refuse to send); the
    parsed status, headers and body of the answer."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def port_of(d: Daemon) -> int:
    return int(d.config.settings.listen.rpartition(":")[2])


def non_loopback_address() -> str | None:
    """An address of this machine that is not loopback, to connect from "elsewhere"."""
    candidates: list[str] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent; this picks the outgoing address
            candidates.append(probe.getsockname()[0])
        except OSError:
            pass
    try:
        candidates += [str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)]
    except OSError:
        pass
    for address in candidates:
        if not ipaddress.ip_address(address).is_loopback:
            with socket.socket() as s:
                try:
                    s.bind((address, 0))
                except OSError:
                    continue
            return address
    return None


# --- 1. closed by default ------------------------------------------------------------------


async def test_without_a_token_every_mutation_is_refused_and_reads_still_work(tmp_path: Path) -> None:
    async with running(write(tmp_path)) as (d, client):
        calls = [
            client.post("/api/v1/silences", json=silence_body()),
            client.delete("/api/v1/silences/some-id"),
            client.post("/-/reload"),
            client.post("/api/v1/heartbeat/plain"),
            client.post("/api/v1/heartbeat/beat?status=fail"),  # a push-key check, pushed without its key
        ]
        for response in [await call for call in calls]:
            assert response.status_code in (401, 403), (response.request.url, response.text)
            assert response.headers["content-type"].startswith("application/json")
        refused = await client.post("/api/v1/silences", json=silence_body())
        assert refused.status_code == 403
        assert refused.json() == {"error": "mutations are disabled: no global.api_token is set"}
        assert (await client.post("/-/reload")).json()["error"] == "mutations are disabled: no global.api_token is set"
        assert (await client.post("/api/v1/heartbeat/plain")).status_code == 403
        assert len(d.silences) == 0 and d.env.heartbeats == {}
        for path in ("/healthz", "/readyz", "/metrics", "/api/v1/checks", "/api/v1/alerts", "/api/v1/silences", "/"):
            assert (await client.get(path)).status_code == 200, path


async def test_the_reported_cross_site_simple_post_creates_no_silence(tmp_path: Path) -> None:
    # What a page on any site can make a browser send to 127.0.0.1 without a preflight.
    forged = {"Content-Type": "text/plain", "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    body = json.dumps(silence_body())
    async with running(write(tmp_path)) as (d, client):
        assert (await client.post("/api/v1/silences", content=body, headers=forged)).status_code == 403
        assert (await client.post("/-/reload", headers=forged)).status_code == 403
        assert (await client.post("/api/v1/heartbeat/plain", headers=forged)).status_code == 403
        assert len(d.silences) == 0 and d.env.heartbeats == {}


async def test_opt_out_accepts_loopback_clients_without_a_credential(tmp_path: Path) -> None:
    with structlog.testing.capture_logs() as logs:
        async with running(write(tmp_path, "  unauthenticated_api: true\n")) as (d, client):
            added = await client.post("/api/v1/silences", json=silence_body())
            assert added.status_code == 200, added.text
            assert (await client.delete(f"/api/v1/silences/{added.json()['silenceID']}")).status_code == 200
            assert (await client.post("/-/reload")).status_code == 200
            assert (await client.post("/api/v1/heartbeat/plain")).status_code == 200
            # A credential that is sent must still be right.
            assert (await client.post("/-/reload", headers={"Authorization": "Bearer wrong"})).status_code == 401
    warnings = [e for e in logs if e["event"] == "api_unauthenticated"]
    assert len(warnings) == 1 and warnings[0]["log_level"] == "warning"
    started = next(e for e in logs if e["event"] == "started")
    assert started["api"] == "unauthenticated-loopback"


async def test_opt_out_still_refuses_clients_that_are_not_on_loopback(tmp_path: Path) -> None:
    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no address besides loopback")
    async with running(write(tmp_path, "  unauthenticated_api: true\n", host="0.0.0.0")) as (d, _):
        port = port_of(d)
        for request in (b"POST /-/reload HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n",
                        b"POST /api/v1/heartbeat/plain HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n"):
            status, _, body = await raw(port, request % (address.encode(), port), host=address)
            assert status == 403 and b"loopback" in body
        status, _, _ = await raw(port, b"GET /api/v1/checks HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n"
                                 % (address.encode(), port), host=address)
        assert status == 200
        assert d.env.heartbeats == {}


async def test_a_token_wins_over_the_opt_out(tmp_path: Path) -> None:
    with structlog.testing.capture_logs() as logs:
        async with running(write(tmp_path, f"  api_token: {TOKEN}\n  unauthenticated_api: true\n")) as (d, client):
            assert (await client.post("/-/reload")).status_code == 401
            assert (await client.post("/api/v1/silences", json=silence_body())).status_code == 401
            assert (await client.post("/-/reload", headers=AUTH)).status_code == 200
    assert any(e["event"] == "api_unauthenticated_ignored" for e in logs)
    assert not any(e["event"] == "api_unauthenticated" for e in logs)


async def test_a_reload_that_opens_the_api_warns(tmp_path: Path) -> None:
    path = write(tmp_path, f"  api_token: {TOKEN}\n")
    async with running(path) as (d, client):
        path.write_text(path.read_text().replace(f"  api_token: {TOKEN}\n", "  unauthenticated_api: true\n"))
        with structlog.testing.capture_logs() as logs:
            assert (await client.post("/-/reload", headers=AUTH)).status_code == 200
        assert [e["log_level"] for e in logs if e["event"] == "api_unauthenticated"] == ["warning"]
        assert (await client.post("/api/v1/heartbeat/plain")).status_code == 200  # now open on loopback
        path.write_text(path.read_text().replace("  unauthenticated_api: true\n", ""))
        with structlog.testing.capture_logs() as logs:
            assert (await client.post("/-/reload")).status_code == 200
        assert any(e["event"] == "api_mutations_disabled" for e in logs)
        assert (await client.post("/-/reload")).status_code == 403  # closed again


async def test_mutations_refuse_cross_site_requests(tmp_path: Path) -> None:
    async with running(write(tmp_path, f"  api_token: {TOKEN}\n")) as (d, client):
        port = port_of(d)
        refused = [
            {"Sec-Fetch-Site": "cross-site"},
            {"Sec-Fetch-Site": "same-site"},
            {"Origin": "https://evil.example"},
            {"Origin": "null"},
            {"Origin": f"http://127.0.0.1:{port + 1}"},
            {"Origin": f"http://localhost:{port}"},  # another origin, even if it is the same machine
        ]
        for headers in refused:
            response = await client.post("/-/reload", headers={**AUTH, **headers})
            assert response.status_code == 403, headers
            assert "cross-site" in response.json()["error"]
        accepted = [{}, {"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"},
                    {"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"}]
        for headers in accepted:
            assert (await client.post("/-/reload", headers={**AUTH, **headers})).status_code == 200, headers
        # Reads are not mutations: a cross-site GET is answered (the browser keeps the answer
        # from the page, as there are no CORS headers).
        assert (await client.get("/api/v1/checks", headers={"Sec-Fetch-Site": "cross-site"})).status_code == 200


async def test_a_mutation_with_a_body_must_be_json(tmp_path: Path) -> None:
    async with running(write(tmp_path, f"  api_token: {TOKEN}\n")) as (d, client):
        body = json.dumps(silence_body())
        for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
            response = await client.post("/api/v1/silences", content=body, headers={**AUTH, "Content-Type": content_type})
            assert response.status_code == 415, content_type
            assert "application/json" in response.json()["error"]
        assert len(d.silences) == 0
        ok = await client.post("/api/v1/silences", content=body,
                               headers={**AUTH, "Content-Type": "application/json; charset=utf-8"})
        assert ok.status_code == 200
        # Calls without a body need no Content-Type (curl -X POST, httpx's empty post).
        status, _, _ = await raw(port_of(d), b"POST /-/reload HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                 b"Authorization: Bearer %s\r\nConnection: close\r\n\r\n" % TOKEN.encode())
        assert status == 200
        assert (await client.post("/api/v1/heartbeat/plain", headers=AUTH)).status_code == 200


# --- Host allow-list -------------------------------------------------------------------------


async def test_unknown_host_names_are_refused_on_every_endpoint(tmp_path: Path) -> None:
    extra = f"  api_token: {TOKEN}\n  external_url: https://monitor.example.com/\n  allowed_hosts: [Status.Internal]\n"
    async with running(write(tmp_path, extra)) as (d, client):
        port = port_of(d)
        for path in ("/healthz", "/metrics", "/api/v1/checks", "/", "/nope"):
            response = await client.get(path, headers={"Host": f"rebound.evil.example:{port}"})
            assert response.status_code == 421, path
            message = response.json()["error"]
            assert "rebound.evil.example" in message and "global.allowed_hosts" in message
            assert "localhost" in message and "monitor.example.com" in message and "status.internal" in message
        mutation = await client.post("/-/reload", headers={**AUTH, "Host": "rebound.evil.example"})
        assert mutation.status_code == 421
        for host in ("localhost", f"localhost:{port}", "LOCALHOST.", "127.0.0.1", f"127.0.0.1:{port}", "[::1]:80",
                     "10.1.2.3:9464", "monitor.example.com", "monitor.example.com:443", "status.internal:8080"):
            assert (await client.get("/healthz", headers={"Host": host})).status_code == 200, host
        assert (await client.post("/-/reload", headers={**AUTH, "Host": "status.internal"})).status_code == 200


async def test_allowed_hosts_star_allows_any_host(tmp_path: Path) -> None:
    async with running(write(tmp_path, "  allowed_hosts: ['*']\n")) as (_, client):
        assert (await client.get("/healthz", headers={"Host": "anything.example"})).status_code == 200


def test_allowed_hosts_defaults_and_validation() -> None:
    hosts = AllowedHosts.from_settings(GlobalConfig(listen="monitor.internal:9464", external_url="http://mon.example:9464"))
    assert hosts.allows("monitor.internal:9464") and hosts.allows("mon.example") and hosts.allows("localhost")
    assert hosts.allows("192.168.1.5") and hosts.allows("[fd00::1]:9464")
    assert not hosts.allows("evil.example") and not hosts.allows("127.0.0.1.evil.example")
    assert not hosts.allows("mon.example.evil.example") and not hosts.allows("[evil]")
    # Without external_url, the URL notifications link to is derived from `listen` (on every
    # address: this machine's name), and people follow it.
    assert AllowedHosts.from_settings(GlobalConfig(listen="0.0.0.0:9464")).names == frozenset(
        {"localhost", socket.gethostname().lower().rstrip(".")})
    for bad in ("http://x.example", "x.example:9464", "x.example/path", ""):
        with pytest.raises(ValidationError, match="allowed_hosts"):
            GlobalConfig(allowed_hosts=[bad])
    assert split_host("[::1]:9464") == ("::1", 9464)
    assert split_host("Example.COM.:80") == ("example.com", 80)


def test_peers_that_count_as_loopback() -> None:
    assert all(is_loopback(a) for a in ("127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"))
    assert not any(is_loopback(a) for a in ("10.0.0.1", "192.0.2.2", "fd00::2", "::ffff:10.0.0.1", "", None, "unix"))


def test_origin_comparison() -> None:
    assert cross_site(None, None, "127.0.0.1:9464") is None
    assert cross_site(None, "http://127.0.0.1:9464", "127.0.0.1:9464") is None
    assert cross_site(None, "http://monitor.example", "monitor.example:80") is None
    assert cross_site(None, "https://monitor.example", "monitor.example") is None
    assert cross_site(None, "http://monitor.example:8080", "monitor.example") is not None
    assert cross_site(None, "http://monitor.example:notaport", "monitor.example") is not None
    assert cross_site("Cross-Site", None, "x") is not None


# --- 2. heartbeat push keys ---------------------------------------------------------------------


async def test_a_push_key_authorizes_its_own_heartbeat_and_nothing_else(tmp_path: Path) -> None:
    async with running(write(tmp_path, f"  api_token: {TOKEN}\n")) as (d, client):
        beat_key = {"Authorization": "Bearer k-beat-0123"}
        assert (await client.post("/api/v1/heartbeat/beat", headers=beat_key)).status_code == 200
        assert "beat" in d.env.heartbeats
        # The scheme is case-insensitive, as HTTP says.
        assert (await client.post("/api/v1/heartbeat/beat", headers={"Authorization": "bearer k-beat-0123"})).status_code == 200
        assert (await client.post("/api/v1/heartbeat/nightly", headers=beat_key)).status_code == 401
        assert (await client.post("/api/v1/heartbeat/plain", headers=beat_key)).status_code == 401
        assert (await client.post("/-/reload", headers=beat_key)).status_code == 401
        assert (await client.post("/api/v1/silences", json=silence_body(), headers=beat_key)).status_code == 401
        assert (await client.delete("/api/v1/silences/x", headers=beat_key)).status_code == 401
        assert (await client.post("/api/v1/heartbeat/beat", headers={"Authorization": "Bearer k-beat-012"})).status_code == 401
        assert (await client.post("/api/v1/heartbeat/beat")).status_code == 401
        assert set(d.env.heartbeats) == {"beat"} and len(d.silences) == 0
        # The admin token still pushes any heartbeat.
        assert (await client.post("/api/v1/heartbeat/nightly", headers=AUTH)).status_code == 200
        assert (await client.post("/api/v1/heartbeat/plain", headers=AUTH)).status_code == 200


async def test_push_keys_work_when_mutations_are_otherwise_disabled(tmp_path: Path) -> None:
    async with running(write(tmp_path)) as (d, client):
        pushed = await client.post("/api/v1/heartbeat/beat?status=fail", headers={"Authorization": "Bearer k-beat-0123"})
        assert pushed.status_code == 200 and pushed.json() == {"check": "beat", "status": "fail"}
        assert d.env.heartbeats["beat"][1] is True
        assert (await client.post("/api/v1/heartbeat/plain")).status_code == 403
        assert (await client.post("/-/reload", headers={"Authorization": "Bearer k-beat-0123"})).status_code == 401


async def test_push_keys_and_the_token_never_show(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    secrets = ("k-beat-0123", "k-nightly-4567", TOKEN)
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as logs:
        async with running(write(tmp_path, f"  api_token: {TOKEN}\n  log_level: debug\n")) as (d, client):
            assert (await client.post("/api/v1/heartbeat/beat?status=fail", headers={"Authorization": "Bearer k-beat-0123"})).status_code == 200
            await client.post("/api/v1/heartbeat/beat", headers={"Authorization": "Bearer k-nightly-4567"})
            assert (await client.post("/-/reload", headers=AUTH)).status_code == 200
            await eventually(lambda: all(s.last is not None for s in d.statuses.all()))
            shown = [(await client.get(path)).text for path in
                     ("/api/v1/checks", "/api/v1/checks/beat", "/api/v1/alerts", "/api/v1/silences", "/metrics", "/")]
            shown.append(repr(d.config.checks))
    shown += [repr(logs), caplog.text, capsys.readouterr().out]
    for text in shown:
        for secret in secrets:
            assert secret not in text


async def test_push_keys_hosts_and_the_connection_cap_follow_a_reload(tmp_path: Path) -> None:
    path = write(tmp_path, f"  api_token: {TOKEN}\n")
    async with running(path) as (d, client):
        assert d.connections.limit == 256
        assert (await client.get("/healthz", headers={"Host": "status.internal"})).status_code == 421
        (tmp_path / "checks.yaml").write_text(CHECKS.replace("k-beat-0123", "k-beat-new"))
        path.write_text(path.read_text().replace("global:\n", "global:\n  allowed_hosts: [status.internal]\n"
                                                  "  max_connections: 100\n"))
        assert (await client.post("/-/reload", headers=AUTH)).status_code == 200
        assert (await client.post("/api/v1/heartbeat/beat", headers={"Authorization": "Bearer k-beat-0123"})).status_code == 401
        assert (await client.post("/api/v1/heartbeat/beat", headers={"Authorization": "Bearer k-beat-new"})).status_code == 200
        assert (await client.get("/healthz", headers={"Host": "status.internal"})).status_code == 200
        assert d.connections.limit == 100


def test_an_empty_push_key_means_none(tmp_path: Path) -> None:
    path = write(tmp_path, checks=CHECKS.replace("push_key: k-beat-0123", "push_key: ${BEAT_KEY:-}"))
    config = load_config(path, environ={})
    beat = config.check("beat")
    assert beat is not None and getattr(beat, "push_key") is None


# --- 4. malformed requests: a 4xx JSON error, never a 500 ------------------------------------------


async def test_a_non_ascii_authorization_header_is_401_not_500(tmp_path: Path) -> None:
    async with running(write(tmp_path, f"  api_token: {TOKEN}\n")) as (d, client):
        port = port_of(d)
        for credential in (b"t\xf6k", "tök".encode(), b"\xff\xfe", b"t0ken-admin\x80"):
            for path in (b"/-/reload", b"/api/v1/heartbeat/beat", b"/api/v1/silences/x"):
                method = b"DELETE" if path.startswith(b"/api/v1/silences") else b"POST"
                status, headers, body = await raw(port, b"%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                                                  b"Connection: close\r\n\r\n" % (method, path, credential))
                assert status == 401, (credential, path, body)
                assert headers["content-type"].startswith("application/json")
                assert json.loads(body) == {"error": "missing or wrong bearer token"}
        # The daemon is fine afterwards.
        assert (await client.post("/-/reload", headers=AUTH)).status_code == 200


@pytest.mark.parametrize("body, message", [
    (b"{", "JSON"),
    (b"\xff\xfe not utf-8", "JSON"),
    (b"[" * 20_000 + b"]" * 20_000, "JSON"),  # deeper than the JSON parser recurses
    (b"null", "JSON object"),
    (b'"a string"', "JSON object"),
    (b'{"matchers": "alertname=x"}', "matchers"),
    (b'{"matchers": [1]}', "matchers[0]"),
    (b'{"matchers": [{"name": 1, "value": "x", "isRegex": false}]}', "matchers[0].name"),
    (b'{"matchers": [{"name": "a", "value": "x", "isRegex": "no"}]}', "isRegex"),
    (b'{"matchers": [{"name": "a", "value": "x", "isRegex": false}], "startsAt": 5, "endsAt": [], '
     b'"createdBy": "t", "comment": "c"}', "startsAt"),
    (b'{"matchers": [{"name": "a", "value": "x", "isRegex": false}], "startsAt": "2020-01-01T00:00:00Z",'
     b' "endsAt": "%s", "createdBy": {}, "comment": "c"}' % rfc3339(time.time() + 86400).encode(), "createdBy"),
])
async def test_malformed_silences_are_400(tmp_path: Path, body: bytes, message: str) -> None:
    async with running(write(tmp_path, f"  api_token: {TOKEN}\n")) as (d, client):
        response = await client.post("/api/v1/silences", content=body, headers={**AUTH, **JSON})
        assert response.status_code == 400, response.text
        assert message in response.json()["error"]
        assert len(d.silences) == 0


async def test_protocol_level_errors_are_json(tmp_path: Path) -> None:
    async with running(write(tmp_path, f"  api_token: {TOKEN}\n")) as (d, client):
        port = port_of(d)
        big = json.dumps({**silence_body(), "comment": "x" * 70_000}).encode()
        cases = [
            (b"GARBAGE\r\n\r\n", 400),
            (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n", 400),
            (b"GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", 404),
            (b"PUT /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", 405),
            (b"POST /api/v1/silences HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
             b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
             % (TOKEN.encode(), len(big), big), 413),
            (b"POST /api/v1/silences HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
             b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
             % (TOKEN.encode(), len(big), big), 413),
        ]
        for request, expected in cases:
            status, headers, body = await raw(port, request)
            assert status == expected, (request[:60], body[:200])
            assert headers["content-type"].startswith("application/json"), request[:60]
            assert json.loads(body)["error"]
        _, headers, body = await raw(port, cases[3][0])
        assert headers["allow"] == "GET, HEAD" and "allowed: GET, HEAD" in json.loads(body)["error"]
        assert len(d.silences) == 0
        assert (await client.get("/healthz")).status_code == 200


async def test_a_bug_is_a_500_that_says_nothing_and_one_log_line(tmp_path: Path) -> None:
    async with running(write(tmp_path)) as (d, client):
        def broken(accept: str) -> tuple[bytes, str]:
            raise KeyError("internal detail")

        d.render_metrics = broken  # type: ignore[method-assign]
        with structlog.testing.capture_logs() as logs:
            response = await client.get("/metrics")
        assert response.status_code == 500
        assert response.json() == {"error": "internal error"}
        errors = [e for e in logs if e["log_level"] == "error"]
        assert [e["event"] for e in errors] == ["http_internal_error"]
        assert errors[0]["path"] == "/metrics" and "KeyError" in errors[0]["error"]
        assert (await client.get("/healthz")).status_code == 200
