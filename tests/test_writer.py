"""The ordered state writer (monitor/store/writer.py) against a store that fails on demand."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from monitor.core.records import AlertRecord, StateChange
from monitor.store import writer as writer_mod
from monitor.store.base import StoreError
from monitor.store.writer import StateWriter


def alert(name: str) -> AlertRecord:
    return AlertRecord(name, name, "c", "firing", {}, {}, 0.0)


class FlakyStore:
    """Records committed changes; raises while ``down``; refuses changes holding ``poison``."""

    def __init__(self) -> None:
        self.down = False
        self.committed: list[StateChange] = []

    async def commit(self, change: StateChange) -> None:
        if any(a.fingerprint == "poison" for a in change.upsert):
            raise StoreError("sqlite: cannot encode outbox entry x: ValueError", permanent=True)
        if self.down:
            raise StoreError("sqlite: disk I/O error")
        self.committed.append(change)

    async def load_alerts(self) -> list[AlertRecord]:
        return []

    async def load_groups(self) -> dict[str, dict[str, Any]]:
        return {}


async def until(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met"
        await asyncio.sleep(0.01)


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_mod, "RETRY_FIRST", 0.01)
    monkeypatch.setattr(writer_mod, "RETRY_MAX", 0.05)


async def test_a_failing_store_tells_every_waiting_change_then_commits_them_in_order() -> None:
    store = FlakyStore()
    writer = StateWriter(store)
    writer.start()
    events: list[str] = []

    def submit(name: str) -> None:
        writer.submit(StateChange(upsert=[alert(name)]), on_commit=lambda: events.append(f"commit {name}"),
                      on_failure=lambda: events.append(f"failed {name}"))

    store.down = True
    submit("a")
    submit("b")  # queued behind the failing one: told too, not left waiting unseen
    await until(lambda: "failed b" in events)
    assert writer.failing_since is not None and writer.backlog == 2
    submit("c")  # the store is known to fail: told at once
    assert events[-1] == "failed c"
    store.down = False
    await until(lambda: writer.backlog == 0)
    assert [c.upsert[0].fingerprint for c in store.committed] == ["a", "b", "c"]
    assert [e for e in events if e.startswith("commit")] == ["commit a", "commit b", "commit c"]
    assert sorted(e for e in events if e.startswith("failed")) == ["failed a", "failed b", "failed c"]
    assert writer.failing_since is None and writer.failures >= 1
    await writer.stop()


async def test_a_change_that_can_never_be_stored_is_dropped_not_retried_forever() -> None:
    store = FlakyStore()
    writer = StateWriter(store)
    writer.start()
    told: list[str] = []
    writer.submit(StateChange(upsert=[alert("poison")]), on_commit=lambda: told.append("commit poison"),
                  on_failure=lambda: told.append("failed poison"))
    writer.submit(StateChange(upsert=[alert("fine")]), on_commit=lambda: told.append("commit fine"))
    await until(lambda: writer.backlog == 0)
    assert told == ["failed poison", "commit fine"]  # its pages still go out; the rest is not blocked
    assert [c.upsert[0].fingerprint for c in store.committed] == ["fine"]
    assert writer.failing_since is None
    await writer.stop()


async def test_stop_is_bounded_while_the_store_fails_and_says_what_was_lost() -> None:
    store = FlakyStore()
    store.down = True
    writer = StateWriter(store)
    writer.start()
    writer.submit(StateChange(upsert=[alert("a")]))
    writer.submit(StateChange(upsert=[alert("b")]))
    started = time.monotonic()
    lost = await writer.stop(grace=0.2)
    assert lost == 2
    assert time.monotonic() - started < 5  # the grace, not the store, decides
