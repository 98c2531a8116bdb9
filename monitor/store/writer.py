"""The ordered writer of ``StateChange``s: alert transitions and dispatcher flushes.

Those two are committed one transaction each, in the order they happened: a flush that tells
a receiver about an alert never lands before the alert's own state. A failing store is
retried, never skipped; ``on_commit`` runs once the change is durable, which is when the
outbox may start sending what the change queued.

It is not the store's only writer, and need not be: the other writes touch rows no
``StateChange`` does and have no order to keep with one. Silences are saved by the API call
that made them (which answers only once saved); heartbeat pushes and SLO minute counts are
written by their owners; the outbox updates delivery bookkeeping of rows that exist only
after this writer committed them (it learns of them through ``on_commit``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from monitor.core.records import StateChange
from monitor.store.base import ChangeStore

log = structlog.get_logger("monitor.store")
RETRY_FIRST = 0.5
RETRY_MAX = 30.0

OnCommit = Callable[[], None]


class StateWriter:
    def __init__(self, store: ChangeStore) -> None:
        self._store = store
        self._queue: asyncio.Queue[tuple[StateChange, OnCommit | None]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def submit(self, change: StateChange, on_commit: OnCommit | None = None) -> None:
        self._queue.put_nowait((change, on_commit))

    async def stop(self) -> None:
        """Write everything queued, then stop."""
        if self._task is not None:
            await self._queue.join()
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        while True:
            change, on_commit = await self._queue.get()
            delay = RETRY_FIRST
            while True:
                try:
                    await self._store.commit(change)
                    break
                except Exception as err:
                    log.error("state_commit_failed", error=str(err), retry_in=delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX)
            if on_commit is not None:
                try:
                    on_commit()
                except Exception:  # the change is durable; a broken callback must not stop writing
                    log.exception("state_commit_callback_failed")
            self._queue.task_done()
