"""The SNS receiver against moto in server mode (tests/moto_server.py), a real HTTP endpoint
that speaks SNS and SQS: what a subscribed SQS queue receives, through the outbox, through the
real daemon across an endpoint outage, and from ``monitor notify-test``; and a permanent
error (no such topic) failing once instead of being retried forever."""

from __future__ import annotations

import asyncio
import json
import socket
import socketserver
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any

import boto3
import pytest
from prometheus_client import CollectorRegistry

from monitor.alerting.integrations import Target
from monitor.alerting.model import Alert, Notification
from monitor.alerting.outbox import DeliveryMetrics, Outbox
from monitor.alerting.receivers.sns import SnsIntegration
from monitor.core.records import OutboxEntry, StateChange
from monitor.store.sqlite import SqliteStore
from tests.moto_server import free_port
from tests.test_alert_restart import alerts, daemon_runs, wait

REGION = "us-east-1"
DEADLINE = 30.0  # a bound on a loaded machine, not a speed claim


# ---- moto helpers ----------------------------------------------------------------------------

def aws(service: str, endpoint: str) -> Any:
    return boto3.client(service, region_name=REGION, endpoint_url=endpoint)  # type: ignore[call-overload]


def topic_with_queue(endpoint: str) -> tuple[str, str]:
    """A fresh topic and an SQS queue subscribed to it: (topic ARN, queue URL)."""
    name = f"alerts-{uuid.uuid4().hex[:12]}"
    topic = aws("sns", endpoint).create_topic(Name=name)["TopicArn"]
    sqs = aws("sqs", endpoint)
    queue = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws("sns", endpoint).subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    return topic, queue


def received(endpoint: str, queue: str, want: int, timeout: float = DEADLINE) -> list[dict[str, Any]]:
    """SNS envelopes (Subject, Message, MessageAttributes) from the queue, waiting for ``want``
    of them, then one more short poll so that a duplicate would show."""
    sqs = aws("sqs", endpoint)
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        answer = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in answer.get("Messages", []):
            got.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        if len(got) >= want and not answer.get("Messages"):
            return got
        assert time.monotonic() < deadline, f"{len(got)} of {want} messages after {timeout:g}s: {got}"


# ---- a port that is dead until told to forward ----------------------------------------------

class Forwarder(socketserver.ThreadingTCPServer):
    """Listens on ``port`` once started and pipes every connection to ``target``: an SNS
    endpoint that is down (connection refused) and then comes back at the same address."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.target = target
        super().__init__(("127.0.0.1", port), _Pipe, bind_and_activate=False)

    def open(self) -> Forwarder:
        self.server_bind()
        self.server_activate()
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        return self


class _Pipe(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        assert isinstance(self.server, Forwarder)
        with closing(socket.create_connection(self.server.target, timeout=10)) as upstream:
            def pump(src: socket.socket, dst: socket.socket) -> None:
                try:
                    while data := src.recv(65536):
                        dst.sendall(data)
                except OSError:
                    pass
                finally:
                    try:
                        dst.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass

            back = threading.Thread(target=pump, args=(upstream, self.request), daemon=True)
            back.start()
            pump(self.request, upstream)
            back.join(10)


def moto_address(endpoint: str) -> tuple[str, int]:
    host, port = endpoint.removeprefix("http://").split(":")
    return host, int(port)


# ---- through the outbox ----------------------------------------------------------------------

@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    db = SqliteStore(str(tmp_path / "state.db"))
    await db.open()
    try:
        yield db
    finally:
        await db.close()


def notification(resolved: bool) -> Notification:
    start = time.time() - 120
    alert = Alert(fingerprint="fp-api", labels={"alertname": "ApiDown", "check": "api_health", "severity": "critical"},
                  annotations={"summary": "API health check failing"}, starts_at=start,
                  ends_at=start + 60 if resolved else None, value=503.0)
    return Notification(receiver="oncall", group_key='{}:{alertname="ApiDown"}', group_labels={"alertname": "ApiDown"},
                        alerts=[alert])


def entry(key: str, seq: int, target: Target, resolved: bool = False) -> OutboxEntry:
    return OutboxEntry(id=f"ob-{key}", seq=seq, target=target.name, payload=notification(resolved).to_record(),
                       created_at=time.time())


def finished(store: SqliteStore) -> dict[str, tuple[str, int, str]]:
    with closing(sqlite3.connect(store.path, timeout=5)) as conn:
        rows = conn.execute("SELECT id, outcome, attempts, last_error FROM outbox WHERE done_at IS NOT NULL")
        return {row[0]: (row[1], row[2], row[3]) for row in rows.fetchall()}


async def run_outbox(store: SqliteStore, target: Target, *entries: OutboxEntry) -> CollectorRegistry:
    registry = CollectorRegistry()
    box = Outbox(store, DeliveryMetrics.create(registry))
    box.configure([target])
    await box.start()
    try:
        await store.commit(StateChange(outbox=list(entries)))
        box.add(list(entries))
        deadline = time.monotonic() + DEADLINE
        while sum(count for _, count, _ in box.waiting()) or box.unpersisted:
            assert time.monotonic() < deadline, "the outbox did not drain"
            await asyncio.sleep(0.02)
    finally:
        await box.stop(grace=2.0)
    return registry


def sns_target(integration: SnsIntegration) -> Target:
    return Target(name="oncall/sns_configs/0", receiver="oncall", integration=integration)


async def test_firing_and_resolved_reach_a_subscribed_queue(moto_endpoint: str, store: SqliteStore) -> None:
    topic, queue = topic_with_queue(moto_endpoint)
    target = sns_target(SnsIntegration(region=REGION, endpoint_url=moto_endpoint, topic_arn=topic,
                                       attributes={"team": "ops"}, timeout=10))
    registry = await run_outbox(store, target, entry("fire", 1, target), entry("resolve", 2, target, resolved=True))

    assert finished(store) == {"ob-fire": ("delivered", 0, ""), "ob-resolve": ("delivered", 0, "")}
    assert registry.get_sample_value("monitor_notifications_total", {
        "receiver": "oncall", "integration": "sns", "outcome": "delivered"}) == 2
    first, second = received(moto_endpoint, queue, want=2)
    assert first["TopicArn"] == topic
    assert first["Subject"] == "[FIRING:1] ApiDown"
    assert "Alerts Firing:" in first["Message"] and " - check = api_health" in first["Message"]
    assert first["MessageAttributes"]["team"] == {"Type": "String", "Value": "ops"}
    assert second["Subject"] == "[RESOLVED] ApiDown"
    assert "Alerts Resolved:" in second["Message"] and "Ended: " in second["Message"]


async def test_a_missing_topic_fails_once_and_is_not_retried(moto_endpoint: str, store: SqliteStore) -> None:
    topic, queue = topic_with_queue(moto_endpoint)
    missing = topic + "-deleted"
    bad = sns_target(SnsIntegration(region=REGION, endpoint_url=moto_endpoint, topic_arn=missing, timeout=10))
    registry = await run_outbox(store, bad, entry("lost", 1, bad))

    outcome, attempts, error = finished(store)["ob-lost"]
    assert (outcome, attempts) == ("failed", 0)
    assert "NotFound" in error
    assert registry.get_sample_value("monitor_notifications_total", {
        "receiver": "oncall", "integration": "sns", "outcome": "retried"}) is None
    assert await store.load_outbox() == []


async def test_a_refused_connection_is_temporary(store: SqliteStore, moto_endpoint: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    integration = SnsIntegration(region=REGION, endpoint_url=dead, topic_arn="arn:aws:sns:us-east-1:123456789012:x",
                                 timeout=3)
    from monitor.alerting.receivers import DeliveryError

    with pytest.raises(DeliveryError) as err:
        await integration.notify(notification(False), client=None)  # type: ignore[arg-type]
    assert not err.value.permanent
    assert "EndpointConnectionError" in str(err.value) or "Timeout" in str(err.value)


# ---- the real daemon, across an outage of the endpoint ---------------------------------------

def write_daemon_config(tmp_path: Path, port: int, sns_port: int, topic: str, flag: Path) -> None:
    (tmp_path / "main.yaml").write_text(
        f"global: {{listen: '127.0.0.1:{port}', state: 'sqlite:///{tmp_path}/state.db'}}\n"
        "check_files: [checks.yaml]\nrule_files: [rules.yaml]\n"
        "route: {receiver: aws, group_by: [alertname], group_wait: 0s, group_interval: 1s, repeat_interval: 1h}\n"
        "receivers:\n"
        "  - name: aws\n"
        "    sns_configs:\n"
        f"      - {{topic_arn: '{topic}', api_url: 'http://127.0.0.1:{sns_port}', timeout: 3s,"
        " sigv4: {region: us-east-1}}\n")
    (tmp_path / "checks.yaml").write_text(
        f"checks:\n  - {{name: nightly_export, kind: file, path: '{flag}', interval: 1s, timeout: 1s}}\n")
    (tmp_path / "rules.yaml").write_text(
        "groups:\n  - name: export\n    rules:\n"
        "      - {alert: ExportMissing, check: nightly_export, expr: '!up', labels: {severity: critical},"
        " annotations: {summary: 'the nightly export file is missing'}}\n")


def test_the_daemon_delivers_firing_and_resolved_after_an_endpoint_outage(tmp_path: Path, moto_endpoint: str) -> None:
    topic, queue = topic_with_queue(moto_endpoint)
    flag = tmp_path / "export.done"
    port, sns_port = free_port(), free_port()
    write_daemon_config(tmp_path, port, sns_port, topic, flag)
    forwarder = Forwarder(sns_port, moto_address(moto_endpoint))
    with daemon_runs(tmp_path, port) as start_next:
        daemon = start_next()
        wait(lambda: alerts(daemon).get("ExportMissing", {}).get("state") == "firing", daemon)
        # The SNS endpoint is down: the firing notification is retried, not lost.
        wait(lambda: sum(e["event"] == "notification_retry" for e in daemon.events()) >= 2, daemon)
        retry = next(e for e in daemon.events() if e["event"] == "notification_retry")
        assert retry["integration"] == "sns" and "EndpointConnectionError" in retry["error"]
        with forwarder.open():
            (firing,) = received(moto_endpoint, queue, want=1, timeout=60)
            assert firing["Subject"] == "[FIRING:1] ExportMissing"
            assert "the nightly export file is missing" in firing["Message"]

            flag.write_text("done")
            wait(lambda: "ExportMissing" not in alerts(daemon), daemon)
            (resolved,) = received(moto_endpoint, queue, want=1)
            assert resolved["Subject"] == "[RESOLVED] ExportMissing"
            delivered = [e for e in daemon.events() if e["event"] == "notification_delivered"]
            assert [e["status"] for e in delivered] == ["firing", "resolved"]
            forwarder.shutdown()


# ---- monitor notify-test ---------------------------------------------------------------------

def test_notify_test_delivers_to_sns(tmp_path: Path, moto_endpoint: str) -> None:
    topic, queue = topic_with_queue(moto_endpoint)
    (tmp_path / "main.yaml").write_text(
        "receivers:\n  - name: aws\n    sns_configs:\n"
        f"      - {{topic_arn: '{topic}', api_url: '{moto_endpoint}'}}\n"
        f"      - {{topic_arn: '{topic}-gone', api_url: '{moto_endpoint}'}}\n")
    monitor = Path(sys.executable).parent / "monitor"
    done = subprocess.run([str(monitor), "notify-test", "aws", "-c", str(tmp_path / "main.yaml")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == ["aws/sns_configs/0: firing: delivered", "aws/sns_configs/0: resolve: delivered"]
    assert lines[2].startswith("aws/sns_configs/1: firing: FAILED (permanent): SNS Publish failed: NotFound: ")
    assert len(lines) == 3  # no resolve for a firing message that did not arrive
    messages = received(moto_endpoint, queue, want=2)
    assert [m["Subject"] for m in messages] == ["[FIRING:1] MonitorNotifyTest", "[RESOLVED] MonitorNotifyTest"]

