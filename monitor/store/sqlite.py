"""SQLite state store: the embedded default, one file beside the daemon.

sqlite3 blocks, and a connection belongs to the thread that opened it. So every call runs on
one dedicated worker thread: the event loop never waits on the disk, the connection never
changes threads, and calls run one at a time in the order they were made, which serializes
writers without a lock (and makes ``close`` wait for the writes queued before it).
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

from monitor.core.results import describe_exception, one_line
from monitor.core.records import AlertRecord, HourCount, MinuteCount, OutboxEntry, StateChange
from monitor.store.base import StoreError, encode_json, finite_or_none, outbox_from_row, outbox_row

T = TypeVar("T")

MEMORY = ":memory:"
SCHEMA_VERSION = 4

# _MIGRATIONS[n] takes a database from schema version n to n + 1 (0 is a new, empty file).
# A later version appends a step; never edit a step that has shipped.
_MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE IF NOT EXISTS alerts (
            fingerprint  TEXT PRIMARY KEY,
            alertname    TEXT NOT NULL,
            check_name   TEXT NOT NULL,
            state        TEXT NOT NULL CHECK (state IN ('pending', 'firing')),
            labels       TEXT NOT NULL,
            annotations  TEXT NOT NULL,
            active_at    REAL NOT NULL,
            fired_at     REAL,
            last_true_at REAL NOT NULL,
            value        REAL
        )""",
        """CREATE TABLE IF NOT EXISTS slo_counts (
            check_name TEXT NOT NULL,
            minute     INTEGER NOT NULL,
            good       INTEGER NOT NULL,
            total      INTEGER NOT NULL,
            PRIMARY KEY (check_name, minute)
        )""",
        # prune_counts deletes by minute across all checks; the primary key leads with the check.
        "CREATE INDEX IF NOT EXISTS slo_counts_by_minute ON slo_counts (minute)",
        """CREATE TABLE IF NOT EXISTS heartbeats (
            check_name TEXT PRIMARY KEY,
            at         REAL NOT NULL,
            failed     INTEGER NOT NULL
        )""",
    ],
    [
        """CREATE TABLE IF NOT EXISTS silences (
            id      TEXT PRIMARY KEY,
            record  TEXT NOT NULL,
            ends_at REAL NOT NULL
        )""",
    ],
    [
        """CREATE TABLE IF NOT EXISTS outbox (
            id              TEXT PRIMARY KEY,
            seq             INTEGER NOT NULL,
            target          TEXT NOT NULL,
            payload         TEXT NOT NULL,
            created_at      REAL NOT NULL,
            attempts        INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL DEFAULT 0,
            last_error      TEXT NOT NULL DEFAULT '',
            claimed_until   REAL,
            done_at         REAL,
            outcome         TEXT CHECK (outcome IN ('delivered', 'failed')),
            CHECK ((done_at IS NULL) = (outcome IS NULL))
        )""",
        # load_outbox reads the unfinished rows in seq order; prune_outbox deletes finished
        # rows by done_at. Partial indexes: each holds only the rows its query can want.
        "CREATE INDEX IF NOT EXISTS outbox_unfinished ON outbox (seq, id) WHERE done_at IS NULL",
        "CREATE INDEX IF NOT EXISTS outbox_finished ON outbox (done_at) WHERE done_at IS NOT NULL",
        """CREATE TABLE IF NOT EXISTS notify_groups (
            id     TEXT PRIMARY KEY,
            record TEXT NOT NULL
        )""",
    ],
    [
        # One row per check and hour: a month of uptime is 720 rows per check, and the
        # status page's 24 h / 7 d / 30 d figures are sums over them.
        """CREATE TABLE IF NOT EXISTS uptime_hours (
            check_name TEXT NOT NULL,
            hour       INTEGER NOT NULL,
            good       INTEGER NOT NULL,
            total      INTEGER NOT NULL,
            PRIMARY KEY (check_name, hour)
        )""",
        "CREATE INDEX IF NOT EXISTS uptime_hours_by_hour ON uptime_hours (hour)",
    ],
]

_UPSERT_ALERT = """
    INSERT INTO alerts (fingerprint, alertname, check_name, state, labels, annotations,
                        active_at, fired_at, last_true_at, value)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (fingerprint) DO UPDATE SET
        alertname = excluded.alertname, check_name = excluded.check_name,
        state = excluded.state, labels = excluded.labels, annotations = excluded.annotations,
        active_at = excluded.active_at, fired_at = excluded.fired_at,
        last_true_at = excluded.last_true_at, value = excluded.value
"""
_SELECT_ALERTS = """
    SELECT fingerprint, alertname, check_name, state, labels, annotations,
           active_at, fired_at, last_true_at, value
    FROM alerts ORDER BY fingerprint
"""
_ADD_COUNT = """
    INSERT INTO slo_counts (check_name, minute, good, total) VALUES (?, ?, ?, ?)
    ON CONFLICT (check_name, minute) DO UPDATE SET
        good = good + excluded.good, total = total + excluded.total
"""
_ADD_UPTIME = """
    INSERT INTO uptime_hours (check_name, hour, good, total) VALUES (?, ?, ?, ?)
    ON CONFLICT (check_name, hour) DO UPDATE SET
        good = good + excluded.good, total = total + excluded.total
"""
_SAVE_HEARTBEAT = """
    INSERT INTO heartbeats (check_name, at, failed) VALUES (?, ?, ?)
    ON CONFLICT (check_name) DO UPDATE SET at = excluded.at, failed = excluded.failed
"""
_SAVE_SILENCE = """
    INSERT INTO silences (id, record, ends_at) VALUES (?, ?, ?)
    ON CONFLICT (id) DO UPDATE SET record = excluded.record, ends_at = excluded.ends_at
"""
# A plain INSERT: an id that is already there is an error, and rolls back the whole commit.
_INSERT_OUTBOX = """
    INSERT INTO outbox (id, seq, target, payload, created_at, attempts, next_attempt_at,
                        last_error)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""
_SELECT_OUTBOX = """
    SELECT id, seq, target, payload, created_at, attempts, next_attempt_at, last_error
    FROM outbox WHERE done_at IS NULL ORDER BY seq, id
"""
_CLAIM_OUTBOX = """
    UPDATE outbox SET claimed_until = ?
    WHERE id = ? AND done_at IS NULL AND (claimed_until IS NULL OR claimed_until <= ?)
"""
_RELEASE_CLAIMS = "UPDATE outbox SET claimed_until = NULL WHERE done_at IS NULL AND claimed_until IS NOT NULL"
_RETRY_OUTBOX = """
    UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ?, claimed_until = NULL
    WHERE id = ?
"""
_FINISH_OUTBOX = """
    UPDATE outbox SET done_at = ?, outcome = ?, last_error = ?, claimed_until = NULL
    WHERE id = ?
"""
_UPSERT_GROUP = """
    INSERT INTO notify_groups (id, record) VALUES (?, ?)
    ON CONFLICT (id) DO UPDATE SET record = excluded.record
"""


class SqliteStore:
    """``Store`` on one SQLite file (or ``:memory:``, private to this instance, for tests)."""

    def __init__(self, path: str, *, busy_timeout: float = 5.0) -> None:
        # Resolved now, so a later chdir cannot move the database and errors name the real file.
        self._path = path if path == MEMORY else os.path.abspath(path)
        self._busy_timeout = busy_timeout
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    @property
    def path(self) -> str:
        return self._path

    async def open(self) -> None:
        if self._conn is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="monitor-store-sqlite")
        try:
            self._conn = await self._run(self._connect)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    async def close(self) -> None:
        conn, executor = self._conn, self._executor
        self._conn, self._executor = None, None
        if executor is None:
            return
        try:
            if conn is not None:
                # Queued behind any work still pending, so that work finishes first.
                await asyncio.get_running_loop().run_in_executor(executor, conn.close)
        finally:
            # The worker is idle now; don't block the loop joining it, it exits by itself.
            executor.shutdown(wait=False)

    async def load_alerts(self) -> list[AlertRecord]:
        rows = await self._call(lambda conn: conn.execute(_SELECT_ALERTS).fetchall())
        return [_alert_from_row(row) for row in rows]

    async def commit(self, change: StateChange) -> None:
        if not change:
            return
        # Encoded before the transaction starts: a bad record fails before anything is written.
        upserts = [_alert_params(record) for record in change.upsert]
        deletes = [(fingerprint,) for fingerprint in change.delete]
        where = f"sqlite state store {self._path}"
        entries = [outbox_row(where, entry) for entry in change.outbox]
        group_upserts = [(group_id, encode_json(where, f"notification group {group_id}", record))
                         for group_id, record in change.groups.items() if record is not None]
        group_deletes = [(group_id,) for group_id, record in change.groups.items() if record is None]

        def work(conn: sqlite3.Connection) -> None:
            with _write_transaction(conn):
                # Upserts first, then deletes: a fingerprint in both lists ends up deleted.
                conn.executemany(_UPSERT_ALERT, upserts)
                conn.executemany("DELETE FROM alerts WHERE fingerprint = ?", deletes)
                conn.executemany(_INSERT_OUTBOX, entries)
                conn.executemany(_UPSERT_GROUP, group_upserts)
                conn.executemany("DELETE FROM notify_groups WHERE id = ?", group_deletes)

        await self._call(work)

    async def add_counts(self, check: str, counts: list[MinuteCount]) -> None:
        params = [(check, c.minute, c.good, c.total) for c in counts]

        def work(conn: sqlite3.Connection) -> None:
            with _write_transaction(conn):
                conn.executemany(_ADD_COUNT, params)

        await self._call(work)

    async def load_counts(self, check: str, since_minute: int) -> list[MinuteCount]:
        rows = await self._call(lambda conn: conn.execute(
            "SELECT minute, good, total FROM slo_counts WHERE check_name = ? AND minute >= ?"
            " ORDER BY minute", (check, since_minute)).fetchall())
        return [MinuteCount(minute=row[0], good=row[1], total=row[2]) for row in rows]

    async def prune_counts(self, before_minute: int) -> None:
        def work(conn: sqlite3.Connection) -> None:
            with _write_transaction(conn):
                conn.execute("DELETE FROM slo_counts WHERE minute < ?", (before_minute,))

        await self._call(work)

    async def add_uptime(self, check: str, hours: list[HourCount]) -> None:
        params = [(check, h.hour, h.good, h.total) for h in hours]

        def work(conn: sqlite3.Connection) -> None:
            with _write_transaction(conn):
                conn.executemany(_ADD_UPTIME, params)

        await self._call(work)

    async def load_uptime(self, since_hour: int) -> dict[str, list[HourCount]]:
        rows = await self._call(lambda conn: conn.execute(
            "SELECT check_name, hour, good, total FROM uptime_hours WHERE hour >= ?"
            " ORDER BY check_name, hour", (since_hour,)).fetchall())
        out: dict[str, list[HourCount]] = {}
        for name, hour, good, total in rows:
            out.setdefault(name, []).append(HourCount(hour=hour, good=good, total=total))
        return out

    async def prune_uptime(self, before_hour: int) -> None:
        def work(conn: sqlite3.Connection) -> None:
            with _write_transaction(conn):
                conn.execute("DELETE FROM uptime_hours WHERE hour < ?", (before_hour,))

        await self._call(work)

    async def save_heartbeat(self, check: str, at: float, failed: bool) -> None:
        def work(conn: sqlite3.Connection) -> None:
            with _write_transaction(conn):
                conn.execute(_SAVE_HEARTBEAT, (check, at, int(failed)))

        await self._call(work)

    async def load_heartbeats(self) -> dict[str, tuple[float, bool]]:
        rows = await self._call(lambda conn: conn.execute(
            "SELECT check_name, at, failed FROM heartbeats").fetchall())
        return {row[0]: (row[1], bool(row[2])) for row in rows}

    async def save_silence(self, record: dict[str, Any]) -> None:
        # Encoded here, on the caller's thread: a bad record fails before anything is written.
        params = (str(record["id"]), json.dumps(record, ensure_ascii=False), float(record["ends_at"]))

        def work(conn: sqlite3.Connection) -> None:
            with _write_transaction(conn):
                conn.execute(_SAVE_SILENCE, params)

        await self._call(work)

    async def load_silences(self) -> list[dict[str, Any]]:
        rows = await self._call(lambda conn: conn.execute(
            "SELECT record FROM silences ORDER BY ends_at, id").fetchall())
        return [json.loads(row[0]) for row in rows]

    async def delete_silences(self, ids: list[str]) -> None:
        params = [(silence_id,) for silence_id in ids]

        def work(conn: sqlite3.Connection) -> None:
            with _write_transaction(conn):
                conn.executemany("DELETE FROM silences WHERE id = ?", params)

        await self._call(work)

    async def load_groups(self) -> dict[str, dict[str, Any]]:
        rows = await self._call(lambda conn: conn.execute(
            "SELECT id, record FROM notify_groups ORDER BY id").fetchall())
        return {row[0]: json.loads(row[1]) for row in rows}

    async def load_outbox(self) -> list[OutboxEntry]:
        rows = await self._call(lambda conn: conn.execute(_SELECT_OUTBOX).fetchall())
        return [outbox_from_row(row, json.loads(row[3])) for row in rows]

    async def claim_outbox(self, entry_id: str, now: float, until: float) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            with _write_transaction(conn):
                return conn.execute(_CLAIM_OUTBOX, (until, entry_id, now)).rowcount == 1

        return await self._call(work)

    async def release_claims(self) -> int:
        def work(conn: sqlite3.Connection) -> int:
            with _write_transaction(conn):
                return conn.execute(_RELEASE_CLAIMS).rowcount

        return await self._call(work)

    async def retry_outbox(self, entry_id: str, attempts: int, next_attempt_at: float, error: str) -> None:
        def work(conn: sqlite3.Connection) -> None:
            with _write_transaction(conn):
                conn.execute(_RETRY_OUTBOX, (attempts, next_attempt_at, error, entry_id))

        await self._call(work)

    async def finish_outbox(self, entry_id: str, outcome: str, at: float, error: str = "") -> None:
        def work(conn: sqlite3.Connection) -> None:
            with _write_transaction(conn):
                conn.execute(_FINISH_OUTBOX, (at, outcome, error, entry_id))

        await self._call(work)

    async def prune_outbox(self, before: float) -> None:
        def work(conn: sqlite3.Connection) -> None:
            with _write_transaction(conn):
                conn.execute("DELETE FROM outbox WHERE done_at < ?", (before,))

        await self._call(work)

    # --- plumbing ---------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        """Runs on the worker thread, so the connection belongs to it."""
        if self._path != MEMORY:
            os.makedirs(os.path.dirname(self._path), exist_ok=True)
        # timeout= is sqlite's busy timeout: wait this long for another process's lock, then
        # fail with "database is locked". isolation_level=None: we issue BEGIN/COMMIT ourselves.
        conn = sqlite3.connect(self._path, timeout=self._busy_timeout, isolation_level=None)
        try:
            # WAL: a commit is one append to the -wal file, and readers never block the writer.
            # (On filesystems without shared memory sqlite keeps its old journal; still safe.)
            conn.execute("PRAGMA journal_mode=WAL")
            # synchronous=NORMAL in WAL mode writes every commit into the -wal file before COMMIT
            # returns but fsyncs only at checkpoints. Once write(2) returns the data is in the
            # kernel's page cache, so kill -9 of this process cannot lose a committed change;
            # only an OS crash or power cut can drop the last few commits, and even that rolls
            # back whole transactions, never corrupting the file. FULL would pay an fsync per
            # commit for a guarantee the Store interface does not make.
            conn.execute("PRAGMA synchronous=NORMAL")
            self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        with _write_transaction(conn):
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            found = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] or 0
            if found > SCHEMA_VERSION:
                raise StoreError(one_line(
                    f"sqlite state store {self._path}: schema version {found} is newer than this"
                    f" monitor understands ({SCHEMA_VERSION}); upgrade the monitor"))
            for step in _MIGRATIONS[found:]:
                for statement in step:
                    conn.execute(statement)
            if found < SCHEMA_VERSION:
                conn.execute("DELETE FROM schema_version")
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))

    async def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._conn
        if conn is None:
            raise StoreError(f"sqlite state store {self._path}: not open")
        return await self._run(lambda: work(conn))

    async def _run(self, work: Callable[[], T]) -> T:
        executor = self._executor
        if executor is None:
            raise StoreError(f"sqlite state store {self._path}: not open")
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, work)
        # ValueError: text sqlite cannot encode (lone surrogates); OverflowError: ints > 64 bits.
        except (sqlite3.Error, OSError, ValueError, OverflowError) as err:
            raise StoreError(one_line(
                f"sqlite state store {self._path}: {describe_exception(err)}")) from err


@contextmanager
def _write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    # IMMEDIATE takes the write lock up front, so waiting for another writer happens here,
    # under the busy timeout, instead of failing at once when a read lock can't be upgraded.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _alert_params(record: AlertRecord) -> tuple[Any, ...]:
    return (record.fingerprint, record.alertname, record.check, record.state,
            _json(record.labels), _json(record.annotations), record.active_at,
            record.fired_at, record.last_true_at, finite_or_none(record.value))


def _alert_from_row(row: tuple[Any, ...]) -> AlertRecord:
    return AlertRecord(fingerprint=row[0], alertname=row[1], check=row[2], state=row[3],
                       labels=json.loads(row[4]), annotations=json.loads(row[5]),
                       active_at=row[6], fired_at=row[7], last_true_at=row[8], value=row[9])


def _json(mapping: dict[str, str]) -> str:
    return json.dumps(mapping, ensure_ascii=False, sort_keys=True)

