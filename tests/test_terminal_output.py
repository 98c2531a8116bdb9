"""Terminal control sequences from targets and from silence comments never reach the
operator's terminal raw: `monitor check`, `monitor status` and `monitor silence list` show
them escaped (``\\x1b[2J``), so an error text cannot clear the screen or retitle the window.
"""

from __future__ import annotations

import time
import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from monitor.core.timestamps import rfc3339
from monitor.cli.silence import render as render_silences
from monitor.cli.status import render as render_status
from monitor.cli.terminal import cell, printable
from monitor.config.loader import load_config
from monitor.daemon import Daemon
from tests.misbehaving_server import ESCAPES, MisbehavingServer
from tests.test_cli import monitor
from tests.test_http_api import eventually, free_port

# Any C0 control but tab and newline, DEL, any C1 control.
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def escape_check(server: MisbehavingServer) -> str:
    # The target's body holds escapes; the expression quotes part of it in its error (CEL's
    # own message for an invalid regex), and the X-Note header holds them too.
    return f"""checks:
  - name: hostile
    kind: http
    url: {server.url("/escape")}
    interval: 300ms
    timeout: 250ms
    expect: {{cel: 'body.note.matches(body.re)'}}
"""


def write_config(tmp_path: Path, checks: str) -> Path:
    (tmp_path / "monitor.yaml").write_text(
        f"global:\n  listen: 127.0.0.1:{free_port()}\n  state: sqlite:///{tmp_path}/state.db\n  api_token: t0ken\n"
        "check_files: [checks.yaml]\nrule_files: []\n")
    (tmp_path / "checks.yaml").write_text(checks)
    return tmp_path / "monitor.yaml"


def assert_no_raw_controls(text: str) -> None:
    found = RAW_CONTROL.findall(text)
    assert not found, f"raw control characters {found!r} in output: {text[:2000]!r}"


@pytest.fixture
async def daemon_url(tmp_path: Path, misbehaving_http: MisbehavingServer) -> AsyncIterator[tuple[Daemon, str]]:
    config = load_config(write_config(tmp_path, escape_check(misbehaving_http)))
    daemon = Daemon(config)
    task = asyncio.create_task(daemon.run())
    await eventually(lambda: daemon.ready)
    yield daemon, f"http://{config.settings.listen}"
    daemon.stop()
    await asyncio.wait_for(task, 10)


def test_escaping_helpers() -> None:
    assert printable("a\x1b[2Jb\u009b31mc\x7f\td\ne") == "a\\x1b[2Jb\\u009b31mc\\x7f\td\ne"
    assert printable("\u202eevil\u2066") == "\\u202eevil\\u2066"  # bidirectional overrides
    assert cell("one\ttwo\nthree\x07") == "one\\x09two\\x0athree\\x07"
    assert printable("plain – unicode ✓") == "plain – unicode ✓"


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_check_prints_a_hostile_targets_error_and_headers_escaped(tmp_path: Path,
                                                                  misbehaving_http: MisbehavingServer,
                                                                  as_json: bool) -> None:
    done = monitor("check", "hostile", *(["--json"] if as_json else []), "-c",
                   str(write_config(tmp_path, escape_check(misbehaving_http))))
    assert done.returncode == 1, done.stderr
    assert_no_raw_controls(done.stdout + done.stderr)
    if as_json:
        result = json.loads(done.stdout)  # still valid JSON, with the text intact
        assert ESCAPES in result["error"]
        assert result["detail"]["headers"]["x-note"].startswith("\x1b[2J")
    else:
        assert "\\x1b[2J\\x1b]0;owned\\x07\\u009b31m" in done.stdout


async def test_status_prints_errors_escaped(daemon_url: tuple[Daemon, str]) -> None:
    daemon, url = daemon_url
    await eventually(lambda: (s := daemon.statuses.get("hostile")) is not None and s.last is not None)
    last = daemon.statuses.get("hostile").last  # type: ignore[union-attr]
    assert last is not None and "\x1b[2J" in (last.error or "")  # the raw text is in the result
    done = await asyncio.to_thread(monitor, "status", "--url", url)
    assert done.returncode == 0, done.stderr
    assert_no_raw_controls(done.stdout + done.stderr)
    assert "\\x1b[2J" in done.stdout
    header, row = done.stdout.splitlines()[:2]
    assert row.split()[:3] == ["hostile", "http", "DOWN"]


async def test_silence_list_prints_comments_escaped(daemon_url: tuple[Daemon, str]) -> None:
    _, url = daemon_url
    silence = {"matchers": [{"name": "alertname", "value": f"x{ESCAPES}", "isRegex": False}],
               "startsAt": "2020-01-01T00:00:00Z", "endsAt": rfc3339(time.time() + 86400),
               "createdBy": f"mallory{ESCAPES}", "comment": f"maintenance\x1b[2J\x1b[H\x1b]0;pwned\x07 \u202egnp.exe"}
    async with httpx.AsyncClient(base_url=url) as client:
        assert (await client.post("/api/v1/silences", json=silence,
                                  headers={"Authorization": "Bearer t0ken"})).status_code == 200
    done = await asyncio.to_thread(monitor, "silence", "list", "--url", url)
    assert done.returncode == 0, done.stderr
    assert_no_raw_controls(done.stdout + done.stderr)
    assert "\u202e" not in done.stdout
    assert "maintenance\\x1b[2J\\x1b[H\\x1b]0;pwned\\x07" in done.stdout
    assert "mallory\\x1b[2J" in done.stdout


def test_renderers_escape_every_column() -> None:
    checks = [{"name": "n\x1b[2J", "kind": "k\x9b", "last": {"up": False, "value": None, "latency": 0.1,
                                                            "error": "e\x1b]0;t\x07\nsecond line"}}]
    table = render_status(checks)
    assert_no_raw_controls(table)
    assert len(table.splitlines()) == 2  # the newline in the error did not add a row
    silences = [{"id": "i\x1b", "matchers": [{"name": "a", "value": "\x1b[2J"}], "status": {"state": "active\x07"},
                 "endsAt": "x\x1b", "createdBy": "b\x1b", "comment": "c\x9b"}]
    assert_no_raw_controls(render_silences(silences))
