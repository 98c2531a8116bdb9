"""The store: small protocols, one per kind of data kept across restarts (alert states and
notification groups, SLO minute counts, heartbeat times, silences, the notification outbox).

Two backends implement them all: SQLite (the embedded default) and PostgreSQL (state in a
database of your own). Every write method is one transaction: after it returns, the change
survives ``kill -9``; if the process dies inside it, none of it happened.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, Protocol

from monitor.core.records import AlertRecord, HourCount, MinuteCount, OutboxEntry, StateChange
from monitor.core.results import describe_exception, one_line


class ChangeStore(Protocol):
    """Alert states and notification groups, written together as one ``StateChange``."""

    async def commit(self, change: StateChange) -> None:
        """Apply one change in one transaction (upserts, deletes, outbox rows, group records)."""

    async def load_alerts(self) -> list[AlertRecord]: ...

    async def load_groups(self) -> dict[str, dict[str, Any]]:
        """Every notification group record written by ``commit`` (``StateChange.groups``)."""


class CountStore(Protocol):
    """Per-minute good/total counts of the checks with an SLO."""

    async def add_counts(self, check: str, counts: list[MinuteCount]) -> None:
        """Add to the per-minute good/total counts of ``check`` (summing into existing minutes)."""

    async def load_counts(self, check: str, since_minute: int) -> list[MinuteCount]: ...

    async def prune_counts(self, before_minute: int) -> None: ...


class UptimeStore(Protocol):
    """Per-hour up/total run counts of every check (the status page's 24 h / 7 d / 30 d uptime)."""

    async def add_uptime(self, check: str, hours: list[HourCount]) -> None:
        """Add to the per-hour counts of ``check`` (summing into existing hours)."""

    async def load_uptime(self, since_hour: int) -> dict[str, list[HourCount]]: ...

    async def prune_uptime(self, before_hour: int) -> None: ...


class HeartbeatStore(Protocol):
    """The last push of each heartbeat check, so a job that just ran is not late after a restart."""

    async def save_heartbeat(self, check: str, at: float, failed: bool) -> None: ...

    async def load_heartbeats(self) -> dict[str, tuple[float, bool]]: ...


class SilenceStore(Protocol):
    async def save_silence(self, record: dict[str, Any]) -> None:
        """Insert or replace a silence by ``record["id"]`` (``Silence.to_record()``)."""

    async def load_silences(self) -> list[dict[str, Any]]: ...

    async def delete_silences(self, ids: list[str]) -> None:
        """Forget these silences; unknown ids are ignored."""


class OutboxStore(Protocol):
    """Delivery bookkeeping of the notifications ``commit`` queued (``StateChange.outbox``)."""

    async def load_outbox(self) -> list[OutboxEntry]:
        """Entries not yet finished (delivered or failed), in ``seq`` order."""

    async def claim_outbox(self, entry_id: str, now: float, until: float) -> bool:
        """Compare-and-set: take the entry for sending until ``until``. False when it is
        finished, gone, or claimed by someone else whose claim has not run out by ``now``."""

    async def release_claims(self) -> int:
        """Release every claim on unfinished entries; how many there were. Called at start:
        one daemon per store (docs/architecture.md), so a claim found then was left by a run
        of this daemon that died mid-send, and waiting out its lease would only delay pages."""

    async def retry_outbox(self, entry_id: str, attempts: int, next_attempt_at: float, error: str) -> None:
        """A failed attempt: record it and release the claim."""

    async def finish_outbox(self, entry_id: str, outcome: str, at: float, error: str = "") -> None:
        """Done for good: ``outcome`` is "delivered" or "failed"; no longer loaded."""

    async def prune_outbox(self, before: float) -> None:
        """Delete entries finished before ``before``."""


class Store(ChangeStore, CountStore, UptimeStore, HeartbeatStore, SilenceStore, OutboxStore, Protocol):
    """A whole backend. Each consumer is typed with the small protocol it uses, so what a
    stage can touch in the store is visible in its signature."""

    async def open(self) -> None:
        """Create the schema if needed; raises StoreError with a one-line reason."""

    async def close(self) -> None: ...


class StoreError(Exception):
    """A store operation failed; the message is one line and names the store.

    ``permanent``: the same call can never succeed (a record that cannot be encoded), so
    retrying it would only block everything queued behind it."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def encode_json(where: str, what: str, value: dict[str, Any]) -> str:
    """JSON text for a record column, or a one-line StoreError naming the store and record.

    Called before a transaction starts, so a record that cannot be stored fails alone.
    allow_nan=False: NaN is not JSON and PostgreSQL's jsonb refuses it; both stores fail alike."""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as err:
        raise StoreError(one_line(f"{where}: cannot encode {what}: {describe_exception(err)}"), permanent=True) from err


def finite_or_none(value: float | None) -> float | None:
    """SQLite cannot store NaN (it becomes NULL); both stores write None for it, alike."""
    return None if value is None or math.isnan(value) else value


def outbox_from_row(row: Sequence[Any], payload: dict[str, Any]) -> OutboxEntry:
    """An entry from ``SELECT id, seq, target, payload, created_at, attempts,
    next_attempt_at, last_error``, the payload already decoded by the backend."""
    return OutboxEntry(id=row[0], seq=row[1], target=row[2], payload=payload, created_at=row[4],
                       attempts=row[5], next_attempt_at=row[6], last_error=row[7])


def outbox_row(where: str, entry: OutboxEntry) -> tuple[Any, ...]:
    """The outbox table's INSERT parameters, in both stores' column order."""
    return (entry.id, entry.seq, entry.target, encode_json(where, f"outbox entry {entry.id}", entry.payload),
            entry.created_at, entry.attempts, entry.next_attempt_at, entry.last_error)
