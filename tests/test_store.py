"""The state store, both implementations: SQLite in tmp_path, PostgreSQL on the shared server.

Nothing here changes the shared PostgreSQL beyond one uniquely named schema per test
(``t_<hex>``), dropped afterwards with everything in it.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from monitor.alerting.silences import Silence
from monitor.store import open_store
from monitor.core.records import AlertRecord, HourCount, MinuteCount, OutboxEntry, StateChange
from monitor.store.base import Store, StoreError
from monitor.store.postgres import _MIGRATIONS as postgres_migrations
from monitor.store.postgres import SCHEMA_VERSION as POSTGRES_SCHEMA_VERSION
from monitor.store.postgres import PostgresStore
from monitor.store.sqlite import _MIGRATIONS as sqlite_migrations
from monitor.store.sqlite import SCHEMA_VERSION as SQLITE_SCHEMA_VERSION
from monitor.store.sqlite import SqliteStore

SHARED_TEST_DSN = "postgresql://postgres@127.0.0.1:5432/test"

StoreFactory = Callable[[], Store]


def alert(name: str, **changes: object) -> AlertRecord:
    fields: dict[str, object] = {
        "fingerprint": f"fp-{name}", "alertname": "Down", "check": name, "state": "firing",
        "labels": {"severity": "page", "check": name}, "annotations": {"summary": f"{name} is down"},
        "active_at": 1700000000.25, "fired_at": 1700000060.5, "last_true_at": 1700000120.75,
        "value": 0.0,
    }
    fields.update(changes)
    return AlertRecord(**fields)  # type: ignore[arg-type]


def entry(name: str, seq: int = 1, **changes: object) -> OutboxEntry:
    fields: dict[str, object] = {
        "id": f"ob-{name}", "seq": seq, "target": "oncall/pagerduty_configs/0",
        "payload": {"receiver": "oncall ✓", "status": "firing", "group_key": f"{{}}:{{check={name!r}}}",
                    "alerts": [{"labels": {"check": name, "ключ": "значение"}, "value": 1.5}],
                    "truncated": False, "note": None, "text": "line 1\nline \"2\""},
        "created_at": 1700000000.25,
    }
    fields.update(changes)
    return OutboxEntry(**fields)  # type: ignore[arg-type]


def group_record(name: str, **changes: object) -> dict[str, Any]:
    record: dict[str, Any] = {
        "receiver": "oncall", "labels": {"check": name, "説明": "✓"}, "firing": [f"fp-{name}"],
        "resolved": [], "notified_at": 1700000060.5, "seq": 3, "next_flush": None,
    }
    record.update(changes)
    return record


async def assert_migrated_data_kept_and_new_tables_work(
        store: Store, silences: list[dict[str, Any]]) -> None:
    """Opening an old store migrates it: old rows stay, each later version's tables work."""
    await store.open()
    try:
        assert await store.load_heartbeats() == {"backup": (12.5, False)}
        # Version 2: silences.
        assert await store.load_silences() == silences
        await store.save_silence(silence_record("s", ends_at=2e9))
        assert await store.load_silences() == [*silences, silence_record("s", ends_at=2e9)]
        # Version 3: the outbox and the notification groups, written in one commit.
        assert await store.load_outbox() == [] and await store.load_groups() == {}
        await store.commit(StateChange(outbox=[entry("a")], groups={"g": group_record("g")}))
        assert await store.load_outbox() == [entry("a")]
        assert await store.load_groups() == {"g": group_record("g")}
        assert await store.claim_outbox("ob-a", 100.0, 130.0)
        await store.finish_outbox("ob-a", "delivered", 110.0)
        assert await store.load_outbox() == []
        # Version 4: uptime per check and hour.
        assert await store.load_uptime(0) == {}
        await store.add_uptime("api", [HourCount(hour=5, good=1, total=2)])
        await store.add_uptime("api", [HourCount(hour=5, good=1, total=1)])
        assert await store.load_uptime(0) == {"api": [HourCount(hour=5, good=2, total=3)]}
    finally:
        await store.close()


async def _drop_schema(schema: str) -> None:
    async with await psycopg.AsyncConnection.connect(SHARED_TEST_DSN, autocommit=True) as conn:
        await conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(params=["sqlite", "postgres"])
async def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Makes unopened stores that all see the same data (one file, or one schema)."""
    made: list[Store] = []
    schema = f"t_{uuid.uuid4().hex}"

    def make() -> Store:
        store: Store
        if request.param == "sqlite":
            store = SqliteStore(str(tmp_path / "state" / "monitor.db"))
        else:
            store = PostgresStore(SHARED_TEST_DSN, schema=schema)
        made.append(store)
        return store

    try:
        yield make
    finally:
        for store in made:
            await store.close()
        if request.param == "postgres":
            await _drop_schema(schema)


@pytest.fixture
async def store(new_store: StoreFactory) -> Store:
    opened = new_store()
    await opened.open()
    return opened


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    schema = f"t_{uuid.uuid4().hex}"
    try:
        yield schema
    finally:
        await _drop_schema(schema)


# --- alerts ----------------------------------------------------------------------------------


async def test_alerts_round_trip_with_unicode_and_nones(store: Store) -> None:
    weird = {"ключ": "значение", "emoji": "🔥 down", "quote": "it's \"x\"\\n", "nl": "a\nb",
             "rtl": "שלום", "combining": "e\u0301", "empty": ""}
    records = [
        alert("a", labels=weird, annotations={"説明": "ディスク満杯 ✓"}),
        alert("b", state="pending", fired_at=None, value=None, labels={}, annotations={}),
        alert("c", value=-1.5e300),
    ]
    await store.commit(StateChange(upsert=records))
    assert await store.load_alerts() == records


async def test_nan_value_reads_back_as_none(store: Store) -> None:
    await store.commit(StateChange(upsert=[alert("a", value=math.nan)]))
    assert (await store.load_alerts())[0].value is None


async def test_upsert_replaces_the_whole_record(store: Store) -> None:
    await store.commit(StateChange(upsert=[alert("a", state="pending", fired_at=None)]))
    firing = alert("a", labels={"new": "label"}, annotations={}, fired_at=5.0, value=42.0)
    await store.commit(StateChange(upsert=[firing]))
    assert await store.load_alerts() == [firing]


async def test_delete_removes_and_ignores_unknown_fingerprints(store: Store) -> None:
    await store.commit(StateChange(upsert=[alert("a"), alert("b")]))
    await store.commit(StateChange(delete=["fp-a", "fp-never-existed"]))
    assert await store.load_alerts() == [alert("b")]


async def test_upsert_and_delete_of_one_fingerprint_deletes(store: Store) -> None:
    await store.commit(StateChange(upsert=[alert("a"), alert("b")], delete=["fp-a"]))
    assert await store.load_alerts() == [alert("b")]


async def test_empty_change_is_a_no_op(store: Store) -> None:
    assert not StateChange()
    await store.commit(StateChange())
    assert await store.load_alerts() == []
    assert await store.load_outbox() == [] and await store.load_groups() == {}


async def test_failed_commit_leaves_nothing_behind(store: Store) -> None:
    before = alert("old")
    await store.commit(StateChange(upsert=[before]))
    # "new" is written first, then "bad" violates the state CHECK constraint mid-transaction.
    change = StateChange(upsert=[alert("new"), alert("bad", state="exploded")], delete=["fp-old"])
    with pytest.raises(StoreError) as caught:
        await store.commit(change)
    assert "\n" not in str(caught.value)
    assert await store.load_alerts() == [before]
    # The store is still usable after the rollback.
    await store.commit(StateChange(upsert=[alert("new")], delete=["fp-old"]))
    assert await store.load_alerts() == [alert("new")]


async def test_unencodable_text_is_a_store_error(store: Store) -> None:
    with pytest.raises(StoreError):
        await store.commit(StateChange(upsert=[alert("a", labels={"x": "\udc80"})]))
    assert await store.load_alerts() == []


async def test_50_concurrent_commits_all_land(store: Store) -> None:
    records = [alert(f"{n:02d}") for n in range(50)]
    await asyncio.gather(*(store.commit(StateChange(upsert=[r])) for r in records))
    assert await store.load_alerts() == records


# --- outbox and notification groups ----------------------------------------------------------


async def test_outbox_groups_and_alerts_round_trip_in_one_commit(store: Store) -> None:
    entries = [
        entry("late", seq=7),
        entry("b", seq=2, attempts=3, next_attempt_at=1700000090.5, last_error="HTTP 503: busy ✗"),
        entry("a", seq=2, payload={}),  # same seq: ordered by id
        entry("first", seq=1, created_at=1.0),
    ]
    groups: dict[str, dict[str, Any] | None] = {"{}:{check=\"web\"}": group_record("web"),
                                                "g-db": group_record("db", firing=[])}
    await store.commit(StateChange(upsert=[alert("web")], outbox=entries, groups=groups))
    assert await store.load_alerts() == [alert("web")]
    assert await store.load_outbox() == [entries[3], entries[2], entries[1], entries[0]]
    assert await store.load_groups() == groups
    # Entries accumulate across commits, still in seq order.
    await store.commit(StateChange(outbox=[entry("middle", seq=5)]))
    assert [e.id for e in await store.load_outbox()] == ["ob-first", "ob-a", "ob-b", "ob-middle", "ob-late"]


async def test_group_upsert_replaces_and_none_deletes(store: Store) -> None:
    await store.commit(StateChange(groups={"g1": group_record("one"), "g2": group_record("two")}))
    replaced = group_record("one", firing=[], resolved=["fp-one"], seq=4)
    await store.commit(StateChange(groups={"g1": replaced, "g2": None, "never-existed": None}))
    assert await store.load_groups() == {"g1": replaced}
    await store.commit(StateChange(groups={"g1": None}))
    assert await store.load_groups() == {}


@pytest.mark.parametrize("bad", [
    "outbox id already stored", "outbox id twice in the change", "payload not JSON",
    "NaN in a group record", "text sqlite and postgres cannot store",
])
async def test_failed_commit_writes_no_alerts_outbox_or_groups(store: Store, bad: str) -> None:
    await store.commit(StateChange(upsert=[alert("old")], outbox=[entry("old")],
                                   groups={"g-old": group_record("old")}))
    entries = [entry("new", seq=2)]
    groups: dict[str, dict[str, Any] | None] = {"g-old": None, "g-new": group_record("new")}
    if bad == "outbox id already stored":
        entries.append(entry("old", seq=3))
    elif bad == "outbox id twice in the change":
        entries.append(entry("new", seq=3))
    elif bad == "payload not JSON":
        entries.append(entry("x", payload={"when": {1, 2}}))
    elif bad == "NaN in a group record":
        groups["g-nan"] = group_record("nan", notified_at=math.nan)
    else:  # fails inside the transaction, after the other rows were written
        groups["g-bad"] = group_record("bad", receiver="\udc80")
    with pytest.raises(StoreError) as caught:
        await store.commit(StateChange(upsert=[alert("new")], delete=["fp-old"], outbox=entries,
                                       groups=groups))
    assert "\n" not in str(caught.value)
    assert await store.load_alerts() == [alert("old")]
    assert await store.load_outbox() == [entry("old")]
    assert await store.load_groups() == {"g-old": group_record("old")}
    # The store is still usable afterwards.
    await store.commit(StateChange(outbox=[entry("new", seq=2)], groups={"g-old": None}))
    assert await store.load_outbox() == [entry("old"), entry("new", seq=2)]
    assert await store.load_groups() == {}


async def test_claim_is_compare_and_set(store: Store) -> None:
    await store.commit(StateChange(outbox=[entry("a"), entry("b", seq=2)]))
    assert await store.claim_outbox("ob-a", 100.0, 130.0)
    assert not await store.claim_outbox("ob-a", 100.0, 130.0)  # taken
    assert not await store.claim_outbox("ob-a", 129.9, 160.0)  # still taken
    assert await store.claim_outbox("ob-b", 100.0, 130.0)  # claims are per entry
    assert await store.claim_outbox("ob-a", 130.0, 160.0)  # the first claim ran out
    assert not await store.claim_outbox("ob-a", 140.0, 170.0)
    assert not await store.claim_outbox("ob-never-existed", 100.0, 130.0)
    # A claimed entry is still unfinished, so it is still loaded.
    assert await store.load_outbox() == [entry("a"), entry("b", seq=2)]
    await store.finish_outbox("ob-b", "failed", 120.0, "HTTP 400: bad payload")
    assert not await store.claim_outbox("ob-b", 1e12, 1e12 + 30)  # finished: never again


async def test_concurrent_claims_from_two_stores_exactly_one_wins(new_store: StoreFactory) -> None:
    first, second = new_store(), new_store()
    await first.open()
    await second.open()
    entries = [entry(f"{n:02d}", seq=n) for n in range(20)]
    await first.commit(StateChange(outbox=entries))
    results = await asyncio.gather(*(
        replica.claim_outbox(e.id, 100.0, 130.0) for e in entries for replica in (first, second)))
    assert [results[2 * n] + results[2 * n + 1] for n in range(len(entries))] == [1] * len(entries)
    # After the claims run out, a new round again has exactly one winner per entry.
    results = await asyncio.gather(*(
        replica.claim_outbox(e.id, 130.0, 160.0) for e in entries for replica in (second, first)))
    assert [results[2 * n] + results[2 * n + 1] for n in range(len(entries))] == [1] * len(entries)


async def test_release_claims_frees_every_unfinished_claim(store: Store) -> None:
    await store.commit(StateChange(outbox=[entry("a", seq=1), entry("b", seq=2), entry("c", seq=3)]))
    assert await store.claim_outbox("ob-a", 100.0, 1e12)  # a run that died mid-send
    assert await store.claim_outbox("ob-b", 100.0, 1e12)
    await store.finish_outbox("ob-b", "delivered", 101.0)
    assert await store.release_claims() == 1  # the finished one is not touched
    assert await store.claim_outbox("ob-a", 102.0, 132.0)  # free at once, no lease to wait out
    assert not await store.claim_outbox("ob-b", 102.0, 132.0)
    assert [e.id for e in await store.load_outbox()] == ["ob-a", "ob-c"]


async def test_retry_releases_the_claim_and_keeps_the_entry(store: Store) -> None:
    await store.commit(StateChange(outbox=[entry("a")]))
    assert await store.claim_outbox("ob-a", 100.0, 130.0)
    await store.retry_outbox("ob-a", 1, 160.5, "HTTP 503: try later")
    retried = replace(entry("a"), attempts=1, next_attempt_at=160.5, last_error="HTTP 503: try later")
    assert await store.load_outbox() == [retried]
    assert await store.claim_outbox("ob-a", 101.0, 131.0)  # released, though 130 is not reached
    await store.retry_outbox("ob-a", 2, 400.0, "timed out after 10s")
    assert await store.load_outbox() == [replace(retried, attempts=2, next_attempt_at=400.0,
                                                 last_error="timed out after 10s")]
    await store.retry_outbox("ob-never-existed", 1, 1.0, "x")  # unknown ids are ignored


async def test_finish_hides_the_entry(store: Store) -> None:
    await store.commit(StateChange(outbox=[entry("a"), entry("b", seq=2), entry("c", seq=3)]))
    assert await store.claim_outbox("ob-a", 100.0, 130.0)
    await store.finish_outbox("ob-a", "delivered", 105.0)
    await store.finish_outbox("ob-b", "failed", 106.0, "HTTP 400: invalid routing key")
    assert await store.load_outbox() == [entry("c", seq=3)]
    with pytest.raises(StoreError) as caught:
        await store.finish_outbox("ob-c", "lost", 107.0)  # only "delivered" or "failed"
    assert "\n" not in str(caught.value)
    assert await store.load_outbox() == [entry("c", seq=3)]


async def test_prune_outbox_deletes_only_old_finished_entries(store: Store) -> None:
    entries = [entry("old", seq=1), entry("recent", seq=2), entry("due", seq=3), entry("claimed", seq=4)]
    await store.commit(StateChange(outbox=entries))
    await store.finish_outbox("ob-old", "delivered", 100.0)
    await store.finish_outbox("ob-recent", "failed", 200.0, "gave up")
    assert await store.claim_outbox("ob-claimed", 10.0, 50.0)
    await store.prune_outbox(150.0)
    assert await store.load_outbox() == [entries[2], entries[3]]
    # Whether a row is gone shows when its id can be inserted again.
    await store.commit(StateChange(outbox=[entry("old", seq=9)]))
    with pytest.raises(StoreError):
        await store.commit(StateChange(outbox=[entry("recent", seq=9)]))
    await store.prune_outbox(200.0)  # done_at < before, strictly
    with pytest.raises(StoreError):
        await store.commit(StateChange(outbox=[entry("recent", seq=9)]))
    await store.prune_outbox(1e12)  # unfinished entries are never pruned, however old
    assert await store.load_outbox() == [entries[2], entries[3], entry("old", seq=9)]
    await store.commit(StateChange(outbox=[entry("recent", seq=9)]))


# --- SLO counts ------------------------------------------------------------------------------


async def test_counts_sum_into_existing_minutes(store: Store) -> None:
    await store.add_counts("web", [MinuteCount(10, 1, 2), MinuteCount(11, 3, 4)])
    await store.add_counts("web", [MinuteCount(10, 1, 1), MinuteCount(12, 0, 5), MinuteCount(12, 2, 2)])
    await store.add_counts("db", [MinuteCount(10, 7, 7)])
    await store.add_counts("web", [])
    assert await store.load_counts("web", 0) == [
        MinuteCount(10, 2, 3), MinuteCount(11, 3, 4), MinuteCount(12, 2, 7)]
    assert await store.load_counts("db", 0) == [MinuteCount(10, 7, 7)]
    assert await store.load_counts("nobody", 0) == []


async def test_load_counts_is_ordered_and_starts_at_since_minute(store: Store) -> None:
    minute = int(time.time()) // 60
    await store.add_counts("web", [MinuteCount(minute - m, m, m + 1) for m in (3, 0, 5, 1, 4, 2)])
    loaded = await store.load_counts("web", minute - 2)
    assert loaded == [MinuteCount(minute - 2, 2, 3), MinuteCount(minute - 1, 1, 2), MinuteCount(minute, 0, 1)]


async def test_concurrent_counts_for_one_minute_all_add_up(store: Store) -> None:
    await asyncio.gather(*(store.add_counts("web", [MinuteCount(7, n % 2, 1)]) for n in range(50)))
    assert await store.load_counts("web", 0) == [MinuteCount(7, 25, 50)]


async def test_prune_drops_older_minutes_of_every_check(store: Store) -> None:
    for check in ("web", "db"):
        await store.add_counts(check, [MinuteCount(m, 1, 1) for m in range(100, 105)])
    await store.prune_counts(103)
    for check in ("web", "db"):
        assert [c.minute for c in await store.load_counts(check, 0)] == [103, 104]


# --- heartbeats ------------------------------------------------------------------------------


async def test_heartbeats_round_trip_and_overwrite(store: Store) -> None:
    assert await store.load_heartbeats() == {}
    await store.save_heartbeat("backup", 1700000000.125, False)
    await store.save_heartbeat("cron ✓", 1700000001.5, True)
    await store.save_heartbeat("backup", 1700000300.25, True)
    assert await store.load_heartbeats() == {"backup": (1700000300.25, True), "cron ✓": (1700000001.5, True)}


# --- silences --------------------------------------------------------------------------------


def silence_record(silence_id: str, ends_at: float = 1700003600.5, **changes: object) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": silence_id,
        "matchers": [{"name": "alertname", "value": "Api Down ✓", "isRegex": False, "isEqual": True},
                     {"name": "env", "value": "prod|stag.*", "isRegex": True, "isEqual": False}],
        "starts_at": 1700000000.125, "ends_at": ends_at, "created_by": "ольга",
        "comment": "deploy \"x\"\nline 2", "updated_at": 1700000000.125,
    }
    record.update(changes)
    return record


async def test_silences_round_trip_upsert_and_delete(store: Store) -> None:
    assert await store.load_silences() == []
    a, b = silence_record("a", ends_at=2e9), silence_record("b")
    await store.save_silence(a)
    await store.save_silence(b)
    assert await store.load_silences() == [b, a]  # ordered by ends_at
    expired = silence_record("a", ends_at=1700000100.75, updated_at=1700000100.75)
    await store.save_silence(expired)  # upsert by id replaces the record
    assert await store.load_silences() == [expired, b]
    await store.delete_silences(["a", "never-existed"])
    await store.delete_silences([])
    assert await store.load_silences() == [b]
    reopened = Silence.from_record((await store.load_silences())[0])
    assert reopened == Silence.from_record(b)


# --- lifecycle -------------------------------------------------------------------------------


async def test_reopen_sees_everything(new_store: StoreFactory) -> None:
    first = new_store()
    await first.open()
    await first.commit(StateChange(upsert=[alert("a"), alert("b", fired_at=None, value=None)]))
    await first.add_counts("web", [MinuteCount(5, 4, 5)])
    await first.save_heartbeat("backup", 12.5, False)
    await first.commit(StateChange(outbox=[entry("a"), entry("b", seq=2), entry("c", seq=3)],
                                   groups={"g": group_record("g"), "gone": group_record("gone")}))
    await first.commit(StateChange(groups={"gone": None}))
    assert await first.claim_outbox("ob-a", 100.0, 130.0)
    await first.retry_outbox("ob-b", 2, 300.5, "HTTP 502")
    assert await first.claim_outbox("ob-c", 100.0, 130.0)
    await first.finish_outbox("ob-c", "delivered", 110.0)
    await first.close()

    second = new_store()
    await second.open()
    await second.open()  # opening twice (and migrating an up-to-date schema) is harmless
    assert await second.load_alerts() == [alert("a"), alert("b", fired_at=None, value=None)]
    assert await second.load_counts("web", 0) == [MinuteCount(5, 4, 5)]
    assert await second.load_heartbeats() == {"backup": (12.5, False)}
    assert await second.load_groups() == {"g": group_record("g")}
    retried = replace(entry("b", seq=2), attempts=2, next_attempt_at=300.5, last_error="HTTP 502")
    assert await second.load_outbox() == [entry("a"), retried]
    assert not await second.claim_outbox("ob-a", 120.0, 150.0)  # the claim survived the restart
    assert await second.claim_outbox("ob-a", 130.0, 160.0)


async def test_closed_store_refuses_work(new_store: StoreFactory) -> None:
    store = new_store()
    with pytest.raises(StoreError, match="not open"):
        await store.load_alerts()
    await store.open()
    await store.close()
    await store.close()
    with pytest.raises(StoreError, match="not open"):
        await store.commit(StateChange(upsert=[alert("a")]))


# --- SQLite specifics ------------------------------------------------------------------------

_KILL_SCRIPT = """
import asyncio, sys
from monitor.core.records import AlertRecord, StateChange
from monitor.store.sqlite import SqliteStore

async def main() -> None:
    store = SqliteStore(sys.argv[1])
    await store.open()
    for n in range(1_000_000):
        record = AlertRecord(fingerprint=f"fp-{n:07d}", alertname="Down", check="web",
                             state="firing", labels={"n": str(n)}, annotations={}, active_at=n)
        await store.commit(StateChange(upsert=[record]))
        print("committed", flush=True)

asyncio.run(main())
"""


async def test_sqlite_commits_survive_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "killed.db"
    seen = 40
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _KILL_SCRIPT, str(path), stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    try:
        for _ in range(seen):
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=10)
            assert line == b"committed\n"
        # Killed mid-stream: it is most likely inside its next commit right now.
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert (tmp_path / "killed.db-wal").exists()  # the commits sit in the WAL, never checkpointed

    store = SqliteStore(str(path))
    await store.open()
    try:
        fingerprints = [r.fingerprint for r in await store.load_alerts()]
    finally:
        await store.close()
    assert len(fingerprints) >= seen
    assert fingerprints == [f"fp-{n:07d}" for n in range(len(fingerprints))]  # no holes
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


async def test_sqlite_creates_parent_directories_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "state.db"
    store = SqliteStore(str(path))
    await store.open()
    await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(4,)]
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1").fetchall()
        assert [t[0] for t in tables] == ["alerts", "heartbeats", "notify_groups", "outbox",
                                          "schema_version", "silences", "slo_counts", "uptime_hours"]


async def test_sqlite_in_memory_works(tmp_path: Path) -> None:
    store = SqliteStore(":memory:")
    await store.open()
    try:
        await store.commit(StateChange(upsert=[alert("a")]))
        assert await store.load_alerts() == [alert("a")]
    finally:
        await store.close()


async def test_sqlite_garbage_file_is_a_store_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "not-a-db.db"
    path.write_bytes(b"this is not sqlite, just text\n" * 200)
    with pytest.raises(StoreError) as caught:
        await SqliteStore(str(path)).open()
    message = str(caught.value)
    assert str(path) in message and "not a database" in message and "\n" not in message


@pytest.mark.parametrize("layout", ["path is a directory", "parent is a file"])
async def test_sqlite_unopenable_path_is_a_store_error_naming_it(tmp_path: Path, layout: str) -> None:
    if layout == "path is a directory":
        path = tmp_path / "dir.db"
        path.mkdir()
    else:
        (tmp_path / "plain").write_text("x")
        path = tmp_path / "plain" / "state.db"
    with pytest.raises(StoreError) as caught:
        await SqliteStore(str(path)).open()
    assert str(path) in str(caught.value)


def _open_as(user: int | None, path: Path) -> tuple[int, str]:
    """Open a store at ``path`` in a forked child running as ``user``: (exit code, message).
    A fork rather than a new interpreter: the interpreter lives under /root, which `nobody`
    may not read."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            os.close(read)
            if user is not None:
                os.setgid(user)
                os.setuid(user)
            asyncio.run(SqliteStore(str(path)).open())
        except StoreError as err:
            os.write(write, str(err).encode())
            code = 3
        except BaseException as err:  # anything else is a failure the parent should see
            os.write(write, repr(err).encode())
            code = 4
        os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        message = pipe.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), message


def test_sqlite_directory_without_permission_is_a_store_error() -> None:
    # Root ignores directory permissions, and CI runs as root: then the store is opened by a
    # child running as `nobody`, in a directory only root may write to.
    base = Path(tempfile.mkdtemp(prefix="monitor-perm-"))
    try:
        base.chmod(0o755)
        locked = base / "locked"
        locked.mkdir(mode=0o555)
        code, message = _open_as(65534 if os.geteuid() == 0 else None, locked / "state.db")
        assert code == 3, message
        assert str(locked / "state.db") in message
    finally:
        shutil.rmtree(base, ignore_errors=True)


async def test_sqlite_locked_database_is_a_store_error_and_the_loop_keeps_running(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    store = SqliteStore(str(path), busy_timeout=0.5)
    await store.open()
    await store.commit(StateChange(upsert=[alert("a")]))
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        with pytest.raises(StoreError) as caught:
            await store.commit(StateChange(upsert=[alert("b")]))
        ticker.cancel()
        assert str(path) in str(caught.value) and "locked" in str(caught.value)
        assert ticks >= 10  # the half-second wait for the lock happened off the event loop
        assert await store.load_alerts() == [alert("a")]  # WAL: readers are not blocked
        await store.commit(StateChange())  # nothing to write: no transaction, no lock wait
        with pytest.raises(StoreError, match="locked"):
            await SqliteStore(str(path), busy_timeout=0.1).open()
    finally:
        other.close()
        await store.close()


async def test_sqlite_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    store = SqliteStore(str(path))
    await store.open()
    await store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(StoreError, match="schema version 99"):
        await SqliteStore(str(path)).open()


@pytest.mark.parametrize("version", [1, 2, 3])
async def test_sqlite_old_database_migrates_and_keeps_its_data(tmp_path: Path, version: int) -> None:
    """Built by the shipped steps up to ``version``, then opened by this monitor."""
    path = tmp_path / f"v{version}.db"
    silences = [silence_record("old")] if version >= 2 else []
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for step in sqlite_migrations[:version]:
            for statement in step:
                conn.execute(statement)
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        conn.execute("INSERT INTO heartbeats (check_name, at, failed) VALUES ('backup', 12.5, 0)")
        for record in silences:
            conn.execute("INSERT INTO silences (id, record, ends_at) VALUES (?, ?, ?)",
                         (record["id"], json.dumps(record), record["ends_at"]))
    conn.close()
    store = SqliteStore(str(path))
    await assert_migrated_data_kept_and_new_tables_work(store, silences)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SQLITE_SCHEMA_VERSION,)]
    conn.close()


# --- PostgreSQL specifics --------------------------------------------------------------------


async def test_postgres_creates_its_schema(pg_schema: str) -> None:
    store = PostgresStore(SHARED_TEST_DSN, schema=pg_schema)
    await store.open()
    await store.close()
    async with await psycopg.AsyncConnection.connect(SHARED_TEST_DSN) as conn:
        cur = await conn.execute("SELECT table_name FROM information_schema.tables"
                                 " WHERE table_schema = %s ORDER BY 1", (pg_schema,))
        assert [r[0] for r in await cur.fetchall()] == [
            "alerts", "heartbeats", "notify_groups", "outbox", "schema_version", "silences", "slo_counts",
            "uptime_hours"]


@pytest.mark.parametrize("dsn", [
    "postgresql://monitor:s3cr3t-Pw@127.0.0.1:{port}/test",
    "host=127.0.0.1 port={port} dbname=test user=monitor password=s3cr3t-Pw",
    "postgresql://monitor:s3cr3t-Pw@127.0.0.1:{port}/test?sslmode=bogus",
    "host=127.0.0.1 port={port} password=s3cr3t-Pw unknownkey=1",
])
async def test_postgres_unreachable_is_a_store_error_without_the_password(
        closed_port: int, dsn: str) -> None:
    store = PostgresStore(dsn.format(port=closed_port), schema="never_created")
    started = time.monotonic()
    with pytest.raises(StoreError) as caught:
        await store.open()
    message = str(caught.value)
    assert "s3cr3t-Pw" not in message and "\n" not in message
    # The libpq error is not chained either: a logged traceback would print it in full.
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert time.monotonic() - started < 5


async def test_postgres_reconnects_after_the_server_drops_the_connection(pg_schema: str) -> None:
    store = PostgresStore(SHARED_TEST_DSN, schema=pg_schema)
    await store.open()
    try:
        await store.commit(StateChange(upsert=[alert("a")]))
        conn = store._conn  # the test needs the backend's pid to kill exactly this session
        assert conn is not None
        killed = conn.info.backend_pid
        async with await psycopg.AsyncConnection.connect(SHARED_TEST_DSN, autocommit=True) as admin:
            # The timeout makes it wait until the backend is gone, so the next call must notice.
            await admin.execute("SELECT pg_terminate_backend(%s, 5000)", (killed,))
        await store.commit(StateChange(upsert=[alert("b")]))
        assert store._conn is not None and store._conn.info.backend_pid != killed
        assert await store.load_alerts() == [alert("a"), alert("b")]
    finally:
        await store.close()


async def test_postgres_blocked_call_times_out_and_recovers(pg_schema: str) -> None:
    store = PostgresStore(SHARED_TEST_DSN, schema=pg_schema, timeout=0.5)
    await store.open()
    try:
        async with await psycopg.AsyncConnection.connect(SHARED_TEST_DSN) as blocker:
            await blocker.execute(sql.SQL("LOCK TABLE {}.alerts IN ACCESS EXCLUSIVE MODE").format(
                sql.Identifier(pg_schema)))
            with pytest.raises(StoreError, match="timed out"):
                await store.commit(StateChange(upsert=[alert("a")]))
            await blocker.rollback()
        await store.commit(StateChange(upsert=[alert("b")]))
        assert await store.load_alerts() == [alert("b")]
    finally:
        await store.close()


@pytest.mark.parametrize("version", [1, 2, 3])
async def test_postgres_old_schema_migrates_and_keeps_its_data(pg_schema: str, version: int) -> None:
    """Built by the shipped steps up to ``version``, then opened by this monitor."""
    silences = [silence_record("old")] if version >= 2 else []
    async with await psycopg.AsyncConnection.connect(SHARED_TEST_DSN, autocommit=True) as conn:
        await conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(pg_schema)))
        await conn.execute(sql.SQL("CREATE TABLE {}.schema_version (version integer NOT NULL)").format(
            sql.Identifier(pg_schema)))
        for step in postgres_migrations[:version]:
            for statement in step:
                await conn.execute(sql.SQL(statement).format(s=sql.Identifier(pg_schema)))
        await conn.execute(sql.SQL("INSERT INTO {}.schema_version (version) VALUES (%s)").format(
            sql.Identifier(pg_schema)), (version,))
        await conn.execute(sql.SQL("INSERT INTO {}.heartbeats VALUES ('backup', 12.5, false)").format(
            sql.Identifier(pg_schema)))
        for record in silences:
            await conn.execute(sql.SQL("INSERT INTO {}.silences (id, record, ends_at) VALUES (%s, %s, %s)")
                               .format(sql.Identifier(pg_schema)),
                               (record["id"], Jsonb(record), record["ends_at"]))
    store = PostgresStore(SHARED_TEST_DSN, schema=pg_schema)
    await assert_migrated_data_kept_and_new_tables_work(store, silences)
    async with await psycopg.AsyncConnection.connect(SHARED_TEST_DSN) as conn:
        cur = await conn.execute(sql.SQL("SELECT version FROM {}.schema_version").format(
            sql.Identifier(pg_schema)))
        assert await cur.fetchall() == [(POSTGRES_SCHEMA_VERSION,)]


async def test_postgres_newer_schema_is_refused(pg_schema: str) -> None:
    store = PostgresStore(SHARED_TEST_DSN, schema=pg_schema)
    await store.open()
    await store.close()
    async with await psycopg.AsyncConnection.connect(SHARED_TEST_DSN, autocommit=True) as conn:
        await conn.execute(sql.SQL("UPDATE {}.schema_version SET version = 99").format(
            sql.Identifier(pg_schema)))
    with pytest.raises(StoreError, match="schema version 99"):
        await PostgresStore(SHARED_TEST_DSN, schema=pg_schema).open()


# --- open_store ------------------------------------------------------------------------------


async def test_open_store_sqlite_relative_path_is_under_the_current_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite:///sub/state.db")
    assert isinstance(store, SqliteStore) and store.path == str(tmp_path / "sub" / "state.db")
    await store.open()
    await store.close()
    assert (tmp_path / "sub" / "state.db").exists()


def test_open_store_sqlite_absolute_and_memory(tmp_path: Path) -> None:
    absolute = open_store(f"sqlite:///{tmp_path}/state.db")  # tmp_path starts with "/"
    assert isinstance(absolute, SqliteStore) and absolute.path == str(tmp_path / "state.db")
    memory = open_store("sqlite://:memory:")
    assert isinstance(memory, SqliteStore) and memory.path == ":memory:"


def test_open_store_postgres_urls() -> None:
    assert isinstance(open_store("postgresql://u:p@db.example:5432/monitor"), PostgresStore)
    assert isinstance(open_store("postgres://u:p@db.example/monitor"), PostgresStore)


@pytest.mark.parametrize("url", [
    "mysql://root:hunter2@db/state", "redis://:hunter2@cache:6379/0", "hunter2@state.db",
    "", "sqlite://", "sqlite:///", "sqlite:hunter2.db",
])
def test_open_store_rejects_other_urls_without_echoing_them(url: str) -> None:
    with pytest.raises(StoreError) as caught:
        open_store(url)
    assert "hunter2" not in str(caught.value)
