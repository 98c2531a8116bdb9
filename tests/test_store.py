"""The state store, both implementations: SQLite in tmp_path, PostgreSQL on the shared server.

Nothing here changes the shared PostgreSQL beyond one uniquely named schema per test
(``t_<hex>``), dropped afterwards with everything in it.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import sqlite3
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from monitor.alerting.silences import Silence
from monitor.store import open_store
from monitor.store.base import AlertRecord, MinuteCount, StateChange, Store, StoreError
from monitor.store.postgres import _MIGRATIONS as postgres_migrations
from monitor.store.postgres import PostgresStore
from monitor.store.sqlite import _MIGRATIONS as sqlite_migrations
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


async def assert_v1_data_kept_and_silences_work(store: Store) -> None:
    """Opening a version-1 store migrates it: old rows stay, the silences table works."""
    await store.open()
    try:
        assert await store.load_heartbeats() == {"backup": (12.5, False)}
        assert await store.load_silences() == []
        await store.save_silence(silence_record("s"))
        assert await store.load_silences() == [silence_record("s")]
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
    await store.commit(StateChange())
    assert await store.load_alerts() == []


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
    await first.close()

    second = new_store()
    await second.open()
    await second.open()  # opening twice (and migrating an up-to-date schema) is harmless
    assert await second.load_alerts() == [alert("a"), alert("b", fired_at=None, value=None)]
    assert await second.load_counts("web", 0) == [MinuteCount(5, 4, 5)]
    assert await second.load_heartbeats() == {"backup": (12.5, False)}


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
from monitor.store.base import AlertRecord, StateChange
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
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(2,)]


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


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
async def test_sqlite_directory_without_permission_is_a_store_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        with pytest.raises(StoreError) as caught:
            await SqliteStore(str(locked / "state.db")).open()
        assert str(locked / "state.db") in str(caught.value)
    finally:
        locked.chmod(0o700)


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


async def test_sqlite_v1_database_migrates_and_gains_silences(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for statement in sqlite_migrations[0]:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version (version) VALUES (1)")
        conn.execute("INSERT INTO heartbeats (check_name, at, failed) VALUES ('backup', 12.5, 0)")
    conn.close()
    store = SqliteStore(str(path))
    await assert_v1_data_kept_and_silences_work(store)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(2,)]
    conn.close()


# --- PostgreSQL specifics --------------------------------------------------------------------


async def test_postgres_creates_its_schema(pg_schema: str) -> None:
    store = PostgresStore(SHARED_TEST_DSN, schema=pg_schema)
    await store.open()
    await store.close()
    async with await psycopg.AsyncConnection.connect(SHARED_TEST_DSN) as conn:
        cur = await conn.execute("SELECT table_name FROM information_schema.tables"
                                 " WHERE table_schema = %s ORDER BY 1", (pg_schema,))
        assert [r[0] for r in await cur.fetchall()] == ["alerts", "heartbeats", "schema_version", "silences", "slo_counts"]


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


async def test_postgres_v1_schema_migrates_and_gains_silences(pg_schema: str) -> None:
    async with await psycopg.AsyncConnection.connect(SHARED_TEST_DSN, autocommit=True) as conn:
        await conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(pg_schema)))
        await conn.execute(sql.SQL("CREATE TABLE {}.schema_version (version integer NOT NULL)").format(
            sql.Identifier(pg_schema)))
        for statement in postgres_migrations[0]:
            await conn.execute(sql.SQL(statement).format(s=sql.Identifier(pg_schema)))
        await conn.execute(sql.SQL("INSERT INTO {}.schema_version (version) VALUES (1)").format(
            sql.Identifier(pg_schema)))
        await conn.execute(sql.SQL("INSERT INTO {}.heartbeats VALUES ('backup', 12.5, false)").format(
            sql.Identifier(pg_schema)))
    store = PostgresStore(SHARED_TEST_DSN, schema=pg_schema)
    await assert_v1_data_kept_and_silences_work(store)
    async with await psycopg.AsyncConnection.connect(SHARED_TEST_DSN) as conn:
        cur = await conn.execute(sql.SQL("SELECT version FROM {}.schema_version").format(
            sql.Identifier(pg_schema)))
        assert await cur.fetchall() == [(2,)]


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
