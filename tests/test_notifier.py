"""The notification pipeline in one process: engine events → dispatcher → store → outbox →
a local receiver. Inhibition, silences, `continue` fan-out and reloads, as delivered."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from monitor.alerting.config import AlertingConfig
from monitor.alerting.matchers import parse_matchers
from monitor.alerting.notifier import Notifier
from monitor.alerting.outbox import DeliveryMetrics, Outbox
from monitor.alerting.silences import Silence, SilenceBook
from monitor.rules.alerts import Transition, fingerprint
from monitor.rules.engine import AlertEvent
from monitor.core.records import AlertRecord
from monitor.store.sqlite import SqliteStore
from monitor.store.writer import StateWriter
from tests.receiver_sink import ReceiverSink

CONFIG = """
route:
  receiver: api-team
  group_by: [alertname, env]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
  routes:
    - matchers: ['alertname="DatabaseDown"']
      receiver: db-team
      continue: true
    - matchers: ['alertname="DatabaseDown"']
      receiver: api-team
inhibit_rules:
  - source_matchers: ['alertname="DatabaseDown"']
    target_matchers: ['alertname="ApiDown"']
    equal: [env]
receivers:
  - name: api-team
    webhook_configs: [{{url: '{sink}/api'}}]
  - name: db-team
    webhook_configs: [{{url: '{sink}/db'}}]
"""


@dataclass
class Pipeline:
    notifier: Notifier
    silences: SilenceBook
    sink: ReceiverSink
    config: AlertingConfig

    def fire(self, alertname: str, **labels: str) -> AlertRecord:
        full = {"alertname": alertname, "check": "api", "severity": "critical", **labels}
        record = AlertRecord(fingerprint=fingerprint(full), alertname=alertname, check="api", state="firing",
                             labels=full, annotations={"summary": f"{alertname} {labels}"}, active_at=time.time(),
                             fired_at=time.time())
        self.notifier.on_event(AlertEvent(Transition.FIRING, record, time.time()))
        return record

    def resolve(self, record: AlertRecord) -> None:
        self.notifier.on_event(AlertEvent(Transition.RESOLVED, record, time.time()))

    def delivered(self, path: str) -> list[tuple[str, list[str]]]:
        """(status, [alertname/env of each alert]) per accepted webhook post to ``path``."""
        return [(r.json["status"], [f'{a["labels"]["alertname"]}/{a["labels"].get("env", "")}:{a["status"]}'
                                    for a in r.json["alerts"]]) for r in self.sink.accepted(path)]


async def eventually(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.fixture
def sink() -> Iterator[ReceiverSink]:
    with ReceiverSink() as server:
        yield server


@pytest.fixture
async def pipeline(tmp_path: Path, sink: ReceiverSink) -> AsyncIterator[Pipeline]:
    store = SqliteStore(str(tmp_path / "state.db"))
    await store.open()
    writer = StateWriter(store)
    writer.start()
    silences = SilenceBook()
    config = AlertingConfig.model_validate(yaml.safe_load(CONFIG.format(sink=sink.url(""))))
    notifier = Notifier(silences, Outbox(store, DeliveryMetrics.create(CollectorRegistry())), writer)
    notifier.configure(config, [])
    await notifier.start(store, [])
    try:
        yield Pipeline(notifier, silences, sink, config)
    finally:
        await notifier.stop()
        await writer.stop()
        await store.close()


async def test_database_down_inhibits_api_alerts_of_the_same_env_only(pipeline: Pipeline) -> None:
    pipeline.fire("DatabaseDown", env="prod")
    await eventually(lambda: pipeline.delivered("/db"))
    pipeline.fire("ApiDown", env="prod")  # explained by the database: muted
    pipeline.fire("ApiDown", env="staging")  # a different env: pages
    await eventually(lambda: len(pipeline.delivered("/api")) >= 2)
    await asyncio.sleep(1.5)  # a further group interval: still nothing about prod's API
    assert pipeline.delivered("/db") == [("firing", ["DatabaseDown/prod:firing"])]
    # `continue: true` fanned DatabaseDown out to both teams; ApiDown/prod never went anywhere.
    assert sorted(pipeline.delivered("/api")) == [("firing", ["ApiDown/staging:firing"]),
                                                  ("firing", ["DatabaseDown/prod:firing"])]


async def test_silenced_alert_is_told_once_the_silence_ends(pipeline: Pipeline) -> None:
    now = time.time()
    silence = Silence(matchers=tuple(parse_matchers('{alertname="ApiDown", env=~"pro.*"}')),
                      starts_at=now - 1, ends_at=now + 3600, created_by="test", comment="deploy")
    silence_id = pipeline.silences.add(silence, now)
    pipeline.fire("ApiDown", env="prod")
    await asyncio.sleep(1.5)
    assert pipeline.delivered("/api") == []
    pipeline.silences.expire(silence_id, time.time())
    await eventually(lambda: pipeline.delivered("/api"), timeout=5)
    assert pipeline.delivered("/api") == [("firing", ["ApiDown/prod:firing"])]


async def test_resolve_is_told_once_and_a_reload_repeats_nothing(pipeline: Pipeline) -> None:
    record = pipeline.fire("ApiDown", env="prod")
    await eventually(lambda: pipeline.delivered("/api"))
    # A reload (same config) rebuilds the dispatcher from its records: no second page.
    pipeline.notifier.configure(pipeline.config, [record])
    await asyncio.sleep(1.5)
    assert len(pipeline.delivered("/api")) == 1
    pipeline.resolve(record)
    await eventually(lambda: len(pipeline.delivered("/api")) == 2)
    await asyncio.sleep(1.5)
    assert pipeline.delivered("/api") == [("firing", ["ApiDown/prod:firing"]),
                                          ("resolved", ["ApiDown/prod:resolved"])]


async def test_alertmanager_forwarding_is_resent_while_firing_and_stops_after_resolve(
        tmp_path: Path, sink: ReceiverSink, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("monitor.alerting.notifier.RESEND_INTERVAL", 0.3)
    store = SqliteStore(str(tmp_path / "am.db"))
    await store.open()
    writer = StateWriter(store)
    writer.start()
    config = AlertingConfig.model_validate(yaml.safe_load(f"""
route: {{receiver: am, group_wait: 0s, group_interval: 1s, repeat_interval: 1h}}
receivers: [{{name: am, alertmanager_configs: [{{url: '{sink.url("/am")}'}}]}}]
"""))
    notifier = Notifier(SilenceBook(), Outbox(store, DeliveryMetrics.create(CollectorRegistry())), writer)
    notifier.configure(config, [])
    await notifier.start(store, [])
    pipeline = Pipeline(notifier, SilenceBook(), sink, config)
    try:
        record = pipeline.fire("ApiDown", env="prod")
        await eventually(lambda: len(sink.accepted("/am/api/v2/alerts")) >= 3)
        posts = [r.json for r in sink.accepted("/am/api/v2/alerts")]
        for body in posts:
            (alert,) = body
            assert alert["labels"]["alertname"] == "ApiDown"
            # Firing, and valid for minutes: an Alertmanager that stops hearing resolves it.
            ends = datetime.fromisoformat(alert["endsAt"].replace("Z", "+00:00")).timestamp()
            assert time.time() + 200 < ends < time.time() + 250
        resolved_at = time.time()
        pipeline.resolve(record)
        await eventually(lambda: any(
            datetime.fromisoformat(r.json[0]["endsAt"].replace("Z", "+00:00")).timestamp() < resolved_at + 5
            for r in sink.accepted("/am/api/v2/alerts")))
        await asyncio.sleep(0.5)
        count = len(sink.accepted("/am/api/v2/alerts"))
        await asyncio.sleep(1.0)  # three resend periods: nothing more about a resolved alert
        assert len(sink.accepted("/am/api/v2/alerts")) == count
    finally:
        await notifier.stop()
        await writer.stop()
        await store.close()
