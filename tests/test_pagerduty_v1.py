"""PagerDuty's Events API v1 (``service_key``), against the local sink answering as v1 does."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from monitor.alerting.config import AlertingConfig
from monitor.alerting.integrations import build_targets
from monitor.alerting.model import Alert, Notification
from monitor.alerting.receivers import DeliveryError, PagerDutyIntegration
from monitor.alerting.receivers.pagerduty import V1_URL, dedup_key
from tests.receiver_sink import ReceiverSink

SERVICE_KEY = "5e4v1ce0key0123456789abcdef01234"


def group(*, resolved: bool = False) -> Notification:
    alert = Alert(fingerprint="f1", labels={"alertname": "DiskFull", "check": "disk_root", "severity": "critical"},
                  annotations={"summary": "Disk 97% full"}, starts_at=time.time() - 60,
                  ends_at=time.time() if resolved else None, value=97.0)
    return Notification(receiver="db-pager", group_key='{}:{alertname="DiskFull"}', group_labels={"alertname": "DiskFull"},
                        alerts=[alert], external_url="http://monitor.example.org")


def pagerduty(entry: dict[str, Any], **glob: Any) -> PagerDutyIntegration:
    config = AlertingConfig.model_validate({"global": glob, "receivers": [{"name": "db-pager", "pagerduty_configs": [entry]}]})
    integration = build_targets(config)["db-pager"][0].integration
    assert isinstance(integration, PagerDutyIntegration)
    return integration


async def send(integration: PagerDutyIntegration, notification: Notification) -> None:
    async with httpx.AsyncClient() as client:
        await integration.notify(notification, client)


@pytest.fixture
def sink() -> Iterator[ReceiverSink]:
    with ReceiverSink(pagerduty_v1=True) as server:
        yield server


async def test_trigger_then_resolve_share_the_incident_key(sink: ReceiverSink) -> None:
    integration = pagerduty({"service_key": SERVICE_KEY, "url": sink.url("/v1")})
    await send(integration, group())
    await send(integration, group(resolved=True))
    trigger, resolve = (r.json for r in sink.accepted("/v1"))
    key = dedup_key("db-pager", '{}:{alertname="DiskFull"}')
    assert {k: trigger[k] for k in ("service_key", "event_type", "incident_key", "client", "client_url")} == {
        "service_key": SERVICE_KEY, "event_type": "trigger", "incident_key": key, "client": "monitor",
        "client_url": "http://monitor.example.org"}
    assert trigger["description"] == "[FIRING:1] DiskFull: Disk 97% full"
    assert trigger["details"]["num_firing"] == 1 and trigger["details"]["firing"][0]["value"] == "97"
    assert "routing_key" not in trigger and "event_action" not in trigger
    assert resolve["event_type"] == "resolve" and resolve["incident_key"] == key and "client" not in resolve
    assert resolve["details"]["num_resolved"] == 1


def test_the_v1_endpoint_is_the_default_and_global_pagerduty_url_is_for_v2_only() -> None:
    assert pagerduty({"service_key": SERVICE_KEY}, pagerduty_url="https://eu.example.org/v2/enqueue").url == V1_URL
    v2 = pagerduty({"routing_key": SERVICE_KEY}, pagerduty_url="https://eu.example.org/v2/enqueue")
    assert (v2.url, v2.events_v1) == ("https://eu.example.org/v2/enqueue", False)


def test_service_key_wins_over_routing_key_as_in_alertmanager_and_says_so() -> None:
    config = AlertingConfig.model_validate({"receivers": [{"name": "p", "pagerduty_configs": [
        {"service_key": SERVICE_KEY, "routing_key": "r" * 32}]}]})
    assert [str(w) for w in config.warnings()] == [
        "receivers[0].pagerduty_configs[0].routing_key: receiver 'p': pagerduty_configs option routing_key"
        " has no effect here and is ignored"]
    assert build_targets(config)["p"][0].integration.events_v1  # type: ignore[attr-defined]


async def test_403_is_retried_on_v1_and_errors_never_show_the_key(sink: ReceiverSink) -> None:
    sink.answers.append("403")
    with pytest.raises(DeliveryError) as caught:
        await send(pagerduty({"service_key": SERVICE_KEY, "url": sink.url("/v1")}), group())
    assert not caught.value.permanent and SERVICE_KEY not in str(caught.value)


async def test_service_key_file_is_read_at_each_send(sink: ReceiverSink, tmp_path: Path) -> None:
    key = tmp_path / "pd-key"
    key.write_text(SERVICE_KEY + "\n")
    integration = pagerduty({"service_key_file": str(key), "url": sink.url("/v1")})
    await send(integration, group())
    key.write_text("r0tated" + SERVICE_KEY[7:])
    await send(integration, group())
    assert [r.json["service_key"] for r in sink.accepted("/v1")] == [SERVICE_KEY, "r0tated" + SERVICE_KEY[7:]]


def test_the_service_key_is_a_secret() -> None:
    config = AlertingConfig.model_validate({"receivers": [{"name": "p", "pagerduty_configs": [{"service_key": SERVICE_KEY}]}]})
    assert SERVICE_KEY not in repr(config) and SERVICE_KEY not in str(config.model_dump())


@pytest.mark.parametrize(("entry", "message"), [
    ({}, "missing routing_key"),
    ({"service_key": ""}, "service_key is empty"),
    ({"service_key": "k", "service_key_file": "/dev/null"}, "at most one of service_key and service_key_file"),
    ({"routing_key_file": "/nonexistent/key"}, "not a readable file"),
])
def test_pagerduty_key_errors(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AlertingConfig.model_validate({"receivers": [{"name": "p", "pagerduty_configs": [entry]}]})
