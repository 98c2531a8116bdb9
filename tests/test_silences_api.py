"""Silences through the daemon: the HTTP API (in-process daemon) and `monitor silence` (subprocess)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitor.core.timestamps import rfc3339
from monitor.config.loader import load_config
from monitor.daemon import Daemon
from tests.test_cli import MONITOR, ROOT, monitor
from tests.test_http_api import eventually, free_port, write_config

CHECKS = "checks:\n  - name: beat\n    kind: heartbeat\n    interval: 1s\n    max_age: 1h\n"
AUTH = {"Authorization": "Bearer t0ken"}


def postable(**changes: object) -> dict[str, Any]:
    now = time.time()
    body: dict[str, Any] = {
        "matchers": [{"name": "alertname", "value": "ApiDown", "isRegex": False, "isEqual": True},
                     {"name": "env", "value": "prod|stag", "isRegex": True}],
        "startsAt": rfc3339(now, fixed_millis=True),
        "endsAt": rfc3339(now + 3600, fixed_millis=True),
        "createdBy": "alice",
        "comment": "deploy",
    }
    body.update(changes)
    return body


async def start(config_path: Path) -> tuple[Daemon, asyncio.Task[None]]:
    d = Daemon(load_config(config_path))
    task = asyncio.create_task(d.run())
    await eventually(lambda: d.ready)
    return d, task


async def stop(d: Daemon, task: asyncio.Task[None]) -> None:
    d.stop()
    await asyncio.wait_for(task, 10)


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[tuple[Daemon, httpx.AsyncClient]]:
    path = write_config(tmp_path, token="t0ken", checks=CHECKS)
    d, task = await start(path)
    async with httpx.AsyncClient(base_url=f"http://{d.config.settings.listen}", timeout=5) as client:
        yield d, client
    await stop(d, task)


async def test_add_list_expire_with_token(daemon: tuple[Daemon, httpx.AsyncClient]) -> None:
    d, client = daemon
    denied = await client.post("/api/v1/silences", json=postable())
    assert denied.status_code == 401 and denied.json()["error"]
    assert len(d.silences) == 0

    added = await client.post("/api/v1/silences", json=postable(), headers=AUTH)
    assert added.status_code == 200
    silence_id = added.json()["silenceID"]
    listed = (await client.get("/api/v1/silences")).json()
    assert [s["id"] for s in listed] == [silence_id]
    got = listed[0]
    assert got["status"] == {"state": "active"}
    assert got["createdBy"] == "alice" and got["comment"] == "deploy"
    assert got["matchers"][1] == {"name": "env", "value": "prod|stag", "isRegex": True, "isEqual": True}
    assert {"startsAt", "endsAt", "updatedAt"} <= got.keys()
    muted = {"alertname": "ApiDown", "env": "prod"}
    assert [s.id for s in d.silences.list() if s.matches(muted, time.time())] == [silence_id]
    assert d.silences.mutes(muted, time.time())

    assert (await client.delete(f"/api/v1/silences/{silence_id}")).status_code == 401
    expired = await client.delete(f"/api/v1/silences/{silence_id}", headers=AUTH)
    assert expired.status_code == 200
    assert (await client.get("/api/v1/silences")).json()[0]["status"] == {"state": "expired"}
    again = await client.delete(f"/api/v1/silences/{silence_id}", headers=AUTH)
    assert again.status_code == 400 and "already expired" in again.json()["error"]
    unknown = await client.delete("/api/v1/silences/nope", headers=AUTH)
    assert unknown.status_code == 404 and "nope" in unknown.json()["error"]


async def test_update_in_place_and_unknown_id(daemon: tuple[Daemon, httpx.AsyncClient]) -> None:
    _, client = daemon
    silence_id = (await client.post("/api/v1/silences", json=postable(), headers=AUTH)).json()["silenceID"]
    first = (await client.get("/api/v1/silences")).json()[0]
    longer = postable(id=silence_id, startsAt=first["startsAt"], endsAt=rfc3339(time.time() + 7200, fixed_millis=True),
                      comment="longer")
    updated = await client.post("/api/v1/silences", json=longer, headers=AUTH)
    assert updated.json() == {"silenceID": silence_id}
    listed = (await client.get("/api/v1/silences")).json()
    assert len(listed) == 1 and listed[0]["comment"] == "longer"
    missing = await client.post("/api/v1/silences", json=postable(id="no-such-id"), headers=AUTH)
    assert missing.status_code == 404 and "no-such-id" in missing.json()["error"]


@pytest.mark.parametrize("body, message", [
    (b"not json", "JSON"),
    (b"[1, 2]", "JSON object"),
    (postable(matchers=[]), "matchers"),
    (postable(matchers=[{"name": "env", "value": ".*", "isRegex": True}]), "empty string"),
    (postable(matchers=[{"name": "a", "value": "(", "isRegex": True}]), "invalid regex"),
    (postable(matchers=[{"name": "a", "value": "a(?=b)", "isRegex": True}]), "lookahead (?=...) is not supported"),
    (postable(matchers=[{"name": "a", "value": "x" * 5000, "isRegex": True}]), "over the limit of 1024"),
    (postable(endsAt="tomorrow"), "endsAt"),
    (postable(endsAt=rfc3339(time.time() - 60, fixed_millis=True), startsAt=rfc3339(time.time() - 120, fixed_millis=True)), "past"),
    (postable(comment=""), "comment"),
    (postable(createdBy=None), "createdBy"),
])
async def test_invalid_input_is_400_with_an_error(
        daemon: tuple[Daemon, httpx.AsyncClient], body: object, message: str) -> None:
    d, client = daemon
    if isinstance(body, bytes):
        response = await client.post("/api/v1/silences", content=body, headers={**AUTH, "Content-Type": "application/json"})
    else:
        response = await client.post("/api/v1/silences", json=body, headers=AUTH)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert len(d.silences) == 0


async def test_a_catastrophic_regex_runs_in_linear_time_and_the_daemon_stays_responsive(
        daemon: tuple[Daemon, httpx.AsyncClient]) -> None:
    # With Python's `re`, `(a+)+$` against this value takes exponential time and would stall the
    # event loop (and with it every probe and request) the first time a silence ran. RE2 (what
    # Alertmanager uses too) matches in linear time, so the silence is simply accepted.
    d, client = daemon
    evil = postable(matchers=[{"name": "alertname", "value": "ApiDown", "isRegex": False},
                              {"name": "check", "value": "(a+)+$", "isRegex": True}])
    started = time.monotonic()
    accepted = await client.post("/api/v1/silences", json=evil, headers=AUTH)
    assert accepted.status_code == 200
    assert len(d.silences) == 1
    # It runs, gives the right answer, and the daemon answers at once.
    assert not d.silences.mutes({"alertname": "ApiDown", "check": "a" * 64 + "!"}, time.time())
    assert d.silences.mutes({"alertname": "ApiDown", "check": "a" * 64}, time.time())
    assert (await client.get("/healthz")).status_code == 200
    assert len((await client.get("/api/v1/silences")).json()) == 1
    ok = await client.post("/api/v1/silences", json=postable(), headers=AUTH)
    assert ok.status_code == 200
    assert time.monotonic() - started < 5


async def test_a_regex_re2_refuses_is_400_naming_the_construct(daemon: tuple[Daemon, httpx.AsyncClient]) -> None:
    d, client = daemon
    body = postable(matchers=[{"name": "alertname", "value": "ApiDown", "isRegex": False},
                              {"name": "check", "value": "api(?=_health)", "isRegex": True}])
    refused = await client.post("/api/v1/silences", json=body, headers=AUTH)
    assert refused.status_code == 400
    assert refused.json() == {"error": "matchers[1]: invalid regex 'api(?=_health)' in matcher check=~:"
                                       " lookahead (?=...) is not supported (RE2 syntax)"}
    assert len(d.silences) == 0


def test_cli_refuses_a_regex_re2_refuses_with_exit_2() -> None:
    # Refused before any request: the URL points nowhere.
    result = monitor("silence", "add", "ApiDown", "check=~(?<=x)y", "--comment", "x", "--url", "http://127.0.0.1:9")
    assert result.returncode == 2
    assert result.stderr == ("monitor: matcher 'check=~(?<=x)y': invalid regex '(?<=x)y' in matcher check=~:"
                             " lookbehind (?<=...) is not supported (RE2 syntax)\n")


async def test_silences_survive_a_restart(tmp_path: Path) -> None:
    path = write_config(tmp_path, token="t0ken", checks=CHECKS)
    d, task = await start(path)
    async with httpx.AsyncClient(base_url=f"http://{d.config.settings.listen}", timeout=5) as client:
        kept = (await client.post("/api/v1/silences", json=postable(), headers=AUTH)).json()["silenceID"]
        gone = (await client.post("/api/v1/silences", json=postable(comment="short"), headers=AUTH)).json()["silenceID"]
        assert (await client.delete(f"/api/v1/silences/{gone}", headers=AUTH)).status_code == 200
        before = {s["id"]: s for s in (await client.get("/api/v1/silences")).json()}
    await stop(d, task)

    d, task = await start(path)
    try:
        async with httpx.AsyncClient(base_url=f"http://{d.config.settings.listen}", timeout=5) as client:
            after = {s["id"]: s for s in (await client.get("/api/v1/silences")).json()}
        assert after == before
        assert after[kept]["status"]["state"] == "active" and after[gone]["status"]["state"] == "expired"
    finally:
        await stop(d, task)


async def test_sweep_prunes_old_expired_silences_from_the_store(
        daemon: tuple[Daemon, httpx.AsyncClient]) -> None:
    d, client = daemon
    silence_id = (await client.post("/api/v1/silences", json=postable(), headers=AUTH)).json()["silenceID"]
    await client.delete(f"/api/v1/silences/{silence_id}", headers=AUTH)
    assert d.store is not None and len(await d.store.load_silences()) == 1
    real_time = d.env.clock.time
    d.env.clock.time = lambda: real_time() + 6 * 86400  # type: ignore[method-assign]
    try:
        await d._prune_silences()  # what the sweep loop runs every few seconds
    finally:
        d.env.clock.time = real_time  # type: ignore[method-assign]
    assert len(d.silences) == 0
    assert await d.store.load_silences() == []


def test_cli_add_list_expire_against_a_running_daemon(tmp_path: Path) -> None:
    port = free_port()
    path = write_config(tmp_path, token="t0ken", checks=CHECKS)
    text = path.read_text()
    path.write_text(text[:text.index("listen:")] + f"listen: 127.0.0.1:{port}" + text[text.index("\n", text.index("listen:")):])
    proc = subprocess.Popen([*MONITOR, "run", "-c", str(path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    token = {"MONITOR_API_TOKEN": "t0ken", "USER": "bob"}
    try:
        deadline = time.monotonic() + 20
        while monitor("silence", "list", "--url", url).returncode != 0:
            assert time.monotonic() < deadline, "daemon did not come up"
            time.sleep(0.2)

        added = monitor("silence", "add", "ApiDown", "env=~prod|stag", "--duration", "2h",
                        "--comment", "deploy window", "--url", url, env=token)
        assert added.returncode == 0, added.stderr
        silence_id = added.stdout.strip()
        assert len(silence_id) == 36

        listed = monitor("silence", "list", "--url", url)
        assert listed.returncode == 0, listed.stderr
        header, row = listed.stdout.splitlines()[:2]
        assert header.split() == ["ID", "MATCHERS", "STATE", "ENDS", "CREATED", "BY", "COMMENT"]
        assert row.startswith(silence_id)
        assert "alertname=ApiDown" in row and 'env=~"prod|stag"' in row
        assert " active " in row and " bob " in row and row.endswith("deploy window")

        denied = monitor("silence", "expire", silence_id, "--url", url, env={"MONITOR_API_TOKEN": ""})
        assert denied.returncode == 1 and "401" in denied.stderr and len(denied.stderr.splitlines()) == 1

        expired = monitor("silence", "expire", silence_id, "--url", url, "--token", "t0ken")
        assert expired.returncode == 0, expired.stderr
        row = monitor("silence", "list", "--url", url).stdout.splitlines()[1]
        assert row.startswith(silence_id) and " expired " in row

        unknown = monitor("silence", "expire", "nope", "--url", url, env=token)
        assert unknown.returncode == 1 and "404" in unknown.stderr and "nope" in unknown.stderr
        bad = monitor("silence", "add", "env=~(", "--comment", "x", "--url", url, env=token)
        assert bad.returncode == 2 and "invalid regex" in bad.stderr and "Traceback" not in bad.stderr
    finally:
        proc.terminate()
        proc.wait(10)
    unreachable = monitor("silence", "list", "--url", url)
    assert unreachable.returncode == 1 and "cannot reach a daemon" in unreachable.stderr
    assert len(unreachable.stderr.splitlines()) == 1


async def test_listing_pages_with_limit_and_offset(daemon: tuple[Daemon, httpx.AsyncClient]) -> None:
    _, client = daemon
    made = []
    for hours in (1, 2, 3, 4, 5):  # newest end first in the listing
        added = await client.post("/api/v1/silences", json=postable(endsAt=rfc3339(time.time() + hours * 3600)),
                                   headers=AUTH)
        made.append(added.json()["silenceID"])
    everything = await client.get("/api/v1/silences")
    assert [s["id"] for s in everything.json()] == made[::-1]
    assert everything.headers["X-Total-Count"] == "5"
    page = await client.get("/api/v1/silences", params={"limit": 2, "offset": 1})
    assert [s["id"] for s in page.json()] == made[::-1][1:3] and page.headers["X-Total-Count"] == "5"
    for bad in ({"limit": "0"}, {"limit": "-1"}, {"offset": "x"}):
        refused = await client.get("/api/v1/silences", params=bad)
        assert refused.status_code == 400 and next(iter(bad)) in refused.json()["error"]
