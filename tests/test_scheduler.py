"""Scheduling: spread offsets, no stacking, deadlines, one slow check never delays another."""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Histogram

from monitor import probes
from monitor.check_status import CheckStatuses
from monitor.probes import CheckBase, ProbeEnv
from monitor.probes.heartbeat import HeartbeatCheck
from monitor.core.results import Outcome, Result
from monitor.scheduling.scheduler import CheckScheduler, phase_offset


def check(name: str, interval: float, timeout: float | None = None) -> CheckBase:
    return HeartbeatCheck.model_validate(
        {"name": name, "kind": "heartbeat", "interval": interval, "timeout": timeout or interval, "max_age": "1h"}
    )


@pytest.fixture
def behaviour(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Replace the heartbeat probe with one whose behaviour each check name selects."""
    modes: dict[str, str] = {}

    async def fake_probe(c: HeartbeatCheck, deadline: float, env: ProbeEnv) -> Result:
        mode = modes.get(c.name, "fast")
        if mode == "hang":
            await asyncio.sleep(3600)
        if mode == "stubborn":  # ignores cancellation, like a badly written client library
            try:
                await asyncio.sleep(1.0)
            except asyncio.CancelledError:
                await asyncio.sleep(1.0)
        if mode == "crash":
            raise RuntimeError("probe bug")
        return Result(up=True, value=1.0)

    monkeypatch.setitem(probes.PROBES, "heartbeat", (HeartbeatCheck, fake_probe))
    yield modes


def make_scheduler(checks: list[CheckBase]) -> tuple[CheckScheduler, CheckStatuses, Histogram]:
    statuses = CheckStatuses()
    statuses.configure(checks)
    lag = Histogram("lag", "lag", registry=CollectorRegistry(), buckets=(0.01, 0.05, 0.1, 1.0))
    scheduler = CheckScheduler(statuses, ProbeEnv(), lag, max_concurrent=100)
    scheduler.apply(checks)
    return scheduler, statuses, lag


def test_phase_offsets_are_stable_and_spread() -> None:
    offsets = [phase_offset(f"check_{i}", 10.0) for i in range(2000)]
    assert offsets == [phase_offset(f"check_{i}", 10.0) for i in range(2000)]
    assert all(0 <= o < 10 for o in offsets)
    # Spread evenly: each tenth of the interval holds about a tenth of the checks.
    buckets = [0] * 10
    for o in offsets:
        buckets[int(o)] += 1
    assert min(buckets) > 120 and max(buckets) < 280
    assert abs(statistics.mean(offsets) - 5.0) < 0.5


async def test_runs_repeat_without_drift(behaviour: dict[str, str]) -> None:
    scheduler, statuses, lag = make_scheduler([check("fast", 0.2)])
    scheduler.start()
    await asyncio.sleep(2.1)
    await scheduler.stop(grace=1)
    runs = statuses.get("fast").runs[Outcome.SUCCESS]  # type: ignore[union-attr]
    # 10 periods in 2.1 s plus the early first run; allow generous slack for a busy machine,
    # but jitter-style compounding (2x the runs) or stalls would fall outside.
    assert 6 <= runs <= 13


async def test_hanging_check_times_out_and_does_not_delay_others(behaviour: dict[str, str]) -> None:
    behaviour["stuck"] = "hang"
    scheduler, statuses, lag = make_scheduler([check("stuck", 0.5, 0.3), check("fast", 0.1)])
    scheduler.start()
    await asyncio.sleep(1.6)
    await scheduler.stop(grace=1)
    stuck, fast = statuses.get("stuck"), statuses.get("fast")
    assert stuck is not None and fast is not None
    assert stuck.runs[Outcome.TIMEOUT] >= 2 and stuck.last is not None and stuck.last.error == "timeout"
    assert fast.runs[Outcome.SUCCESS] >= 10
    assert fast.last is not None and fast.last.latency < 0.1


async def test_overlapping_runs_are_skipped_and_counted(behaviour: dict[str, str]) -> None:
    behaviour["slow"] = "stubborn"
    scheduler, statuses, _ = make_scheduler([check("slow", 0.2, 0.1)])
    scheduler.start()
    await asyncio.sleep(2.5)
    await scheduler.stop(grace=3)
    slow = statuses.get("slow")
    assert slow is not None
    assert slow.skipped >= 3
    total_runs = sum(slow.runs.values())
    assert total_runs <= 3  # each run held the slot ~2 s; none were stacked


async def test_crashing_probe_costs_one_result(behaviour: dict[str, str]) -> None:
    behaviour["buggy"] = "crash"
    scheduler, statuses, _ = make_scheduler([check("buggy", 0.2)])
    scheduler.start()
    await asyncio.sleep(0.8)
    await scheduler.stop(grace=1)
    buggy = statuses.get("buggy")
    assert buggy is not None and buggy.runs[Outcome.ERROR] >= 2
    assert buggy.last is not None and buggy.last.error == "RuntimeError: probe bug"


async def test_lag_is_observed_per_run(behaviour: dict[str, str]) -> None:
    scheduler, statuses, lag = make_scheduler([check("a", 0.2), check("b", 0.2)])
    scheduler.start()
    await asyncio.sleep(1.0)
    await scheduler.stop(grace=1)
    samples = {s.name: s.value for s in lag.collect()[0].samples}
    runs = sum(sum(s.runs.values()) for s in statuses.all())
    assert samples["lag_count"] == runs > 0
    # Not a timing assertion: only that lags are seconds-small, not interval-sized mistakes.
    assert samples["lag_sum"] / samples["lag_count"] < 0.19


async def test_apply_keeps_unchanged_and_drops_removed(behaviour: dict[str, str]) -> None:
    scheduler, statuses, _ = make_scheduler([check("a", 0.2), check("b", 0.2)])
    scheduler.start()
    await asyncio.sleep(0.6)
    a_runs = sum(statuses.get("a").runs.values())  # type: ignore[union-attr]
    statuses.configure([check("a", 0.2)])
    scheduler.apply([check("a", 0.2)])
    await asyncio.sleep(0.5)
    await scheduler.stop(grace=1)
    assert statuses.get("b") is None
    assert sum(statuses.get("a").runs.values()) > a_runs  # type: ignore[union-attr]
