"""`monitor notify-test RECEIVER`: each integration of the receiver gets a firing test alert
and its resolve; a failing one is named with its error, without its secret, and exits 1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.receiver_sink import ReceiverSink
from tests.test_cli import monitor


@pytest.fixture
def sink() -> Iterator[ReceiverSink]:
    with ReceiverSink() as server:
        yield server


def write(tmp_path: Path, sink: ReceiverSink) -> Path:
    path = tmp_path / "monitor.yaml"
    path.write_text(f"""
route: {{receiver: oncall}}
receivers:
  - name: oncall
    pagerduty_configs: [{{routing_key: rk-secret-1, url: '{sink.url("/pd")}'}}]
    webhook_configs: [{{url: '{sink.url("/hook/token-abcdef")}'}}]
  - name: empty
""")
    return path


def test_every_integration_gets_firing_then_resolve(tmp_path: Path, sink: ReceiverSink) -> None:
    result = monitor("notify-test", "oncall", "-c", str(write(tmp_path, sink)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "oncall/pagerduty_configs/0: firing: delivered",
        "oncall/pagerduty_configs/0: resolve: delivered",
        "oncall/webhook_configs/0: firing: delivered",
        "oncall/webhook_configs/0: resolve: delivered",
    ]
    pd = [r.json for r in sink.accepted("/pd")]
    assert [e["event_action"] for e in pd] == ["trigger", "resolve"]
    assert pd[0]["dedup_key"] == pd[1]["dedup_key"]
    assert [r.json["status"] for r in sink.accepted("/hook/token-abcdef")] == ["firing", "resolved"]


def test_a_failing_integration_is_reported_without_its_secret(tmp_path: Path, sink: ReceiverSink) -> None:
    sink.answers.extend(["401"])  # PagerDuty rejects the key; the webhook still works
    result = monitor("notify-test", "oncall", "--no-resolve", "-c", str(write(tmp_path, sink)))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("oncall/pagerduty_configs/0: firing: FAILED (permanent): HTTP 401")
    assert lines[1] == "oncall/webhook_configs/0: firing: delivered"
    assert "rk-secret-1" not in result.stdout + result.stderr
    assert "token-abcdef" not in result.stdout + result.stderr


def test_unknown_or_empty_receiver_exits_2(tmp_path: Path, sink: ReceiverSink) -> None:
    path = str(write(tmp_path, sink))
    unknown = monitor("notify-test", "nobody", "-c", path)
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == "monitor: no receiver named 'nobody' (receivers: empty, oncall)"
    empty = monitor("notify-test", "empty", "-c", path)
    assert empty.returncode == 2 and "has no integrations" in empty.stderr
    assert sink.received == []


def test_unreachable_receiver_is_a_temporary_failure(tmp_path: Path) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_text("route: {receiver: r}\nreceivers:\n  - name: r\n"
                    "    webhook_configs: [{url: 'http://127.0.0.1:1/hook'}]\n")
    result = monitor("notify-test", "r", "-c", str(path))
    assert result.returncode == 1
    assert result.stdout.startswith("r/webhook_configs/0: firing: FAILED (temporary): ")
    assert "Traceback" not in result.stderr
