"""Uptime over 24 h / 7 d / 30 d: counted per hour, summed into the store, back after a restart."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from monitor.core.records import HourCount
from monitor.core.results import Result
from monitor.store.base import Store
from monitor.store.postgres import PostgresStore
from monitor.store.sqlite import SqliteStore
from monitor.uptime import HOUR, UptimeCounts
from tests.test_store import SHARED_TEST_DSN, _drop_schema

NOW = 1_800_000_000.0  # a fixed instant; hours are counted from the epoch


def run(at: float, up: bool) -> Result:
    return Result(up=up, at=at)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    schema = f"t_{uuid.uuid4().hex}"
    made: Store = (SqliteStore(str(tmp_path / "monitor.db")) if request.param == "sqlite"
                   else PostgresStore(SHARED_TEST_DSN, schema=schema))
    await made.open()
    try:
        yield made
    finally:
        await made.close()
        if request.param == "postgres":
            await _drop_schema(schema)


def test_each_window_counts_its_own_hours() -> None:
    counts = UptimeCounts(clock=Clock(NOW))
    counts.configure(["api"])
    for i in range(10):  # two days ago: 10 runs, all down
        counts.record("api", run(NOW - 2 * 86400 + i, False))
    for i in range(90):  # the last hour: 90 runs, 9 down
        counts.record("api", run(NOW - 600 + i, i % 10 != 0))
    windows = counts.windows("api")
    assert windows["24h"] == pytest.approx(81 / 90)
    assert windows["7d"] == pytest.approx(81 / 100)
    assert windows["30d"] == pytest.approx(81 / 100)
    assert counts.windows("unknown") == {"24h": None, "7d": None, "30d": None}


def test_a_check_without_runs_has_no_figure_and_removed_checks_are_forgotten() -> None:
    counts = UptimeCounts(clock=Clock(NOW))
    counts.configure(["api", "db"])
    counts.record("api", run(NOW, True))
    assert counts.ratio("db", 86400) is None
    counts.configure(["db"])
    assert counts.ratio("api", 86400) is None


async def test_counts_survive_a_restart_and_add_up_in_the_store(store: Store) -> None:
    clock = Clock(NOW)
    first = UptimeCounts(store, clock=clock)
    first.configure(["api"])
    for i in range(6):
        first.record("api", run(NOW - 30 + i, i != 0))
    await first.flush(force=True)
    first.record("api", run(NOW, False))
    await first.flush()  # within the minute: nothing written yet
    clock.now += 61
    await first.flush()  # the same hour's row grows by the new runs
    rows = await store.load_uptime(int(NOW // HOUR) - 1)
    # NOW is on an hour boundary: the first six runs belong to the hour before it.
    assert rows == {"api": [HourCount(hour=int(NOW // HOUR) - 1, good=5, total=6),
                            HourCount(hour=int(NOW // HOUR), good=0, total=1)]}
    second = UptimeCounts(store, clock=clock)
    second.configure(["api"])
    await second.load()
    assert second.ratio("api", 86400) == pytest.approx(5 / 7)


async def test_a_failed_write_is_kept_for_the_next_flush(store: Store) -> None:
    clock = Clock(NOW)
    counts = UptimeCounts(store, clock=clock)
    counts.configure(["api"])
    counts.record("api", run(NOW, True))
    real = store.add_uptime
    calls = 0

    async def failing(check: str, hours: list[HourCount]) -> None:
        nonlocal calls
        calls += 1
        raise OSError("disk full")

    store.add_uptime = failing  # type: ignore[method-assign]
    await counts.flush(force=True)
    assert calls == 1
    store.add_uptime = real  # type: ignore[method-assign]
    counts.record("api", run(NOW + 1, False))
    await counts.flush(force=True)
    assert await store.load_uptime(0) == {"api": [HourCount(hour=int(NOW // HOUR), good=1, total=2)]}


async def test_hours_older_than_30_days_are_pruned(store: Store) -> None:
    clock = Clock(NOW)
    counts = UptimeCounts(store, clock=clock)
    counts.configure(["api"])
    counts.record("api", run(NOW - 31 * 86400, True))
    counts.record("api", run(NOW, False))
    await counts.flush(force=True)
    clock.now += HOUR
    await counts.flush(force=True)
    assert counts.windows("api")["30d"] == 0.0
    assert [row.hour for row in (await store.load_uptime(0))["api"]] == [int(NOW // HOUR)]
