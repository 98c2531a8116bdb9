"""Heartbeats with max_age and with a cron schedule, driven by a fake clock."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from monitor.core.clock import FakeClock
from monitor.probes.base import ProbeEnv
from monitor.probes.heartbeat import HeartbeatCheck, probe


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def beat(**fields: object) -> HeartbeatCheck:
    return HeartbeatCheck.model_validate({"name": "job", "kind": "heartbeat", "interval": 60, "timeout": 5, **fields})


async def test_max_age_never_reported_goes_down_after_max_age() -> None:
    clock = FakeClock(ts("2026-01-01T00:00:00"))
    env = ProbeEnv(clock=clock)
    check = beat(max_age="15m")
    assert (await probe(check, 0, env)).up
    clock.advance(16 * 60)
    result = await probe(check, 0, env)
    assert not result.up and "since the daemon started" in (result.error or "")
    assert result.value == 16 * 60


async def test_max_age_push_and_fail_status() -> None:
    clock = FakeClock(ts("2026-01-01T00:00:00"))
    env = ProbeEnv(clock=clock)
    check = beat(max_age="15m")
    env.heartbeats["job"] = (clock.time(), False)
    clock.advance(10 * 60)
    assert (await probe(check, 0, env)).up
    env.heartbeats["job"] = (clock.time(), True)
    failed = await probe(check, 0, env)
    assert not failed.up and failed.error == "last heartbeat reported failure"
    clock.advance(20 * 60)
    env.heartbeats["job"] = (clock.time() - 20 * 60, False)
    assert not (await probe(check, 0, env)).up


async def test_cron_schedule_with_grace() -> None:
    # A nightly job at 03:00 UTC with 30 minutes of grace; it last ran yesterday at 03:05.
    clock = FakeClock(ts("2026-01-02T03:20:00"))
    env = ProbeEnv(clock=clock, started_at=ts("2026-01-01T00:00:00"))
    env.heartbeats["job"] = (ts("2026-01-01T03:05:00"), False)
    check = beat(schedule="0 3 * * *", grace="30m")
    assert (await probe(check, 0, env)).up  # 03:00 passed, but grace runs until 03:30
    clock.advance(15 * 60)  # 03:35
    late = await probe(check, 0, env)
    assert not late.up and "2026-01-02T03:00:00+00:00" in (late.error or "")
    env.heartbeats["job"] = (clock.time(), False)
    assert (await probe(check, 0, env)).up


async def test_cron_schedule_in_a_named_zone() -> None:
    # 09:00 in New York is 14:00 UTC in January.
    clock = FakeClock(ts("2026-01-05T14:04:00"))
    env = ProbeEnv(clock=clock, started_at=ts("2026-01-05T12:00:00"))
    check = beat(schedule="0 9 * * *", timezone="America/New_York", grace="5m")
    assert (await probe(check, 0, env)).up
    clock.advance(120)
    assert not (await probe(check, 0, env)).up


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({}, "exactly one of max_age or schedule"),
        ({"max_age": "1h", "schedule": "* * * * *"}, "exactly one"),
        ({"schedule": "61 * * * *"}, "invalid cron schedule"),
        ({"schedule": "0 3 * * *", "timezone": "Mars/Olympus"}, "unknown timezone"),
    ],
)
def test_invalid_heartbeat_config(fields: dict[str, object], needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        beat(**fields)
