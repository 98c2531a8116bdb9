"""Alertmanager's simple example (tests/alertmanager/simple.yml, written from the fields its
doc/examples/simple.yml documents) loads unchanged, routes as it promises, and delivers:
mail through a local SMTP server (STARTTLS, AUTH) and pages through a local PagerDuty v1 sink."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.alerting.notifier import Notifier
from monitor.alerting.outbox import DeliveryMetrics, Outbox
from monitor.alerting.routing import RoutingTree
from monitor.alerting.silences import SilenceBook
from monitor.cli.main import main
from monitor.config.loader import load_config
from monitor.core.records import AlertRecord
from monitor.rules.alerts import Transition, fingerprint
from monitor.rules.engine import AlertEvent
from monitor.store.sqlite import SqliteStore
from monitor.store.writer import StateWriter
from prometheus_client import CollectorRegistry
from tests.receiver_sink import ReceiverSink
from tests.smtp_server import MailServer

SIMPLE = Path(__file__).parent / "alertmanager" / "simple.yml"


def test_it_loads_unchanged_with_one_warning_and_strict_validate_fails_on_it(
        capsys: pytest.CaptureFixture[str]) -> None:
    config = load_config(SIMPLE, environ={})
    assert [r.name for r in config.alerting.receivers] == [
        "team-X-mails", "team-X-pager", "team-Y-mails", "team-Y-pager", "team-DB-pager"]
    # Global SMTP settings reached every email entry; the service keys select Events API v1.
    mail = config.alerting.receivers[1].email_configs[0]
    assert (mail.smarthost, mail.from_, mail.auth_username, mail.require_tls) == (
        "localhost:25", "alertmanager@example.org", "alertmanager", True)
    assert config.alerting.receivers[1].pagerduty_configs[0].events_v1
    assert [(w.line, w.message) for w in config.warnings] == [
        (_line("tracing:"), "tracing is not supported here; no traces are exported")]
    assert main(["validate", "-c", str(SIMPLE)]) == 0
    assert main(["validate", "--strict", "-c", str(SIMPLE)]) == 2
    err = capsys.readouterr().err
    assert f"{SIMPLE}:{_line('tracing:')}: warning: tracing is not supported" in err and "(--strict)" in err


def _line(text: str) -> int:
    return next(i for i, line in enumerate(SIMPLE.read_text().splitlines(), 1) if line.startswith(text))


@pytest.mark.parametrize(("labels", "receivers"), [
    ({"service": "foo1", "severity": "warning"}, ["team-X-mails"]),
    ({"service": "baz", "severity": "critical"}, ["team-X-pager"]),
    ({"service": "files", "severity": "warning"}, ["team-Y-mails"]),
    ({"service": "files", "severity": "critical"}, ["team-Y-pager"]),
    ({"service": "database"}, ["team-DB-pager"]),
    ({"service": "database", "owner": "team-X"}, ["team-X-pager"]),
    ({"service": "database", "owner": "team-Y"}, ["team-Y-pager"]),
    ({"service": "foo3"}, ["team-X-mails"]),  # match_re is anchored: foo3 is nobody's but the root's
])
def test_the_routing_it_promises(labels: dict[str, str], receivers: list[str]) -> None:
    tree = RoutingTree.from_config(load_config(SIMPLE, environ={}).alerting)
    assert tree is not None
    assert [route.receiver for route in tree.match({"alertname": "A", **labels})] == receivers


async def test_it_delivers_mail_and_pages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with MailServer(mechanisms=["PLAIN", "LOGIN"]) as smtp, ReceiverSink(pagerduty_v1=True) as pagerduty:
        # Two things differ from the file: where localhost:25 listens (a free port), and where
        # the v1 endpoint is (the local sink). The system CAs trust the test CA, as a real
        # relay's certificate would be trusted.
        path = tmp_path / "alertmanager.yml"
        path.write_text(SIMPLE.read_text().replace("'localhost:25'", f"'localhost:{smtp.port}'"))
        monkeypatch.setenv("SSL_CERT_FILE", smtp.ca_file(tmp_path))
        monkeypatch.setattr("monitor.alerting.receivers.pagerduty.V1_URL", pagerduty.url("/v1"))
        config = load_config(path, environ={})

        now = [time.time()]
        store = SqliteStore(str(tmp_path / "state.db"))
        await store.open()
        writer = StateWriter(store)
        writer.start()
        notifier = Notifier(SilenceBook(), Outbox(store, DeliveryMetrics.create(CollectorRegistry())), writer,
                            now=lambda: now[0])
        notifier.configure(config.alerting, [])
        await notifier.start(store, [])
        fire = _firing(notifier, now)
        try:
            fire("HighLatency", service="foo1", severity="warning", cluster="eu")
            fire("DiskFull", service="foo2", severity="critical", cluster="eu")
            fire("ReplicationLag", service="database", owner="team-Y", cluster="eu", database="main")
            fire("FilesSlow", service="files", severity="warning", cluster="eu")  # inhibited by the next
            fire("FilesSlow", service="files", severity="critical", cluster="eu")
            notifier.flush()
            await asyncio.sleep(0.3)
            assert smtp.mails == [] and pagerduty.received == []  # group_wait: 30s
            now[0] += 31
            notifier.flush()
            await _eventually(lambda: len(smtp.mails) >= 2 and len(pagerduty.accepted("/v1")) >= 3)
            await asyncio.sleep(0.5)  # nothing else arrives
        finally:
            await notifier.stop()
            await writer.stop()
            await store.close()

    mails = {tuple(m.recipients): m for m in smtp.mails}
    assert sorted(mails) == [("team-X+alerts-critical@example.org",), ("team-X+alerts@example.org",)]
    for mail in mails.values():
        assert mail.tls and mail.auth is not None and mail.auth[1] == "alertmanager"
        assert mail.sender == "alertmanager@example.org"
    assert mails[("team-X+alerts@example.org",)].message["Subject"] == "[FIRING:1] HighLatency eu foo1"
    assert "DiskFull" in mails[("team-X+alerts-critical@example.org",)].part("text/plain")
    pages = sorted((r.json["service_key"], r.json["description"].split(":")[1]) for r in pagerduty.accepted("/v1"))
    assert pages == [("<team-X-key>", "1] DiskFull eu foo2"), ("<team-Y-key>", "1] FilesSlow eu files"),
                     ("<team-Y-key>", "1] ReplicationLag eu main")]
    assert all(r.json["event_type"] == "trigger" for r in pagerduty.accepted("/v1"))
    assert len(pagerduty.received) == 3  # and the sink accepted each as a valid v1 event


def _firing(notifier: Notifier, now: list[float]) -> Callable[..., None]:
    def fire(alertname: str, **labels: str) -> None:
        full = {"alertname": alertname, **labels}
        record = AlertRecord(fingerprint=fingerprint(full), alertname=alertname, check="", state="firing",
                             labels=full, annotations={"summary": f"{alertname} in {labels.get('cluster')}"},
                             active_at=now[0], fired_at=now[0])
        notifier.on_event(AlertEvent(Transition.FIRING, record, now[0]))
    return fire


async def _eventually(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "not delivered in time"
        await asyncio.sleep(0.05)
