"""State that must survive a restart, behind one small interface (see base.py)."""

from __future__ import annotations

import re

from monitor.core.records import AlertRecord, MinuteCount, OutboxEntry, StateChange
from monitor.store.base import Store, StoreError
from monitor.store.postgres import PostgresStore
from monitor.store.sqlite import MEMORY, SqliteStore

__all__ = ["AlertRecord", "MinuteCount", "OutboxEntry", "StateChange", "Store", "StoreError", "open_store"]

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_EXPECTED = "expected sqlite:///relative.db, sqlite:////absolute.db or postgresql://..."


def open_store(url: str) -> Store:
    """The store a state URL names, not yet opened (call ``await store.open()``).

    ``sqlite:///state.db`` is relative to the current directory, ``sqlite:////var/lib/x.db``
    absolute (the SQLAlchemy convention), ``sqlite://:memory:`` private to one instance.
    """
    match = _SCHEME.match(url)
    scheme = match.group(1).lower() if match else ""
    if scheme in ("postgresql", "postgres"):
        return PostgresStore(url)
    if scheme == "sqlite":
        rest = url[match.end():] if match else ""
        if rest == MEMORY:
            return SqliteStore(MEMORY)
        # After "sqlite://" comes an empty host and "/"; what follows is the path as written.
        if rest.startswith("/") and len(rest) > 1:
            return SqliteStore(rest[1:])
        raise StoreError(f"sqlite state URL has no file path ({_EXPECTED})")
    # Only the scheme is repeated: the rest of a URL can hold a password.
    named = f" scheme {scheme!r}" if scheme else ""
    raise StoreError(f"unsupported state URL{named} ({_EXPECTED})")
