"""What leaves the daemon about a target and about the config: the API, the status page,
`monitor validate`, `monitor check` and the JSON log never show a configured secret, a
URL's query values, a cookie, or (unless asked) a response body.

The secrets below are written into the config, sent to a target that echoes them back
(``/echo`` of tests/misbehaving_server.py), and looked for in everything shown.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog

from monitor.cli.logs import configure_logging
from monitor.config.loader import load_config
from monitor.core import secrets
from monitor.daemon import Daemon
from tests.misbehaving_server import SECRET_BODY, SECRET_COOKIE, MisbehavingServer
from tests.test_cli import MONITOR, ROOT, monitor
from tests.test_http_api import eventually, free_port

HEADER_SECRET = "hdr-s3cret-dash-key-value"
QUERY_SECRET = "qry-s3cret-api-key-value"
ACCESS_TOKEN = "acc3ss-t0ken-query-value"
DB_PASSWORD = "dbpa55word-for-postgres"
WEBHOOK = "http://127.0.0.1:{port}/hooks/T0KEN-webhook-path-secret-0123456789"
SECRET_VALUES = (HEADER_SECRET, QUERY_SECRET, ACCESS_TOKEN, DB_PASSWORD, "T0KEN-webhook-path-secret")


def leaky_checks(target: MisbehavingServer, webhook: str, path: str = "/echo", failing: bool = True,
                 extra: str = "") -> str:
    """An http check whose target echoes the request back (headers, and a body holding the
    webhook URL and the DB password), and a postgres check that cannot connect."""
    body = json.dumps({"notify": webhook, "db": f"postgresql://app:{DB_PASSWORD}@db/app"})
    return f"""checks:
  - name: api
    kind: http
    url: {target.url(path)}?api_key={QUERY_SECRET}&access_token={ACCESS_TOKEN}&region=eu
    method: POST
    headers: {{X-Dash-Key: {HEADER_SECRET}, Content-Type: application/json}}
    body: '{body}'
    interval: 1s
    timeout: 1s
{"    expect: {status: [201]}" if failing else ""}
{extra}
  - name: db
    kind: postgres
    dsn: postgresql://app:{DB_PASSWORD}@127.0.0.1:{free_port()}/app
    interval: 1s
    timeout: 1s
"""


def write_config(tmp_path: Path, checks: str, webhook: str, port: int | None = None, log_json: bool = False) -> Path:
    (tmp_path / "monitor.yaml").write_text(f"""global:
  listen: 127.0.0.1:{port or free_port()}
  state: sqlite:///{tmp_path}/state.db
  api_token: api-t0ken-for-tests
{"  log_format: json" if log_json else ""}
check_files: [checks.yaml]
rule_files: [rules.yaml]
receivers:
  - name: hook
    webhook_configs:
      - url: {webhook}
route:
  receiver: hook
  group_wait: 0s
""")
    (tmp_path / "checks.yaml").write_text(checks)
    (tmp_path / "rules.yaml").write_text(
        "groups:\n  - name: g\n    rules:\n"
        "      - alert: ApiDown\n        check: api\n        expr: '!up'\n"
        "      - alert: DbDown\n        check: db\n        expr: '!up'\n")
    return tmp_path / "monitor.yaml"


def assert_clean(text: str, *more: str) -> None:
    for value in (*SECRET_VALUES, *more):
        assert value not in text, f"{value!r} shown in: {text[:3000]}"


@pytest.fixture
async def run_daemon(tmp_path: Path) -> AsyncIterator[Callable[[str], Any]]:
    """Start an in-process daemon on ``checks``; gives (daemon, client)."""
    started: list[tuple[Daemon, asyncio.Task[None], httpx.AsyncClient]] = []

    async def start(checks: str) -> tuple[Daemon, httpx.AsyncClient]:
        webhook = WEBHOOK.format(port=free_port())
        config = load_config(write_config(tmp_path, checks, webhook))
        daemon = Daemon(config)
        task = asyncio.create_task(daemon.run())
        await eventually(lambda: daemon.ready)
        client = httpx.AsyncClient(base_url=f"http://{config.settings.listen}", timeout=5)
        started.append((daemon, task, client))
        await eventually(lambda: all(s.last is not None for s in daemon.statuses.all()))
        return daemon, client

    yield start
    for daemon, task, client in started:
        await client.aclose()
        daemon.stop()
        await asyncio.wait_for(task, 10)


# -- the API and the status page ------------------------------------------------------------------


async def test_checks_api_shows_no_query_cookie_or_body(run_daemon: Callable[[str], Any],
                                                        misbehaving_http: MisbehavingServer) -> None:
    # The target of the finding: secrets in the URL's query, a cookie set, a JSON body with
    # a token. Before: final_url kept the query, set-cookie was shown, and the body too.
    d, client = await run_daemon(leaky_checks(misbehaving_http, "", path="/secret", failing=False))
    await eventually(lambda: (s := d.statuses.get("api")) is not None and s.last is not None and s.last.up)
    answer = await client.get("/api/v1/checks")
    assert_clean(answer.text, SECRET_COOKIE, SECRET_BODY)
    assert "set-cookie" not in answer.text.lower()
    api = {c["name"]: c for c in answer.json()}["api"]["last"]
    assert api["up"] is True
    detail = api["detail"]
    assert detail["final_url"] == misbehaving_http.url("/secret")  # scheme, host, port, path
    assert "body" not in detail and detail["body_bytes"] > 0
    assert detail["headers"]["content-type"] == "application/json"
    assert detail["headers"]["www-authenticate"] == 'Bearer realm="health"'  # a challenge, no credential
    one = await client.get("/api/v1/checks/api")
    assert_clean(one.text, SECRET_COOKIE, SECRET_BODY)
    page = (await client.get("/")).text
    assert_clean(page, SECRET_COOKIE, SECRET_BODY)
    # Rules still see everything: the detail itself is whole.
    last = d.statuses.get("api").last  # type: ignore[union-attr]
    assert last is not None and last.detail["body"]["access_token"] == SECRET_BODY


async def test_expose_body_shows_the_body_with_configured_secrets_redacted(
        run_daemon: Callable[[str], Any], misbehaving_http: MisbehavingServer) -> None:
    d, client = await run_daemon(leaky_checks(misbehaving_http, "", failing=False, extra="    expose_body: true"))
    await eventually(lambda: (s := d.statuses.get("api")) is not None and s.last is not None and s.last.up)
    answer = await client.get("/api/v1/checks/api")
    assert_clean(answer.text)
    body = answer.json()["last"]["detail"]["body"]
    # The echo shows what the target received: the header (redacted, not dropped) and the path.
    assert body["headers"]["x-dash-key"] == "***"
    assert body["target"].startswith("/echo?api_key=***&access_token=***")


async def test_failing_check_error_and_detail_are_clean_in_the_api(run_daemon: Callable[[str], Any],
                                                                   misbehaving_http: MisbehavingServer) -> None:
    d, client = await run_daemon(leaky_checks(misbehaving_http, WEBHOOK.format(port=1), extra="    expose_body: true"))
    await eventually(lambda: all(s.last is not None and not s.last.up for s in d.statuses.all()))
    for path in ("/api/v1/checks", "/", "/api/v1/alerts"):
        assert_clean((await client.get(path)).text)


# -- monitor validate (item: its errors echoed URL query values) ----------------------------------


def test_validate_errors_never_quote_secret_values(tmp_path: Path, misbehaving_http: MisbehavingServer) -> None:
    # A URL that is not http(s) is quoted back by its validator, an invalid DSN by libpq; a
    # check with a credential header has a broken expression next to it.
    bad = f"""
  - name: bad_url
    kind: http
    url: ftp://user:urlpa55word-xyz@127.0.0.1/x?api_key={QUERY_SECRET}&sig2=plain-query-value-987
  - name: bad_cel
    kind: http
    url: http://127.0.0.1/x
    headers: {{X-Dash-Key: {HEADER_SECRET}}}
    expect: {{cel: 'headers["x-dash-key"] == "{HEADER_SECRET}" &&'}}
  - name: bad_dsn
    kind: postgres
    dsn: "postgresql://app:{DB_PASSWORD}@[db/app"
"""
    path = write_config(tmp_path, leaky_checks(misbehaving_http, "") + bad, WEBHOOK.format(port=1))
    done = monitor("validate", "-c", str(path))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 3, done.stderr
    assert_clean(done.stderr + done.stdout, "urlpa55word-xyz", "plain-query-value-987")
    assert any("bad_url.url: url must be http:// or https:// with a host" in line for line in lines)
    # The URL is still recognisable: scheme, host, path, parameter names.
    assert any("ftp://***@127.0.0.1/x?api_key=***&sig2=***" in line for line in lines), lines


# -- monitor check ---------------------------------------------------------------------------------


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_check_output_never_shows_configured_secrets(tmp_path: Path, misbehaving_http: MisbehavingServer,
                                                     as_json: bool) -> None:
    webhook = WEBHOOK.format(port=free_port())
    path = write_config(tmp_path, leaky_checks(misbehaving_http, webhook), webhook)
    for name in ("api", "db"):
        done = monitor("check", name, *(["--json"] if as_json else []), "-c", str(path))
        assert done.returncode == 1, done.stderr
        assert_clean(done.stdout + done.stderr)
    # The body was there to be shown (it is the author's own check), only the secrets are not.
    api = monitor("check", "api", "--json", "-c", str(path))
    echoed = json.loads(api.stdout)["detail"]["body"]
    assert echoed["headers"]["x-dash-key"] == "***"
    assert json.loads(echoed["body"]) == {"notify": "***", "db": "postgresql://***@db/app"}


# -- the log ---------------------------------------------------------------------------------------


@pytest.fixture
def structlog_defaults_after() -> Iterator[None]:
    """configure_logging changes structlog globally; put the defaults back for later tests."""
    yield
    structlog.reset_defaults()


def test_json_log_lines_are_scrubbed(capsys: pytest.CaptureFixture[str], structlog_defaults_after: None) -> None:
    secrets.register([HEADER_SECRET, DB_PASSWORD])
    configure_logging("info", "json")
    log = structlog.get_logger("test")
    try:
        raise ConnectionError(f"server said: bad key {HEADER_SECRET}")
    except ConnectionError:
        log.exception("probe_crashed", check="api", url=f"http://h/x?token={QUERY_SECRET}",
                      detail={"dsn": f"postgresql://app:{DB_PASSWORD}@db/app"}, error=ValueError(HEADER_SECRET))
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    (line,) = [entry for entry in lines if entry["event"] == "probe_crashed"]
    assert_clean(json.dumps(line))
    assert line["url"] == "http://h/x?token=***"
    assert "ConnectionError: server said: bad key ***" in line["exception"]


def test_console_log_lines_are_scrubbed_and_escaped(capsys: pytest.CaptureFixture[str],
                                                    structlog_defaults_after: None) -> None:
    secrets.register([HEADER_SECRET])
    configure_logging("info", "console")
    try:
        raise ConnectionError(f"\x1b[2J{HEADER_SECRET}")
    except ConnectionError:
        structlog.get_logger("test").exception("probe_crashed", error=f"\x1b]0;title\x07{HEADER_SECRET}")
    err = capsys.readouterr().err
    assert HEADER_SECRET not in err and "\x1b[2J" not in err and "\x1b]0;" not in err
    assert "\\x1b[2J***" in err


def test_daemon_json_log_of_failing_checks_is_clean(tmp_path: Path, misbehaving_http: MisbehavingServer) -> None:
    # The whole path as run: failing checks, alerts firing, a webhook that cannot be reached.
    port = free_port()
    webhook = WEBHOOK.format(port=free_port())
    path = write_config(tmp_path, leaky_checks(misbehaving_http, webhook), webhook, port=port, log_json=True)
    proc = subprocess.Popen([*MONITOR, "run", "-c", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, env={**os.environ, "MONITOR_LOG_FORMAT": "json"})
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                alerts = httpx.get(f"http://127.0.0.1:{port}/api/v1/alerts", timeout=1).json()["data"]["alerts"]
                if {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"} == {"ApiDown", "DbDown"}:
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.2)
        else:
            raise AssertionError("alerts never fired")
        time.sleep(1.5)  # a delivery attempt to the closed webhook port
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    events = [json.loads(line)["event"] for line in stderr.splitlines() if line.startswith("{")]
    assert "alert_firing" in events, stderr[-2000:]
    assert_clean(stderr)


def test_result_error_created_before_a_value_is_registered_is_scrubbed_when_shown() -> None:
    # The API scrubs at display time too: a reload can register a value after a result with
    # it was recorded.
    from monitor.check_status import CheckStatuses
    from monitor.core.results import Result
    from monitor.http.views import check_json
    from monitor.probes.http import HttpCheck

    check = HttpCheck.model_validate({"name": "x", "kind": "http", "url": "http://h/", "interval": 10,
                                   "timeout": 5})
    statuses = CheckStatuses()
    statuses.configure([check])
    statuses.record("x", Result.failed(f"target said {HEADER_SECRET}", detail={"headers": {"x": HEADER_SECRET}}))
    secrets.register([HEADER_SECRET])
    status = statuses.get("x")
    assert status is not None
    shown = json.dumps(check_json(status))
    assert HEADER_SECRET not in shown and "target said ***" in shown
