"""The ordered writer of ``StateChange``s: alert transitions and dispatcher flushes.

Those two are committed one transaction each, in the order they happened: a flush that tells
a receiver about an alert never lands before the alert's own state. A failing store is
retried, never skipped; ``on_commit`` runs once the change is durable, which is when the
outbox may start sending what the change queued.

A store that cannot be written must not keep a page from going out (the store may be the very
database whose outage should page). So the first failure of a change also runs its
``on_failure``: the notifier then hands the change's notifications to the outbox to deliver
from memory, and ``on_commit`` later tells the outbox the change is durable, which reconciles
(docs/notifications.md, "When the state store fails"). Retries back off to at most
``RETRY_MAX``, so a store that is back is noticed within seconds.

It is not the store's only writer, and need not be: the other writes touch rows no
``StateChange`` does and have no order to keep with one. Silences are saved by the API call
that made them (which answers only once saved); heartbeat pushes and SLO minute counts are
written by their owners; the outbox updates delivery bookkeeping of rows that exist only
after this writer committed them (it learns of them through ``on_commit``).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from monitor.core.records import StateChange
from monitor.core.results import one_line
from monitor.store.base import ChangeStore, StoreError

log = structlog.get_logger("monitor.store")
RETRY_FIRST = 0.5
RETRY_MAX = 5.0

Callback = Callable[[], None]


@dataclass
class _Queued:
    change: StateChange
    on_commit: Callback | None
    on_failure: Callback | None
    told_failure: bool = False  # on_failure ran (at most once per change)


class StateWriter:
    def __init__(self, store: ChangeStore) -> None:
        self._store = store
        self._queue: deque[_Queued] = deque()  # the head is the change being committed
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.failing_since: float | None = None  # wall time of the first failed commit of an outage
        self.last_error = ""
        self.failures = 0  # failed commit attempts since start

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="state-writer")

    def submit(self, change: StateChange, on_commit: Callback | None = None,
               on_failure: Callback | None = None) -> None:
        """Queue ``change``. ``on_failure`` runs at most once: when its commit fails, or at
        once if the store is failing now (the change would wait behind the one retrying)."""
        queued = _Queued(change, on_commit, on_failure)
        self._queue.append(queued)
        self._idle.clear()
        self._wake.set()
        if self.failing_since is not None:
            self._tell_failure(queued)

    @property
    def backlog(self) -> int:
        """Changes not yet durable (the one being committed included)."""
        return len(self._queue)

    async def stop(self, grace: float = 5.0) -> int:
        """Write what is queued within ``grace`` seconds, then stop; how many changes could
        not be persisted (logged, with what they held)."""
        if self._task is None:
            return 0
        try:
            await asyncio.wait_for(self._idle.wait(), grace)
        except TimeoutError:
            pass
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._task = None
        lost = [queued.change for queued in self._queue]
        if lost:
            log.error("state_not_persisted", changes=len(lost),
                      alerts=sum(len(c.upsert) + len(c.delete) for c in lost),
                      notifications=sum(len(c.outbox) for c in lost), error=self.last_error,
                      detail="the store could not be written before the shutdown grace ran out")
        return len(lost)

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            queued = self._queue[0]
            committed = await self._commit(queued)
            self._queue.popleft()
            if committed and queued.on_commit is not None:
                try:
                    queued.on_commit()
                except Exception:  # the change is durable; a broken callback must not stop writing
                    log.exception("state_commit_callback_failed")

    async def _commit(self, queued: _Queued) -> bool:
        """Commit, retrying while the store fails; False for a change that can never be
        stored (it is dropped, loudly, rather than block every change behind it)."""
        delay = RETRY_FIRST
        while True:
            try:
                await self._store.commit(queued.change)
            except Exception as err:
                if isinstance(err, StoreError) and err.permanent:
                    log.error("state_change_dropped", error=one_line(str(err)),
                              alerts=len(queued.change.upsert) + len(queued.change.delete),
                              notifications=len(queued.change.outbox))
                    self._tell_failure(queued)  # its notifications still go out, from memory
                    return False
                self.failures += 1
                self.last_error = one_line(str(err))
                if self.failing_since is None:
                    self.failing_since = time.time()
                    log.error("state_store_failing", error=self.last_error, waiting=len(self._queue))
                    for waiting in list(self._queue):  # everything queued now waits on the store
                        self._tell_failure(waiting)
                else:
                    log.warning("state_commit_retry", error=self.last_error, retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            if self.failing_since is not None:
                log.warning("state_store_recovered", failing_for=round(time.time() - self.failing_since, 1))
                self.failing_since = None
            return True

    @staticmethod
    def _tell_failure(queued: _Queued) -> None:
        if queued.told_failure or queued.on_failure is None:
            return
        queued.told_failure = True
        try:
            queued.on_failure()
        except Exception:
            log.exception("state_failure_callback_failed")
