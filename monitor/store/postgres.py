"""PostgreSQL state store: one database shared by several replicas.

One connection per store, used by one call at a time (a lock), each call one transaction.
A connection that broke while idle (server restart, failover, idle timeout in a proxy) is
replaced once per call; a second failure, or any failure after COMMIT was sent, is reported.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb

from monitor.core.dsn import dsn_secrets, without_secrets
from monitor.core.results import describe_exception, one_line
from monitor.core.records import AlertRecord, HourCount, MinuteCount, OutboxEntry, StateChange
from monitor.store.base import StoreError, encode_json, finite_or_none, outbox_from_row, outbox_row

T = TypeVar("T")
Cursor = psycopg.AsyncCursor[TupleRow]
Connection = psycopg.AsyncConnection[TupleRow]

SCHEMA_VERSION = 4
DEFAULT_SCHEMA = "monitor"

# _MIGRATIONS[n] takes a schema from version n to n + 1 (0 is an empty schema). {s} is the
# quoted schema name. A later version appends a step; never edit a step that has shipped.
_MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE IF NOT EXISTS {s}.alerts (
            fingerprint  text PRIMARY KEY,
            alertname    text NOT NULL,
            check_name   text NOT NULL,
            state        text NOT NULL CHECK (state IN ('pending', 'firing')),
            labels       jsonb NOT NULL,
            annotations  jsonb NOT NULL,
            active_at    double precision NOT NULL,
            fired_at     double precision,
            last_true_at double precision NOT NULL,
            value        double precision
        )""",
        """CREATE TABLE IF NOT EXISTS {s}.slo_counts (
            check_name text NOT NULL,
            minute     bigint NOT NULL,
            good       bigint NOT NULL,
            total      bigint NOT NULL,
            PRIMARY KEY (check_name, minute)
        )""",
        # prune_counts deletes by minute across all checks; the primary key leads with the check.
        "CREATE INDEX IF NOT EXISTS slo_counts_by_minute ON {s}.slo_counts (minute)",
        """CREATE TABLE IF NOT EXISTS {s}.heartbeats (
            check_name text PRIMARY KEY,
            at         double precision NOT NULL,
            failed     boolean NOT NULL
        )""",
    ],
    [
        """CREATE TABLE IF NOT EXISTS {s}.silences (
            id      text PRIMARY KEY,
            record  jsonb NOT NULL,
            ends_at double precision NOT NULL
        )""",
    ],
    [
        """CREATE TABLE IF NOT EXISTS {s}.outbox (
            id              text PRIMARY KEY,
            seq             bigint NOT NULL,
            target          text NOT NULL,
            payload         jsonb NOT NULL,
            created_at      double precision NOT NULL,
            attempts        integer NOT NULL DEFAULT 0,
            next_attempt_at double precision NOT NULL DEFAULT 0,
            last_error      text NOT NULL DEFAULT '',
            claimed_until   double precision,
            done_at         double precision,
            outcome         text CHECK (outcome IN ('delivered', 'failed')),
            CHECK ((done_at IS NULL) = (outcome IS NULL))
        )""",
        # load_outbox reads the unfinished rows in seq order; prune_outbox deletes finished
        # rows by done_at. Partial indexes: each holds only the rows its query can want.
        "CREATE INDEX IF NOT EXISTS outbox_unfinished ON {s}.outbox (seq, id) WHERE done_at IS NULL",
        "CREATE INDEX IF NOT EXISTS outbox_finished ON {s}.outbox (done_at) WHERE done_at IS NOT NULL",
        """CREATE TABLE IF NOT EXISTS {s}.notify_groups (
            id     text PRIMARY KEY,
            record jsonb NOT NULL
        )""",
    ],
    [
        # One row per check and hour: a month of uptime is 720 rows per check, and the
        # status page's 24 h / 7 d / 30 d figures are sums over them.
        """CREATE TABLE IF NOT EXISTS {s}.uptime_hours (
            check_name TEXT NOT NULL,
            hour       INTEGER NOT NULL,
            good       INTEGER NOT NULL,
            total      INTEGER NOT NULL,
            PRIMARY KEY (check_name, hour)
        )""",
        "CREATE INDEX IF NOT EXISTS uptime_hours_by_hour ON {s}.uptime_hours (hour)",
    ],
]

_UPSERT_ALERT = """
    INSERT INTO {s}.alerts (fingerprint, alertname, check_name, state, labels, annotations,
                            active_at, fired_at, last_true_at, value)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (fingerprint) DO UPDATE SET
        alertname = excluded.alertname, check_name = excluded.check_name,
        state = excluded.state, labels = excluded.labels, annotations = excluded.annotations,
        active_at = excluded.active_at, fired_at = excluded.fired_at,
        last_true_at = excluded.last_true_at, value = excluded.value
"""
_SELECT_ALERTS = """
    SELECT fingerprint, alertname, check_name, state, labels, annotations,
           active_at, fired_at, last_true_at, value
    FROM {s}.alerts ORDER BY fingerprint
"""
_ADD_COUNT = """
    INSERT INTO {s}.slo_counts AS c (check_name, minute, good, total) VALUES (%s, %s, %s, %s)
    ON CONFLICT (check_name, minute) DO UPDATE SET
        good = c.good + excluded.good, total = c.total + excluded.total
"""
_ADD_UPTIME = """
    INSERT INTO {s}.uptime_hours AS u (check_name, hour, good, total) VALUES (%s, %s, %s, %s)
    ON CONFLICT (check_name, hour) DO UPDATE SET
        good = u.good + excluded.good, total = u.total + excluded.total
"""
_SAVE_HEARTBEAT = """
    INSERT INTO {s}.heartbeats (check_name, at, failed) VALUES (%s, %s, %s)
    ON CONFLICT (check_name) DO UPDATE SET at = excluded.at, failed = excluded.failed
"""
_SAVE_SILENCE = """
    INSERT INTO {s}.silences (id, record, ends_at) VALUES (%s, %s, %s)
    ON CONFLICT (id) DO UPDATE SET record = excluded.record, ends_at = excluded.ends_at
"""
# A plain INSERT: an id that is already there is an error, and rolls back the whole commit.
# Payloads and records arrive as JSON text, encoded before the transaction (see base.encode_json).
_INSERT_OUTBOX = """
    INSERT INTO {s}.outbox (id, seq, target, payload, created_at, attempts, next_attempt_at,
                            last_error)
    VALUES (%s, %s, %s, %s::jsonb, %s, %s, %s, %s)
"""
_SELECT_OUTBOX = """
    SELECT id, seq, target, payload, created_at, attempts, next_attempt_at, last_error
    FROM {s}.outbox WHERE done_at IS NULL ORDER BY seq, id
"""
# One statement, so concurrent claims of one row queue on its lock and the later one
# re-checks the WHERE against the winner's claim (READ COMMITTED): exactly one changes it.
_CLAIM_OUTBOX = """
    UPDATE {s}.outbox SET claimed_until = %s
    WHERE id = %s AND done_at IS NULL AND (claimed_until IS NULL OR claimed_until <= %s)
"""
_RELEASE_CLAIMS = "UPDATE {s}.outbox SET claimed_until = NULL WHERE done_at IS NULL AND claimed_until IS NOT NULL"
_RETRY_OUTBOX = """
    UPDATE {s}.outbox SET attempts = %s, next_attempt_at = %s, last_error = %s,
                          claimed_until = NULL
    WHERE id = %s
"""
_FINISH_OUTBOX = """
    UPDATE {s}.outbox SET done_at = %s, outcome = %s, last_error = %s, claimed_until = NULL
    WHERE id = %s
"""
_UPSERT_GROUP = """
    INSERT INTO {s}.notify_groups (id, record) VALUES (%s, %s::jsonb)
    ON CONFLICT (id) DO UPDATE SET record = excluded.record
"""



class PostgresStore:
    """``Store`` in one schema (created if missing) of a PostgreSQL database."""

    def __init__(self, dsn: str, *, schema: str = DEFAULT_SCHEMA, timeout: float = 10.0) -> None:
        self._dsn = dsn
        self._schema = schema
        self._timeout = timeout
        self._conn: Connection | None = None
        self._open = False
        self._lock = asyncio.Lock()
        self._secrets = dsn_secrets(dsn)
        self._where = f"postgres state store {_describe(dsn)} schema {schema}"

    async def open(self) -> None:
        self._open = True
        try:
            await self._run(self._migrate)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        self._open = False
        async with self._lock:
            await self._discard()

    async def load_alerts(self) -> list[AlertRecord]:
        async def work(cur: Cursor) -> list[AlertRecord]:
            await cur.execute(self._sql(_SELECT_ALERTS))
            return [_alert_from_row(row) for row in await cur.fetchall()]

        return await self._run(work)

    async def commit(self, change: StateChange) -> None:
        if not change:
            return
        upserts = [_alert_params(record) for record in change.upsert]
        deletes = [(fingerprint,) for fingerprint in change.delete]
        entries = [outbox_row(self._where, entry) for entry in change.outbox]
        group_upserts = [(group_id, encode_json(self._where, f"notification group {group_id}", record))
                         for group_id, record in change.groups.items() if record is not None]
        group_deletes = [group_id for group_id, record in change.groups.items() if record is None]

        async def work(cur: Cursor) -> None:
            # Upserts first, then deletes: a fingerprint in both lists ends up deleted.
            if upserts:
                await cur.executemany(self._sql(_UPSERT_ALERT), upserts)
            if deletes:
                await cur.executemany(self._sql("DELETE FROM {s}.alerts WHERE fingerprint = %s"),
                                      deletes)
            if entries:
                await cur.executemany(self._sql(_INSERT_OUTBOX), entries)
            if group_upserts:
                await cur.executemany(self._sql(_UPSERT_GROUP), group_upserts)
            if group_deletes:
                await cur.execute(self._sql("DELETE FROM {s}.notify_groups WHERE id = ANY(%s)"),
                                  (group_deletes,))

        await self._run(work)

    async def add_counts(self, check: str, counts: list[MinuteCount]) -> None:
        params = [(check, c.minute, c.good, c.total) for c in counts]

        async def work(cur: Cursor) -> None:
            # One statement per row (psycopg pipelines them): a single multi-row INSERT would
            # fail when the list names the same minute twice ("cannot affect row a second time").
            if params:
                await cur.executemany(self._sql(_ADD_COUNT), params)

        await self._run(work)

    async def load_counts(self, check: str, since_minute: int) -> list[MinuteCount]:
        async def work(cur: Cursor) -> list[MinuteCount]:
            await cur.execute(self._sql(
                "SELECT minute, good, total FROM {s}.slo_counts"
                " WHERE check_name = %s AND minute >= %s ORDER BY minute"), (check, since_minute))
            return [MinuteCount(minute=row[0], good=row[1], total=row[2])
                    for row in await cur.fetchall()]

        return await self._run(work)

    async def prune_counts(self, before_minute: int) -> None:
        async def work(cur: Cursor) -> None:
            await cur.execute(self._sql("DELETE FROM {s}.slo_counts WHERE minute < %s"),
                              (before_minute,))

        await self._run(work)

    async def add_uptime(self, check: str, hours: list[HourCount]) -> None:
        params = [(check, h.hour, h.good, h.total) for h in hours]

        async def work(cur: Cursor) -> None:
            if params:  # one statement per row, as add_counts (an hour may repeat)
                await cur.executemany(self._sql(_ADD_UPTIME), params)

        await self._run(work)

    async def load_uptime(self, since_hour: int) -> dict[str, list[HourCount]]:
        async def work(cur: Cursor) -> dict[str, list[HourCount]]:
            await cur.execute(self._sql(
                "SELECT check_name, hour, good, total FROM {s}.uptime_hours"
                " WHERE hour >= %s ORDER BY check_name, hour"), (since_hour,))
            out: dict[str, list[HourCount]] = {}
            for name, hour, good, total in await cur.fetchall():
                out.setdefault(name, []).append(HourCount(hour=hour, good=good, total=total))
            return out

        return await self._run(work)

    async def prune_uptime(self, before_hour: int) -> None:
        async def work(cur: Cursor) -> None:
            await cur.execute(self._sql("DELETE FROM {s}.uptime_hours WHERE hour < %s"), (before_hour,))

        await self._run(work)

    async def save_heartbeat(self, check: str, at: float, failed: bool) -> None:
        async def work(cur: Cursor) -> None:
            await cur.execute(self._sql(_SAVE_HEARTBEAT), (check, at, failed))

        await self._run(work)

    async def load_heartbeats(self) -> dict[str, tuple[float, bool]]:
        async def work(cur: Cursor) -> dict[str, tuple[float, bool]]:
            await cur.execute(self._sql("SELECT check_name, at, failed FROM {s}.heartbeats"))
            return {row[0]: (row[1], row[2]) for row in await cur.fetchall()}

        return await self._run(work)

    async def save_silence(self, record: dict[str, Any]) -> None:
        params = (str(record["id"]), Jsonb(record), float(record["ends_at"]))

        async def work(cur: Cursor) -> None:
            await cur.execute(self._sql(_SAVE_SILENCE), params)

        await self._run(work)

    async def load_silences(self) -> list[dict[str, Any]]:
        async def work(cur: Cursor) -> list[dict[str, Any]]:
            await cur.execute(self._sql("SELECT record FROM {s}.silences ORDER BY ends_at, id"))
            return [dict(row[0]) for row in await cur.fetchall()]

        return await self._run(work)

    async def delete_silences(self, ids: list[str]) -> None:
        async def work(cur: Cursor) -> None:
            if ids:
                await cur.execute(self._sql("DELETE FROM {s}.silences WHERE id = ANY(%s)"), (list(ids),))

        await self._run(work)

    async def load_groups(self) -> dict[str, dict[str, Any]]:
        async def work(cur: Cursor) -> dict[str, dict[str, Any]]:
            await cur.execute(self._sql("SELECT id, record FROM {s}.notify_groups ORDER BY id"))
            return {row[0]: dict(row[1]) for row in await cur.fetchall()}

        return await self._run(work)

    async def load_outbox(self) -> list[OutboxEntry]:
        async def work(cur: Cursor) -> list[OutboxEntry]:
            await cur.execute(self._sql(_SELECT_OUTBOX))
            return [outbox_from_row(row, dict(row[3])) for row in await cur.fetchall()]

        return await self._run(work)

    async def claim_outbox(self, entry_id: str, now: float, until: float) -> bool:
        async def work(cur: Cursor) -> bool:
            await cur.execute(self._sql(_CLAIM_OUTBOX), (until, entry_id, now))
            return cur.rowcount == 1

        return await self._run(work)

    async def release_claims(self) -> int:
        async def work(cur: Cursor) -> int:
            await cur.execute(self._sql(_RELEASE_CLAIMS))
            return cur.rowcount

        return await self._run(work)

    async def retry_outbox(self, entry_id: str, attempts: int, next_attempt_at: float, error: str) -> None:
        async def work(cur: Cursor) -> None:
            await cur.execute(self._sql(_RETRY_OUTBOX), (attempts, next_attempt_at, error, entry_id))

        await self._run(work)

    async def finish_outbox(self, entry_id: str, outcome: str, at: float, error: str = "") -> None:
        async def work(cur: Cursor) -> None:
            await cur.execute(self._sql(_FINISH_OUTBOX), (at, outcome, error, entry_id))

        await self._run(work)

    async def prune_outbox(self, before: float) -> None:
        async def work(cur: Cursor) -> None:
            await cur.execute(self._sql("DELETE FROM {s}.outbox WHERE done_at < %s"), (before,))

        await self._run(work)

    # --- plumbing ---------------------------------------------------------------------------

    async def _migrate(self, cur: Cursor) -> None:
        # Replicas starting together would race on CREATE ... IF NOT EXISTS (it checks, then
        # creates, and the loser gets a unique violation); a transaction-scoped advisory lock
        # per schema makes them take turns.
        await cur.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(self._schema),))
        # Looked up rather than CREATE SCHEMA IF NOT EXISTS, which needs the CREATE privilege
        # on the database even when the schema is already there.
        await cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self._schema,))
        if await cur.fetchone() is None:
            await cur.execute(self._sql("CREATE SCHEMA {s}"))
        await cur.execute(self._sql(
            "CREATE TABLE IF NOT EXISTS {s}.schema_version (version integer NOT NULL)"))
        await cur.execute(self._sql("SELECT max(version) FROM {s}.schema_version"))
        row = await cur.fetchone()
        found: int = row[0] if row is not None and row[0] is not None else 0
        if found > SCHEMA_VERSION:
            raise StoreError(one_line(
                f"{self._where}: schema version {found} is newer than this monitor understands"
                f" ({SCHEMA_VERSION}); upgrade the monitor"))
        for step in _MIGRATIONS[found:]:
            for statement in step:
                await cur.execute(self._sql(statement))
        if found < SCHEMA_VERSION:
            await cur.execute(self._sql("DELETE FROM {s}.schema_version"))
            await cur.execute(self._sql("INSERT INTO {s}.schema_version (version) VALUES (%s)"),
                              (SCHEMA_VERSION,))

    def _sql(self, template: str) -> sql.Composed:
        # The templates are constants of this module; only the schema name is spliced in, quoted.
        return sql.SQL(template).format(s=sql.Identifier(self._schema))

    async def _run(self, work: Callable[[Cursor], Awaitable[T]]) -> T:
        async with self._lock:
            # Checked under the lock: a call queued behind close() must not reconnect.
            if not self._open:
                raise StoreError(f"{self._where}: not open")
            try:
                async with asyncio.timeout(self._timeout):
                    return await self._attempt(work)
            except TimeoutError:
                # Whatever the connection was doing is unknown now: never reuse it.
                await self._discard()
                raise StoreError(f"{self._where}: timed out after {self._timeout:g}s") from None

    async def _attempt(self, work: Callable[[Cursor], Awaitable[T]]) -> T:
        for attempt in (1, 2):
            conn = await self._connection()
            try:
                async with conn.cursor() as cur:
                    result = await work(cur)
            except StoreError:
                await self._rollback(conn)
                raise
            except (psycopg.Error, OSError, ValueError) as err:
                if attempt == 1 and conn.broken:
                    # Broke before COMMIT, so the server rolled it back: safe to run again.
                    await self._discard()
                    continue
                await self._rollback(conn)
                raise self._error(err) from err
            try:
                await conn.commit()
            except (psycopg.Error, OSError) as err:
                # No retry: COMMIT may have reached the server, and add_counts is not idempotent.
                await self._discard()
                raise self._error(err) from err
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    async def _connection(self) -> Connection:
        conn = self._conn
        if conn is not None and not conn.closed \
                and conn.info.transaction_status == TransactionStatus.IDLE:
            return conn
        # Anything but idle means an earlier call was cancelled midway: start afresh rather
        # than let its half-done statements ride along with the next commit.
        await self._discard()
        try:
            # connect_timeout bounds the handshake (libpq: whole seconds, at least 2).
            self._conn = await psycopg.AsyncConnection.connect(
                self._dsn, autocommit=False, connect_timeout=max(2, math.ceil(self._timeout)),
                application_name="monitor-store")
        except (psycopg.Error, OSError) as err:
            # from None: libpq may quote the DSN, password included, in the chained error.
            raise self._error(err) from None
        return self._conn

    async def _rollback(self, conn: Connection) -> None:
        try:
            await conn.rollback()
        except psycopg.Error:
            await self._discard()

    async def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except psycopg.Error:
                pass  # it is going away either way

    def _error(self, err: BaseException) -> StoreError:
        message = without_secrets(describe_exception(err), self._secrets)
        return StoreError(one_line(f"{self._where}: {message}"))


def _alert_params(record: AlertRecord) -> tuple[Any, ...]:
    return (record.fingerprint, record.alertname, record.check, record.state,
            Jsonb(record.labels), Jsonb(record.annotations), record.active_at,
            record.fired_at, record.last_true_at, finite_or_none(record.value))


def _alert_from_row(row: TupleRow) -> AlertRecord:
    return AlertRecord(fingerprint=row[0], alertname=row[1], check=row[2], state=row[3],
                       labels=row[4], annotations=row[5], active_at=row[6], fired_at=row[7],
                       last_true_at=row[8], value=row[9])



def _lock_key(schema: str) -> int:
    digest = hashlib.blake2b(f"monitor.store:{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _describe(dsn: str) -> str:
    """host:port/dbname, never the user or password."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error:
        return "(unparsable DSN)"
    host = params.get("host") or params.get("hostaddr") or "localhost"
    port = params.get("port") or "5432"
    return f"{host}:{port}/{params.get('dbname') or ''}"
