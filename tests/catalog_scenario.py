"""A shipped catalog against a simulated system, through the daemon's own stages on a fake clock.

The daemon is built as ``monitor run`` builds it (``Daemon(config)``), with the probe
environment's clock replaced by a ``FakeClock``, and started as ``Daemon.run`` starts it,
minus the HTTP server and the scheduler: instead of the scheduler, ``advance`` moves the
clock and runs every check that is due with the real probe (``run_check``), handing each
result to the daemon's own ``_on_result`` (SLO counts, rule engine, store writer, notifier).
The notifier's routing, grouping and outbox then deliver over HTTP to local Slack and
PagerDuty sinks, so what is counted is what a receiver would have received.

The simulated system: an HTTP service whose health endpoint is healthy or broken on command,
and a real PostgreSQL database (a unique one per scenario) that can refuse connections.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest

import monitor.daemon
from monitor.config.loader import load_config
from monitor.core.clock import FakeClock
from monitor.core.records import MinuteCount
from monitor.daemon import Daemon
from monitor.probes.base import CheckBase, ProbeEnv
from monitor.scheduling.runner import run_check
from tests.receiver_sink import Received, ReceiverSink

ROOT = Path(__file__).resolve().parent.parent
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
# Every field the catalogs' health checks expect of a healthy answer.
HEALTHY = {"status": "healthy", "services": {"redis": "healthy", "database": "healthy"}}


class SimulatedService:
    """Answers every GET with ``HEALTHY`` (200) while healthy, 503 while broken."""

    def __init__(self) -> None:
        self.broken = False
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                status, body = (503, {"status": "unhealthy"}) if service.broken else (200, HEALTHY)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Database:
    """A unique real PostgreSQL database that can be made to refuse connections."""

    def __init__(self) -> None:
        self.name = f"monitor_scenario_{uuid.uuid4().hex[:12]}"
        self._admin(f'CREATE DATABASE "{self.name}"')

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:5432/{self.name}"

    def _admin(self, *statements: str) -> None:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)

    def refuse(self, refuse: bool) -> None:
        self._admin(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS {"false" if refuse else "true"}')

    def drop(self) -> None:
        self._admin(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true',
                    f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


MAIN = """global:
  state: sqlite:///{state}
  external_url: http://monitor.example:9464
check_files: [{checks}]
rule_files: [{rules}]
route:
  receiver: slack
  group_by: [alertname, check]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
  routes:
    - matchers: ['severity="critical"']
      receiver: pagerduty
      continue: true
    - receiver: slack
receivers:
  - name: slack
    slack_configs: [{{api_url: '{slack}'}}]
  - name: pagerduty
    pagerduty_configs: [{{routing_key: scenario-routing-key, url: '{pagerduty}'}}]
"""


@dataclass(frozen=True)
class Page:
    """One message a receiver got: when (on the fake clock), to whom, firing or resolved, what."""

    at: float
    receiver: str
    status: str
    alertnames: tuple[str, ...]


class Scenario:
    def __init__(self, daemon: Daemon, clock: FakeClock, checks: list[CheckBase], slack: ReceiverSink,
                 pagerduty: ReceiverSink, service: SimulatedService, database: Database) -> None:
        self.daemon, self.clock, self.checks = daemon, clock, checks
        self.slack, self.pagerduty = slack, pagerduty
        self.service, self.database = service, database
        self.start = clock.time()
        self._next_run = {c.name: clock.time() for c in checks}
        self._seen = {"slack": 0, "pagerduty": 0}
        self.pages: list[Page] = []

    async def advance(self, seconds: float, step: float = 15.0) -> None:
        """Move the clock ``seconds`` on, running each check when it is due and delivering
        whatever becomes due, as the running daemon would."""
        end = self.clock.time() + seconds
        while self.clock.time() < end:
            now = self.clock.time()
            due = [c for c in self.checks if self._next_run[c.name] <= now]
            results = await asyncio.gather(*(run_check(c, self.daemon.env) for c in due))
            for check, result in zip(due, results):
                self._next_run[check.name] = now + check.interval
                self.daemon.statuses.record(check.name, result)
                self.daemon._on_result(check, result)
            self.daemon._hand_on(self.daemon.staleness.sweep())
            self.daemon.notifier.flush()
            await self._delivered()
            self.clock.advance(step)

    async def _delivered(self) -> None:
        """Wait (real time, bounded) until the writer and the outbox have nothing left."""
        deadline = time.monotonic() + 20.0
        while self.daemon.writer.backlog or self.daemon.outbox.waiting():
            assert time.monotonic() < deadline, f"undelivered: {self.daemon.outbox.waiting()}"
            await asyncio.sleep(0.01)
        for name, sink in (("slack", self.slack), ("pagerduty", self.pagerduty)):
            got = sink.accepted()
            for received in got[self._seen[name]:]:
                self.pages.append(_page(self.clock.time(), name, received))
            self._seen[name] = len(got)

    def since(self, start: float) -> list[Page]:
        return [p for p in self.pages if p.at >= start]

    def summary(self, pages: list[Page] | None = None) -> list[tuple[int, str, str, tuple[str, ...]]]:
        """(minute since start, receiver, status, alertnames): readable in an assertion diff."""
        return [(int((p.at - self.start) // 60), p.receiver, p.status, p.alertnames) for p in (pages or self.pages)]


def _page(at: float, receiver: str, received: Received) -> Page:
    body = received.json
    if receiver == "pagerduty":
        status = "firing" if body["event_action"] == "trigger" else "resolved"
        names: tuple[str, ...] = ()
        if status == "firing":
            names = tuple(sorted({a["labels"]["alertname"] for a in body["payload"]["custom_details"]["firing"]}))
        return Page(at, receiver, status, names or (body["dedup_key"][:8],))
    status = "firing" if body["attachments"][0]["color"] != "#2e7d32" else "resolved"
    header = body["blocks"][0]["text"]["text"]
    return Page(at, receiver, status, (header.split(" ", 2)[2].split(" ")[0],))


@asynccontextmanager
async def catalog_scenario(system: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keep: set[str],
                           env: dict[str, str]) -> AsyncIterator[Scenario]:
    """The catalog's own files with only the checks in ``keep``, every variable in ``env`` set
    (``{service}`` and ``{database}`` stand for the simulated endpoints), local sinks, and
    the daemon started on a fake clock."""
    service, database = SimulatedService(), Database()
    slack, pagerduty = ReceiverSink().start(), ReceiverSink().start()
    try:
        clock = FakeClock(1_800_000_000.0)
        main = tmp_path / "monitor.yaml"
        main.write_text(MAIN.format(state=tmp_path / "state.db",
                                    checks=json.dumps(str(ROOT / "checks" / f"{system}.yaml")),
                                    rules=json.dumps(str(ROOT / "alert_rules" / f"{system}.yaml")),
                                    slack=slack.url("/slack"), pagerduty=pagerduty.url("/pagerduty")),
                        encoding="utf-8")
        for name, value in env.items():
            monkeypatch.setenv(name, value.format(service=service.url, database=database.dsn))
        monkeypatch.setattr(monitor.daemon, "ProbeEnv", lambda: ProbeEnv(clock=clock))
        config = load_config(main)
        unknown = keep - {c.name for c in config.checks}
        assert not unknown, f"not in the catalog: {unknown}"
        config = dataclasses.replace(config, checks=[c for c in config.checks if c.name in keep])
        daemon = Daemon(config)
        await _start(daemon)
        try:
            yield Scenario(daemon, clock, config.checks, slack, pagerduty, service, database)
        finally:
            await _stop(daemon)
    finally:
        slack.stop()
        pagerduty.stop()
        service.stop()
        database.drop()


async def _start(daemon: Daemon) -> None:
    """Daemon.run's start-up, without the HTTP server and the scheduler; checks with an SLO
    find a month of healthy minutes in the store, as a system monitored for a while would
    (a fresh tracker would read one failed minute as the whole budget spent)."""
    await daemon.store.open()
    now_minute = int(daemon.env.clock.time() // 60)
    for check in daemon.config.checks:
        if check.slo is not None:
            minutes = int(check.slo.window // 60)
            per_minute = max(1, round(60 / check.interval))
            await daemon.store.add_counts(check.name, [MinuteCount(m, per_minute, per_minute)
                                                       for m in range(now_minute - minutes, now_minute)])
    daemon.engine.restore(await daemon.store.load_alerts())
    daemon.writer.start()
    daemon._route(daemon.config)
    await daemon.notifier.start(daemon.store, daemon.engine.firing())
    daemon._bind(daemon.config)
    await daemon.slos.load()


async def _stop(daemon: Daemon) -> None:
    await daemon.notifier.stop(2.0)
    await daemon.writer.stop(2.0)
    await daemon.store.close()
    await daemon.env.close()
