"""The outbox: delivers committed notifications, at least once, in order, per integration.

Every entry was committed to the store together with the dispatcher's decision to send it
(see ``notifier.py``), so a crash can only leave it due, never lost. Each target (one
integration of one receiver) has its own worker and its own queue: a PagerDuty outage or a
Slack endpoint that hangs for its whole timeout delays nothing else, and rule evaluation
never waits on any of it.

A worker takes the oldest entry of its target and:
  1. claims it in the store (compare-and-set with a lease), so two processes sharing a
     PostgreSQL store never send it both at once, and a crashed sender's claim runs out;
  2. sends it;
  3. marks it delivered, or failed for good (a 4xx: the same request would fail again), or
     records the attempt and waits (5xx, 429, network errors) with exponential backoff and
     jitter, or as long as the receiver's Retry-After asks.
Later entries of that target wait behind a retrying one: a receiver that was down gets
everything afterwards, in the order it happened. The only message that can arrive twice is
the one in flight when the process died (sent, but not yet marked delivered).

The store failing never holds a page back (it may be the very database whose outage should
page). Entries whose commit failed are handed over anyway (``add(..., durable=False)``) and
delivered from memory; when their commit lands later, what happened to them is written then.
Bookkeeping writes that fail (claim, attempt, outcome) are not waited for: a claim that cannot
be taken is skipped (one daemon per store: nobody else sends), and outcomes are queued and
written in order once the store is back. Both are counted and logged; what a crash in the
middle of an outage costs is a repeat, never a loss (docs/notifications.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from functools import partial

import httpx
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from monitor.alerting.integrations import Target, target_labels
from monitor.alerting.model import Notification
from monitor.alerting.receivers.base import DEFAULT_TIMEOUT, DeliveryError
from monitor.core.clock import Clock, SystemClock
from monitor.core.results import one_line
from monitor.core.records import OutboxEntry
from monitor.store.base import OutboxStore

log = structlog.get_logger("monitor.outbox")

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 120.0  # a receiver back from an outage hears within two minutes
RETRY_AFTER_MAX = 3600.0  # a Retry-After longer than this is a misconfiguration, not a plan
GIVE_UP_AFTER = 24 * 3600.0  # a page a day late is noise; failed and counted instead
LEASE_MARGIN = 5.0  # a claim lasts the integration's timeout plus this
KEEP_FINISHED = 24 * 3600.0  # delivered/failed rows kept this long (for inspection), then pruned
STORE_RETRY_MAX = 5.0  # a store back from an outage gets its queued writes within seconds
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0)


def retry_delay(attempts: int, retry_after: float | None, rand: Callable[[], float] = random.random) -> float:
    """How long to wait after the ``attempts``-th failure.

    Exponential from 1 s, capped at 2 minutes, with "equal jitter" (half fixed, half random)
    so receivers coming back from an outage are not hit by every daemon in the same second,
    yet no retry comes sooner than half its step. A receiver's Retry-After wins when given.
    """
    if retry_after is not None:
        return min(max(retry_after, 0.0), RETRY_AFTER_MAX)
    # The exponent is capped first: 2.0 ** 1024 overflows a float long before min() could.
    step = min(BACKOFF_FIRST * 2.0 ** min(max(attempts - 1, 0), 64), BACKOFF_MAX)
    return float(step / 2 + rand() * step / 2)


@dataclass
class DeliveryMetrics:
    """``monitor_notifications_total``, ``monitor_notification_queue_length`` and latency."""

    sent: Counter
    queued: Gauge
    latency: Histogram
    unpersisted: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> DeliveryMetrics:
        return cls(
            sent=Counter("monitor_notifications", "Delivery attempts by outcome (delivered, retried, failed).",
                         ["receiver", "integration", "outcome"], registry=registry),
            queued=Gauge("monitor_notification_queue_length", "Notifications waiting to be delivered.",
                         ["receiver", "integration"], registry=registry),
            latency=Histogram("monitor_notification_delivery_seconds",
                              "From the decision to notify to the receiver's acceptance.",
                              ["receiver", "integration"], buckets=LATENCY_BUCKETS, registry=registry),
            unpersisted=Counter("monitor_notifications_unpersisted",
                                "Notifications sent while the state store could not record them.",
                                ["receiver", "integration"], registry=registry),
        )


class Outbox:
    """One worker per target; ``add`` hands it entries once they are committed."""

    def __init__(self, store: OutboxStore, metrics: DeliveryMetrics, clock: Clock | None = None) -> None:
        self._store = store
        self._metrics = metrics
        self._clock = clock or SystemClock()
        self._targets: dict[str, Target] = {}
        # (receiver, integration) labels of every target ever seen, so a removed target's
        # metrics are still reported (and its queue gauge brought to zero) under its labels.
        self._labels: dict[str, tuple[str, str]] = {}
        self._queues: dict[str, deque[OutboxEntry]] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._client: httpx.AsyncClient | None = None
        self._pruned_at = 0.0
        self._stopped = False
        # Re-sends (Alertmanager forwarding) live in memory only: the next one is due in a
        # minute anyway, so persisting or retrying them would only queue stale copies.
        self._ephemeral: set[str] = set()
        # Entries whose commit has not landed (the store is failing): delivered from memory.
        # Once finished they wait in _settled for their commit, to be written then.
        self._volatile: set[str] = set()
        self._settled: dict[str, tuple[str, float, str]] = {}  # id -> (outcome, at, error)
        # Bookkeeping writes the store refused, replayed in order by _reconcile.
        self._pending_writes: deque[tuple[str, Callable[[], Awaitable[object]]]] = deque()
        self._store_wake = asyncio.Event()
        self._writes_drained = asyncio.Event()  # set while no bookkeeping write is pending
        self._writes_drained.set()
        self._reconciler: asyncio.Task[None] | None = None

    def configure(self, targets: Iterable[Target]) -> None:
        """The integrations to deliver with; entries for a target no longer configured fail."""
        self._targets = {t.name: t for t in targets}
        self._labels.update((t.name, (t.receiver, t.kind)) for t in self._targets.values())
        if self._stopped:
            return
        for name in set(self._targets) | set(self._queues):
            self._ensure_worker(name)
            self._wake[name].set()  # a removed target's worker must notice and drain

    async def start(self) -> None:
        """Pick up everything a previous run left due."""
        # No redirects: a signed webhook body must not be replayed to wherever a 30x points.
        self._client = httpx.AsyncClient(follow_redirects=False, timeout=DEFAULT_TIMEOUT)
        self._reconciler = asyncio.create_task(self._reconcile(), name="outbox:reconcile")
        # One daemon per store (docs/architecture.md): a claim still held is a previous run's
        # that died mid-send; waiting out its lease would only delay pages.
        released = await self._store.release_claims()
        if released:
            log.info("notification_claims_released", entries=released)
        self.add(await self._store.load_outbox())

    def add(self, entries: Iterable[OutboxEntry], *, durable: bool = True) -> None:
        """Entries to deliver. ``durable``: committed to the store (the writer's on_commit);
        False: their commit failed and they are delivered from memory; the same entries
        arriving later as durable only reconcile what was done with them."""
        if self._stopped:
            return  # shutting down: they are in the store (or lost with the failed commit)
        for entry in entries:
            if durable and entry.id in self._volatile:
                self._volatile.discard(entry.id)
                settled = self._settled.pop(entry.id, None)
                if settled is not None:  # already sent (or failed) from memory: record it
                    outcome, at, error = settled
                    self._write(f"finish {entry.id}", partial(self._store.finish_outbox, entry.id, outcome, at, error))
                continue  # still queued: from now on its bookkeeping goes to the store
            if not durable:
                self._volatile.add(entry.id)
            self._ensure_worker(entry.target)
            self._queues[entry.target].append(entry)
            self._wake[entry.target].set()
            self._gauge(entry.target)

    def resend(self, entry: OutboxEntry) -> None:
        """Queue an in-memory re-send; one waiting per target is enough (it replaces an older)."""
        if self._stopped:
            return
        self._ensure_worker(entry.target)
        queue = self._queues[entry.target]
        if len(queue) > 1 and queue[-1].id in self._ephemeral:
            self._ephemeral.discard(queue.pop().id)
        self._ephemeral.add(entry.id)
        queue.append(entry)
        self._wake[entry.target].set()
        self._gauge(entry.target)

    def waiting(self) -> list[tuple[str, int, str]]:
        """(target, entries queued, the oldest one's last error) for every non-empty queue:
        what the status page shows while a receiver is not taking pages."""
        return [(name, len(q), q[0].last_error) for name, q in sorted(self._queues.items()) if q]

    async def stop(self, grace: float = 5.0) -> None:
        """Let each worker finish the delivery in hand (up to ``grace`` seconds), then stop.

        Cancelling a send that the receiver already accepted would leave it claimed but not
        marked delivered, and the next run would page again (SIGTERM finishes in-flight
        deliveries: ``docs/notifications.md``). Workers idle or in backoff stop at once."""
        self._stopped = True
        for wake in self._wake.values():
            wake.set()
        deadline = asyncio.get_running_loop().time() + grace
        workers = list(self._workers.values())
        self._workers.clear()
        if workers:
            _, late = await asyncio.wait(workers, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        # The outcomes of what was just delivered, written within what is left of the grace.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._writes_drained.wait(),
                                   max(deadline - asyncio.get_running_loop().time(), 0.0))
        if self._reconciler is not None:
            self._reconciler.cancel()
            await asyncio.gather(self._reconciler, return_exceptions=True)
            self._reconciler = None
        if self.unpersisted:
            # Entries whose outcome is not in the store are sent again by the next run:
            # at least once, never lost.
            log.error("notification_state_not_persisted", writes=len(self._pending_writes),
                      uncommitted=len(self._volatile))
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def prune(self) -> None:
        """Forget finished entries after a day; called from the daemon's sweep."""
        now = self._clock.time()
        if now - self._pruned_at < 3600:
            return
        self._pruned_at = now
        try:
            await self._store.prune_outbox(now - KEEP_FINISHED)
        except Exception as err:
            log.warning("outbox_prune_failed", error=str(err))

    # --- the worker ----------------------------------------------------------------------

    def _ensure_worker(self, name: str) -> None:
        if name not in self._queues:
            self._queues[name] = deque()
            self._wake[name] = asyncio.Event()
        if name not in self._workers:
            self._workers[name] = asyncio.create_task(self._work(name), name=f"outbox:{name}")

    async def _work(self, name: str) -> None:
        queue, wake = self._queues[name], self._wake[name]
        while not self._stopped:
            if not queue:
                wake.clear()
                await wake.wait()
                continue
            entry = queue[0]
            wait = entry.next_attempt_at - self._clock.time()
            if wait > 0 and self._targets.get(name) is not None:
                # Interruptible: a reload that removes this target, or a shutdown, must not
                # wait out a backoff.
                wake.clear()
                try:
                    await asyncio.wait_for(wake.wait(), wait)
                except TimeoutError:
                    pass
                continue
            try:
                done = await self._attempt(name, entry)
            except Exception:  # a bug here must not kill the worker and strand its queue
                log.exception("outbox_worker_error", target=name)
                done = False
                await asyncio.sleep(1.0)
            if done:
                self._ephemeral.discard(queue.popleft().id)
                self._gauge(name)

    async def _attempt(self, name: str, entry: OutboxEntry) -> bool:
        """Try the entry once; True when it is finished (delivered, failed, or not ours)."""
        target = self._targets.get(name)
        if target is None:
            receiver, kind = self._labels_of(name)
            await self._finish(entry, "failed", "receiver no longer configured", receiver=receiver, kind=kind)
            return True
        if not await self._claim(entry, target.timeout + LEASE_MARGIN):
            return True
        assert self._client is not None
        try:
            notification = Notification.from_record(entry.payload)
            await target.integration.notify(notification, self._client)
        except DeliveryError as err:
            return await self._failed(target, entry, notification, err)
        except Exception as err:  # a bug in rendering: sending again would fail the same way
            log.exception("notification_render_failed", receiver=target.receiver, integration=target.kind)
            await self._finish(entry, "failed", one_line(f"{type(err).__name__}: {err}"),
                               receiver=target.receiver, kind=target.kind)
            return True
        now = self._clock.time()
        await self._finish(entry, "delivered", receiver=target.receiver, kind=target.kind)
        self._metrics.latency.labels(target.receiver, target.kind).observe(max(now - entry.created_at, 0.0))
        log.info("notification_delivered", receiver=target.receiver, integration=target.kind,
                 group=notification.group_key, status=notification.status, attempts=entry.attempts + 1,
                 latency=round(now - entry.created_at, 3))
        return True

    async def _claim(self, entry: OutboxEntry, lease: float) -> bool:
        """Take the entry. A live claim by someone else (another process on the same store,
        which is not supported) is waited out once; if it is still not ours after that, it is
        theirs. A store that cannot answer does not hold the page: send it unclaimed."""
        if entry.id in self._ephemeral or entry.id in self._volatile:
            return True
        for attempt in range(2):
            now = self._clock.time()
            try:
                claimed = await self._store.claim_outbox(entry.id, now, now + lease)
            except Exception as err:
                log.warning("notification_sent_unclaimed", target=entry.target, error=one_line(str(err)))
                return True
            if claimed:
                return True
            if attempt == 0:
                log.info("notification_claimed_elsewhere", target=entry.target, waiting=lease)
                await asyncio.sleep(lease)
        return False

    async def _failed(self, target: Target, entry: OutboxEntry, notification: Notification,
                      err: DeliveryError) -> bool:
        attempts = entry.attempts + 1
        now = self._clock.time()
        if entry.id in self._ephemeral:
            self._metrics.sent.labels(target.receiver, target.kind, "failed").inc()
            log.info("notification_resend_failed", receiver=target.receiver, integration=target.kind, error=str(err))
            return True
        if err.permanent or now - entry.created_at >= GIVE_UP_AFTER:
            reason = str(err) if err.permanent else f"gave up after {attempts} attempts: {err}"
            await self._finish(entry, "failed", reason, receiver=target.receiver, kind=target.kind)
            log.error("notification_failed", receiver=target.receiver, integration=target.kind,
                      group=notification.group_key, status=notification.status, attempts=attempts, error=reason)
            return True
        delay = retry_delay(attempts, err.retry_after)
        error = str(err)
        if entry.id not in self._volatile:
            self._write(f"retry {entry.id}", partial(self._store.retry_outbox, entry.id, attempts, now + delay, error))
        self._queues[entry.target][0] = replace(entry, attempts=attempts, next_attempt_at=now + delay,
                                                last_error=error)
        self._metrics.sent.labels(target.receiver, target.kind, "retried").inc()
        log.warning("notification_retry", receiver=target.receiver, integration=target.kind,
                    group=notification.group_key, attempts=attempts, retry_in=round(delay, 2), error=error)
        return False

    async def _finish(self, entry: OutboxEntry, outcome: str, error: str = "", *, receiver: str, kind: str) -> None:
        at = self._clock.time()
        if entry.id in self._volatile:
            # Its commit has not landed: nothing to update yet; written when it does.
            self._settled[entry.id] = (outcome, at, error)
            self._metrics.unpersisted.labels(receiver, kind).inc()
            log.warning("notification_outcome_unpersisted", receiver=receiver, integration=kind, outcome=outcome)
        elif entry.id not in self._ephemeral:
            self._write(f"finish {entry.id}", partial(self._store.finish_outbox, entry.id, outcome, at, error))
        self._metrics.sent.labels(receiver, kind, outcome).inc()

    def _write(self, what: str, call: Callable[[], Awaitable[object]]) -> None:
        """A bookkeeping write, in order behind any the store refused before."""
        self._pending_writes.append((what, call))
        self._writes_drained.clear()
        self._store_wake.set()

    async def _reconcile(self) -> None:
        """Write queued bookkeeping in order; while the store fails, retry with backoff.
        Delivery never waits for this: the in-memory queues already know the outcome."""
        delay = 0.5
        while True:
            if not self._pending_writes:
                self._writes_drained.set()
                self._store_wake.clear()
                await self._store_wake.wait()
                continue
            what, call = self._pending_writes[0]
            try:
                await call()
            except Exception as err:
                log.error("outbox_store_failed", write=what.split()[0], pending=len(self._pending_writes),
                          error=one_line(str(err)), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, STORE_RETRY_MAX)
                continue
            self._pending_writes.popleft()
            delay = 0.5

    @property
    def unpersisted(self) -> int:
        """Deliveries whose outcome the store does not have yet (writes queued, commits pending)."""
        return len(self._pending_writes) + len(self._volatile)

    def _labels_of(self, name: str) -> tuple[str, str]:
        # A target never configured in this run (an entry left by an older config) is
        # labelled from its name.
        return self._labels.get(name) or target_labels(name)

    def _gauge(self, name: str) -> None:
        receiver, kind = self._labels_of(name)
        self._metrics.queued.labels(receiver, kind).set(len(self._queues[name]))

