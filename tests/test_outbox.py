"""The outbox against a real SQLite store and a real local HTTP receiver (tests/receiver_sink.py).

Every case checks both sides: what the receiver got (and what it answered), and what the
store says afterwards (``load_outbox`` for what is still due; the finished rows read straight
from the database file for the outcome of what is not). Backoffs are shortened by
monkeypatching ``retry_delay`` / ``LEASE_MARGIN``; conditions are polled with a deadline, so
nothing depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import closing
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

import monitor.alerting.outbox as outbox_mod
from monitor.alerting.integrations import Target
from monitor.alerting.model import Alert, Notification
from monitor.alerting.outbox import DeliveryMetrics, Outbox, retry_delay
from monitor.alerting.receivers import (
    Integration,
    PagerDutyIntegration,
    SlackIntegration,
    WebhookIntegration,
)
from monitor.core.records import OutboxEntry, StateChange
from monitor.store.sqlite import SqliteStore
from tests.receiver_sink import ReceiverSink

DEADLINE = 10.0  # generous; every wait normally ends in well under a second


# --- fixtures ---------------------------------------------------------------------------------

@pytest.fixture
async def store(tmp_path: Any) -> AsyncIterator[SqliteStore]:
    db = SqliteStore(str(tmp_path / "state.db"))
    await db.open()
    try:
        yield db
    finally:
        await db.close()


def _serve() -> Iterator[ReceiverSink]:
    server = ReceiverSink().start()
    try:
        yield server
    finally:
        # stop() waits for serve_forever's 0.5 s poll; nothing after a test needs to wait for it.
        threading.Thread(target=server.stop, name="sink-stop", daemon=True).start()


@pytest.fixture
def sink() -> Iterator[ReceiverSink]:
    yield from _serve()


@pytest.fixture
def sink_b() -> Iterator[ReceiverSink]:
    yield from _serve()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def outboxes(store: SqliteStore) -> AsyncIterator[list[Outbox]]:
    """Every outbox a test makes is stopped before the store closes (teardown is LIFO)."""
    made: list[Outbox] = []
    try:
        yield made
    finally:
        for box in made:
            await box.stop(grace=0.5)  # a test's hanging send need not hold teardown for 5 s


OutboxFactory = Callable[..., Awaitable[Outbox]]


@pytest.fixture
def make_outbox(store: SqliteStore, registry: CollectorRegistry, outboxes: list[Outbox]) -> OutboxFactory:
    async def make(targets: list[Target], *, registry_: CollectorRegistry | None = None) -> Outbox:
        box = Outbox(store, DeliveryMetrics.create(registry_ or registry))
        outboxes.append(box)
        box.configure(targets)
        await box.start()
        return box

    return make


# --- helpers ----------------------------------------------------------------------------------

def webhook(sink: ReceiverSink, receiver: str = "oncall", path: str = "/hook", timeout: float = 2.0,
            index: int = 0) -> Target:
    return Target(name=f"{receiver}/webhook_configs/{index}", receiver=receiver,
                  integration=WebhookIntegration(sink.url(path), timeout=timeout))


def notification(key: str, receiver: str = "oncall") -> Notification:
    alert = Alert(fingerprint=f"fp-{key}", labels={"alertname": key, "check": "api"},
                  annotations={"summary": f"{key} is broken"}, starts_at=time.time() - 60)
    return Notification(receiver=receiver, group_key=key, group_labels={"alertname": key}, alerts=[alert])


def entry(key: str, seq: int, target: Target, **changes: Any) -> OutboxEntry:
    fields: dict[str, Any] = {
        "id": f"ob-{key}", "seq": seq, "target": target.name,
        "payload": notification(key, target.receiver).to_record(), "created_at": time.time(),
    }
    fields.update(changes)
    return OutboxEntry(**fields)


async def commit(store: SqliteStore, *entries: OutboxEntry) -> list[OutboxEntry]:
    await store.commit(StateChange(outbox=list(entries)))
    return list(entries)


async def until(check: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.01)


def pending(box: Outbox) -> int:
    """Entries the outbox holds in memory, not yet finished: the sum of its queues."""
    return sum(count for _, count, _ in box.waiting())


async def drained(box: Outbox, timeout: float = DEADLINE) -> None:
    """Everything handed to the outbox is finished in this process (store written, metrics counted)."""
    await until(lambda: pending(box) == 0 and box.unpersisted == 0, "the outbox to drain", timeout)


def keys(sink: ReceiverSink, *, accepted_only: bool = False) -> list[str]:
    """Which notifications (webhook groupKey) the sink got, in arrival order."""
    with sink._lock:
        received = list(sink.received)
    return [str(r.json["groupKey"]) for r in received if r.accepted or not accepted_only]


def answers(sink: ReceiverSink) -> list[str]:
    with sink._lock:
        return [r.answer for r in sink.received]


def finished(store: SqliteStore) -> dict[str, tuple[str, int, str]]:
    """Finished rows, by id: (outcome, attempts, last_error). Not part of the Store API, so read
    from the file (WAL: a second reader does not disturb the store's connection)."""
    with closing(sqlite3.connect(store.path, timeout=5)) as conn:
        rows = conn.execute("SELECT id, outcome, attempts, last_error FROM outbox WHERE done_at IS NOT NULL")
        return {row[0]: (row[1], row[2], row[3]) for row in rows.fetchall()}


def sent(registry: CollectorRegistry, outcome: str, receiver: str = "oncall", integration: str = "webhook") -> float:
    value = registry.get_sample_value("monitor_notifications_total",
                                      {"receiver": receiver, "integration": integration, "outcome": outcome})
    return value or 0.0


def sent_any_integration(registry: CollectorRegistry, outcome: str, receiver: str = "oncall") -> float:
    total = 0.0
    for metric in registry.collect():
        for sample in metric.samples:
            if (sample.name == "monitor_notifications_total" and sample.labels.get("receiver") == receiver
                    and sample.labels.get("outcome") == outcome):
                total += sample.value
    return total


def queued(registry: CollectorRegistry, receiver: str = "oncall", integration: str = "webhook") -> float | None:
    return registry.get_sample_value("monitor_notification_queue_length",
                                     {"receiver": receiver, "integration": integration})


def latency_count(registry: CollectorRegistry, receiver: str = "oncall", integration: str = "webhook") -> float:
    value = registry.get_sample_value("monitor_notification_delivery_seconds_count",
                                      {"receiver": receiver, "integration": integration})
    return value or 0.0


async def in_backoff_wait(box: Outbox, target: Target) -> None:
    """The target's worker is waiting out a backoff: it clears its wake event right before
    waiting (private state, read only so the test need not guess with a sleep)."""
    await until(lambda: not box._wake[target.name].is_set(), "the worker to wait out its backoff")


def fixed_delay(seconds: float) -> Callable[..., float]:
    def delay(attempts: int, retry_after: float | None, *args: Any, **kwargs: Any) -> float:
        return seconds

    return delay


# --- 1. delivered -----------------------------------------------------------------------------

def _integration(kind: str, url: str) -> Integration:
    if kind == "slack":
        return SlackIntegration(url, timeout=2.0)
    if kind == "pagerduty":
        return PagerDutyIntegration("R0UT1NGKEY0123456789abcdefabcdef", url=url, timeout=2.0)
    return WebhookIntegration(url, timeout=2.0)


@pytest.mark.parametrize("kind", ["webhook", "slack", "pagerduty"])
async def test_delivered_on_200(kind: str, store: SqliteStore, sink: ReceiverSink, registry: CollectorRegistry,
                                make_outbox: OutboxFactory) -> None:
    target = Target(name=f"oncall/{kind}_configs/0", receiver="oncall", integration=_integration(kind, sink.url()))
    box = await make_outbox([target])
    entries = await commit(store, entry("a", 1, target))
    box.add(entries)
    await drained(box)

    assert answers(sink) == ["200"]
    assert sink.received[0].path == "/hook"
    assert await store.load_outbox() == []
    assert finished(store) == {"ob-a": ("delivered", 0, "")}
    assert sent(registry, "delivered", integration=kind) == 1
    assert sent(registry, "retried", integration=kind) == 0
    assert sent(registry, "failed", integration=kind) == 0
    assert latency_count(registry, integration=kind) == 1
    assert queued(registry, integration=kind) == 0


# --- 2. 500 then 200 --------------------------------------------------------------------------

async def test_500_is_retried_and_the_attempt_is_recorded(store: SqliteStore, sink: ReceiverSink,
                                                         registry: CollectorRegistry, make_outbox: OutboxFactory,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox_mod, "retry_delay", fixed_delay(0.2))
    # A spy on the store: what was recorded for the failed attempt, read back while the worker
    # waits on the call (so the row is seen before the next attempt can change it).
    real_retry = store.retry_outbox
    snapshots: list[tuple[tuple[Any, ...], list[OutboxEntry]]] = []

    async def spy(entry_id: str, attempts: int, next_attempt_at: float, error: str) -> None:
        await real_retry(entry_id, attempts, next_attempt_at, error)
        snapshots.append(((entry_id, attempts, next_attempt_at, error), await store.load_outbox()))

    monkeypatch.setattr(store, "retry_outbox", spy)
    sink.answers.extend(["500"])
    target = webhook(sink)
    box = await make_outbox([target])
    box.add(await commit(store, entry("a", 1, target)))
    await drained(box)

    assert answers(sink) == ["500", "200"]
    assert keys(sink) == ["a", "a"]
    assert len(snapshots) == 1
    (entry_id, attempts, next_at, error), rows = snapshots[0]
    assert (entry_id, attempts) == ("ob-a", 1)
    assert "HTTP 500" in error and "sink says no" in error
    assert "/hook" not in error  # the URL path is scrubbed from stored errors
    assert len(rows) == 1
    row = rows[0]
    assert (row.id, row.attempts, row.last_error, row.next_attempt_at) == ("ob-a", 1, error, next_at)
    assert next_at >= sink.received[0].at + 0.2 - 0.05
    # The second attempt came no sooner than the recorded next_attempt_at.
    assert sink.received[1].at >= next_at - 0.05

    assert await store.load_outbox() == []
    assert finished(store) == {"ob-a": ("delivered", 1, "")}
    assert sent(registry, "retried") == 1
    assert sent(registry, "delivered") == 1
    assert sent(registry, "failed") == 0
    assert latency_count(registry) == 1
    assert queued(registry) == 0


# --- 3. 429 with Retry-After ------------------------------------------------------------------

async def test_429_retry_after_is_honoured(store: SqliteStore, sink: ReceiverSink, registry: CollectorRegistry,
                                          make_outbox: OutboxFactory) -> None:
    sink.answers.extend(["429:1"])
    target = webhook(sink)
    box = await make_outbox([target])
    box.add(await commit(store, entry("a", 1, target)))
    await drained(box)

    assert answers(sink) == ["429:1", "200"]
    first, second = sink.received
    assert second.at - first.at >= 0.9
    assert await store.load_outbox() == []
    outcome, attempts, _ = finished(store)["ob-a"]
    assert (outcome, attempts) == ("delivered", 1)
    assert sent(registry, "retried") == 1 and sent(registry, "delivered") == 1


# --- 4. 404 is permanent ----------------------------------------------------------------------

async def test_404_fails_for_good_and_the_next_entry_proceeds(store: SqliteStore, sink: ReceiverSink,
                                                              registry: CollectorRegistry,
                                                              make_outbox: OutboxFactory) -> None:
    sink.answers.extend(["404"])
    target = webhook(sink)
    box = await make_outbox([target])
    box.add(await commit(store, entry("a", 1, target), entry("b", 2, target)))
    await drained(box)

    assert answers(sink) == ["404", "200"]
    assert keys(sink) == ["a", "b"]  # "a" tried once only, then "b"
    assert await store.load_outbox() == []
    rows = finished(store)
    assert rows["ob-a"][0] == "failed" and "HTTP 404" in rows["ob-a"][2]
    assert rows["ob-b"] == ("delivered", 0, "")
    assert sent(registry, "failed") == 1
    assert sent(registry, "retried") == 0
    assert sent(registry, "delivered") == 1
    assert latency_count(registry) == 1  # only deliveries are observed
    assert queued(registry) == 0


# --- 5. hang and reset ------------------------------------------------------------------------

async def test_hang_and_reset_are_retried_then_delivered(store: SqliteStore, sink: ReceiverSink,
                                                        registry: CollectorRegistry, make_outbox: OutboxFactory,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox_mod, "retry_delay", fixed_delay(0.05))
    errors: list[str] = []
    real_retry = store.retry_outbox

    async def spy(entry_id: str, attempts: int, next_attempt_at: float, error: str) -> None:
        errors.append(error)
        await real_retry(entry_id, attempts, next_attempt_at, error)

    monkeypatch.setattr(store, "retry_outbox", spy)
    sink.answers.extend(["hang", "reset"])
    target = webhook(sink, timeout=0.5)
    box = await make_outbox([target])
    box.add(await commit(store, entry("a", 1, target)))
    await drained(box)

    assert answers(sink) == ["hang", "reset", "200"]
    assert keys(sink) == ["a", "a", "a"]
    assert sink.received[1].at - sink.received[0].at >= 0.45  # the hang was cut by the timeout
    assert len(errors) == 2
    assert "timed out after 0.5s" in errors[0]
    assert errors[1] and "timed out" not in errors[1]
    assert await store.load_outbox() == []
    assert finished(store) == {"ob-a": ("delivered", 2, "")}
    assert sent(registry, "retried") == 2 and sent(registry, "delivered") == 1 and sent(registry, "failed") == 0


# --- 6. ordering through an outage ------------------------------------------------------------

async def test_entries_queued_during_an_outage_arrive_in_order_once(store: SqliteStore, sink: ReceiverSink,
                                                                    registry: CollectorRegistry,
                                                                    make_outbox: OutboxFactory,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox_mod, "retry_delay", fixed_delay(0.02))
    sink.default = "503"
    target = webhook(sink)
    box = await make_outbox([target])
    box.add(await commit(store, entry("k1", 1, target)))
    await until(lambda: len(sink.received) >= 1, "the first attempt")
    box.add(await commit(store, entry("k2", 2, target)))
    box.add(await commit(store, entry("k3", 3, target)))
    await until(lambda: queued(registry) == 3, "three entries queued")
    await until(lambda: len(sink.received) >= 4, "several failed attempts")
    # Down: only the oldest entry is tried; the later ones wait behind it.
    assert set(keys(sink)) == {"k1"}
    assert [e.id for e in await store.load_outbox()] == ["ob-k1", "ob-k2", "ob-k3"]

    sink.default = "200"  # the receiver is back
    await drained(box)

    assert keys(sink, accepted_only=True) == ["k1", "k2", "k3"]
    all_keys = keys(sink)
    assert all_keys.count("k2") == 1 and all_keys.count("k3") == 1
    assert all_keys[-2:] == ["k2", "k3"]
    assert await store.load_outbox() == []
    rows = finished(store)
    assert {k: v[0] for k, v in rows.items()} == {"ob-k1": "delivered", "ob-k2": "delivered", "ob-k3": "delivered"}
    assert rows["ob-k1"][1] == all_keys.count("k1") - 1  # every failed attempt was recorded
    assert sent(registry, "delivered") == 3
    assert sent(registry, "retried") == all_keys.count("k1") - 1
    assert queued(registry) == 0


# --- 7. isolation -----------------------------------------------------------------------------

async def test_a_hanging_target_does_not_delay_another(store: SqliteStore, sink: ReceiverSink,
                                                       sink_b: ReceiverSink, registry: CollectorRegistry,
                                                       make_outbox: OutboxFactory) -> None:
    sink.default = "hang"
    slow = webhook(sink, receiver="slow", timeout=5.0)
    fast = webhook(sink_b, receiver="fast", timeout=5.0)
    box = await make_outbox([slow, fast])
    box.add(await commit(store, entry("s", 1, slow)))
    await until(lambda: len(sink.received) == 1, "the slow target's request")
    box.add(await commit(store, entry("f", 2, fast)))
    await until(lambda: sent(registry, "delivered", receiver="fast") == 1, "the fast target's delivery", timeout=4.0)

    assert keys(sink_b, accepted_only=True) == ["f"]
    assert sink_b.received[0].at - sink.received[0].at < 5.0  # before the slow one could time out
    # The slow one is still in flight: not retried, not finished, still due in the store.
    assert sent(registry, "retried", receiver="slow") == 0 and sent(registry, "failed", receiver="slow") == 0
    assert [e.id for e in await store.load_outbox()] == ["ob-s"]
    assert finished(store) == {"ob-f": ("delivered", 0, "")}


# --- 8. restart -------------------------------------------------------------------------------

async def test_a_new_outbox_delivers_what_the_previous_one_left(store: SqliteStore, sink: ReceiverSink,
                                                                make_outbox: OutboxFactory,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox_mod, "retry_delay", fixed_delay(0.3))
    target = webhook(sink)
    await commit(store, entry("a", 1, target), entry("b", 2, target))
    sink.answers.extend(["200", "503"])
    first_registry = CollectorRegistry()
    first = await make_outbox([target], registry_=first_registry)  # start() loads "a" and "b"
    await until(lambda: sent(first_registry, "retried") == 1, "the failed attempt on b")
    await first.stop()
    # "a" is finished; "b" is due again after its recorded backoff; "c" was committed later.
    left = await store.load_outbox()
    assert [(e.id, e.attempts) for e in left] == [("ob-b", 1)]
    assert "HTTP 503" in left[0].last_error
    await commit(store, entry("c", 3, target))

    second_registry = CollectorRegistry()
    second = await make_outbox([target], registry_=second_registry)
    assert pending(second) == 2  # "b" and "c", not "a"
    await drained(second)

    assert keys(sink) == ["a", "b", "b", "c"]
    assert keys(sink, accepted_only=True) == ["a", "b", "c"]
    assert sink.received[2].at >= left[0].next_attempt_at - 0.05  # the stored backoff survived the restart
    assert await store.load_outbox() == []
    assert {k: v[0] for k, v in finished(store).items()} == {"ob-a": "delivered", "ob-b": "delivered",
                                                             "ob-c": "delivered"}
    assert sent(second_registry, "delivered") == 2


async def test_stop_finishes_the_delivery_in_hand_so_a_restart_does_not_resend(
        store: SqliteStore, sink: ReceiverSink, make_outbox: OutboxFactory, registry: CollectorRegistry) -> None:
    # SIGTERM just as a page is being accepted (bench/latency.py hit this): stopping must
    # let the send finish and be marked, or the next run pages again.
    target = webhook(sink)
    sink.answers.extend(["delay:0.5"])
    box = await make_outbox([target])
    await commit(store, entry("a", 1, target))
    box.add([entry("a", 1, target)])
    await until(lambda: len(sink.received) == 1, "the send to start")
    await box.stop(grace=5.0)
    assert sent(registry, "delivered") == 1
    assert await store.load_outbox() == []
    again = await make_outbox([target], registry_=CollectorRegistry())
    assert pending(again) == 0
    assert keys(sink) == ["a"]


async def test_stop_gives_up_on_a_hanging_send_after_the_grace(
        store: SqliteStore, sink: ReceiverSink, make_outbox: OutboxFactory) -> None:
    target = webhook(sink, timeout=30.0)
    sink.answers.extend(["hang"])
    box = await make_outbox([target])
    box.add(await commit(store, entry("a", 1, target)))
    await until(lambda: len(sink.received) == 1, "the send to start")
    started = time.monotonic()
    await box.stop(grace=0.3)
    assert time.monotonic() - started < 5.0  # not the 30 s timeout
    assert [e.id for e in await store.load_outbox()] == ["ob-a"]  # still due: the next run sends it


# --- 9. claimed by someone else ---------------------------------------------------------------

async def test_a_live_claim_is_waited_out_then_delivered_once(store: SqliteStore, sink: ReceiverSink,
                                                             registry: CollectorRegistry, make_outbox: OutboxFactory,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # Our lease (timeout 0.3 + margin 0.4) is longer than theirs (0.6): the same relation as two
    # replicas with the same configuration (timeout + 5 s each), scaled down.
    monkeypatch.setattr(outbox_mod, "LEASE_MARGIN", 0.4)
    target = webhook(sink, timeout=0.3)
    box = await make_outbox([target])  # claims found at start are released: take this one after
    entries = await commit(store, entry("a", 1, target))
    now = time.time()
    assert await store.claim_outbox("ob-a", now, now + 0.6)  # another process's claim
    box.add(entries)
    await drained(box)

    assert answers(sink) == ["200"]
    assert sink.received[0].at >= now + 0.6
    assert await store.load_outbox() == []
    assert finished(store) == {"ob-a": ("delivered", 0, "")}
    assert sent(registry, "delivered") == 1


async def test_a_claim_that_never_runs_out_is_left_to_its_holder(store: SqliteStore, sink: ReceiverSink,
                                                                registry: CollectorRegistry,
                                                                make_outbox: OutboxFactory,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox_mod, "LEASE_MARGIN", 0.1)
    target = webhook(sink, timeout=0.3)
    box = await make_outbox([target])
    entries = await commit(store, entry("a", 1, target), entry("b", 2, target))
    now = time.time()
    assert await store.claim_outbox("ob-a", now, now + 3600)  # another replica, sending it
    box.add(entries)
    await drained(box)

    assert keys(sink) == ["b"]  # "a" never sent by us; the target's queue is not stuck behind it
    assert [e.id for e in await store.load_outbox()] == ["ob-a"]  # still theirs, unfinished
    assert finished(store) == {"ob-b": ("delivered", 0, "")}
    assert sent(registry, "delivered") == 1
    assert sent(registry, "failed") == 0 and sent(registry, "retried") == 0


async def test_an_entry_the_other_holder_finishes_is_not_sent_again(store: SqliteStore, sink: ReceiverSink,
                                                                   registry: CollectorRegistry,
                                                                   make_outbox: OutboxFactory,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox_mod, "LEASE_MARGIN", 0.1)
    target = webhook(sink, timeout=0.2)
    box = await make_outbox([target])
    entries = await commit(store, entry("a", 1, target))
    now = time.time()
    assert await store.claim_outbox("ob-a", now, now + 0.2)
    box.add(entries)
    await store.finish_outbox("ob-a", "delivered", time.time())  # the other replica got it through
    await drained(box)  # gave up on it: nothing of it is left to send

    assert sink.received == []
    assert await store.load_outbox() == []
    assert finished(store) == {"ob-a": ("delivered", 0, "")}
    assert sent(registry, "delivered") == 0  # not ours to count


async def test_a_claim_left_by_a_killed_run_is_released_at_start(store: SqliteStore, sink: ReceiverSink,
                                                                 registry: CollectorRegistry,
                                                                 make_outbox: OutboxFactory) -> None:
    target = webhook(sink, timeout=0.3)
    await commit(store, entry("a", 1, target))
    now = time.time()
    assert await store.claim_outbox("ob-a", now, now + 3600)  # kill -9 mid-send, an hour's lease
    box = await make_outbox([target])
    await drained(box)

    assert answers(sink) == ["200"]
    assert sink.received[0].at < now + 2  # sent at once, not after the lease
    assert finished(store) == {"ob-a": ("delivered", 0, "")}


# --- 10. target removed -----------------------------------------------------------------------

async def test_entries_of_a_removed_target_fail_without_being_sent(store: SqliteStore, sink: ReceiverSink,
                                                                   registry: CollectorRegistry,
                                                                   make_outbox: OutboxFactory) -> None:
    target = webhook(sink)
    other = webhook(sink, receiver="other", path="/other")
    # "a" is backing off (a previous run's failed attempt), "b" waits behind it: nothing is sent
    # before the reload.
    later = time.time() + 60
    await commit(store, entry("a", 1, target, attempts=1, next_attempt_at=later), entry("b", 2, target))
    box = await make_outbox([target, other])
    assert pending(box) == 2
    await in_backoff_wait(box, target)
    box.configure([other])
    await drained(box, timeout=2.0)  # far sooner than the 60 s backoff

    assert sink.received == []
    assert await store.load_outbox() == []
    rows = finished(store)
    assert {k: (v[0], v[2]) for k, v in rows.items()} == {
        "ob-a": ("failed", "receiver no longer configured"), "ob-b": ("failed", "receiver no longer configured")}
    assert sent_any_integration(registry, "failed") == 2
    assert sent_any_integration(registry, "delivered") == 0

    # The remaining target still works.
    box.add(await commit(store, entry("c", 3, other)))
    await drained(box)
    assert keys(sink) == ["c"] and sink.received[0].path == "/other"


async def test_queue_length_of_a_removed_target_drops_to_zero(store: SqliteStore, sink: ReceiverSink,
                                                             registry: CollectorRegistry,
                                                             make_outbox: OutboxFactory) -> None:
    target = webhook(sink)
    later = time.time() + 60
    await commit(store, entry("a", 1, target, attempts=1, next_attempt_at=later), entry("b", 2, target))
    box = await make_outbox([target])
    assert queued(registry) == 2
    await in_backoff_wait(box, target)
    box.configure([])
    await drained(box, timeout=2.0)

    assert await store.load_outbox() == []
    assert sink.received == []
    assert queued(registry) in (0.0, None)  # zero, or the series removed


async def test_a_target_removed_during_a_send_does_not_wait_out_the_backoff(
        store: SqliteStore, sink: ReceiverSink, registry: CollectorRegistry, make_outbox: OutboxFactory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox_mod, "retry_delay", fixed_delay(5.0))
    sink.default = "hang"
    target = webhook(sink, timeout=0.2)
    box = await make_outbox([target])
    box.add(await commit(store, entry("a", 1, target)))
    await until(lambda: len(sink.received) == 1, "the request in flight")
    box.configure([])  # removed while the request hangs
    # Right after the 0.2 s timeout the worker should see the target is gone, not 5 s later.
    await drained(box, timeout=1.2)

    assert len(sink.received) == 1
    assert await store.load_outbox() == []
    assert finished(store)["ob-a"][0] == "failed"


# --- give up after a day ----------------------------------------------------------------------

async def test_a_temporary_failure_a_day_late_is_failed(store: SqliteStore, sink: ReceiverSink,
                                                        registry: CollectorRegistry,
                                                        make_outbox: OutboxFactory) -> None:
    sink.answers.extend(["503"])
    target = webhook(sink)
    box = await make_outbox([target])
    old = time.time() - outbox_mod.GIVE_UP_AFTER - 1
    box.add(await commit(store, entry("a", 1, target, created_at=old, attempts=7)))
    await drained(box)

    assert answers(sink) == ["503"]
    assert await store.load_outbox() == []
    outcome, _, error = finished(store)["ob-a"]
    assert outcome == "failed" and error.startswith("gave up after 8 attempts") and "HTTP 503" in error
    assert sent(registry, "failed") == 1 and sent(registry, "retried") == 0


async def test_a_long_retried_entry_still_records_its_retries(store: SqliteStore, sink: ReceiverSink,
                                                              registry: CollectorRegistry,
                                                              make_outbox: OutboxFactory) -> None:
    # 1100 earlier attempts: e.g. ~20 minutes of 429 "Retry-After: 1", now a plain 502.
    sink.answers.extend(["502"])
    target = webhook(sink)
    box = await make_outbox([target])
    box.add(await commit(store, entry("a", 1, target, attempts=1100)))
    await until(lambda: sent(registry, "retried") == 1, "the retry to be counted", timeout=1.0)

    left = await store.load_outbox()
    assert [(e.id, e.attempts) for e in left] == [("ob-a", 1101)]


# --- 11. retry_delay --------------------------------------------------------------------------

def test_retry_delay_grows_exponentially_with_equal_jitter_and_a_cap() -> None:
    first, top = outbox_mod.BACKOFF_FIRST, outbox_mod.BACKOFF_MAX
    steps = [min(first * 2 ** (n - 1), top) for n in range(1, 12)]
    assert steps[:4] == [1.0, 2.0, 4.0, 8.0] and steps[-1] == top
    for attempts, step in enumerate(steps, start=1):
        assert retry_delay(attempts, None, rand=lambda: 0.0) == pytest.approx(step / 2)
        assert retry_delay(attempts, None, rand=lambda: 1.0) == pytest.approx(step)
        assert retry_delay(attempts, None, rand=lambda: 0.5) == pytest.approx(step * 0.75)
        for _ in range(50):  # the real random source stays within [step/2, step]
            assert step / 2 <= retry_delay(attempts, None) <= step
    # Attempt 0 (nothing failed yet) is treated as the first step, never below it.
    assert retry_delay(0, None, rand=lambda: 1.0) == pytest.approx(first)
    # Monotonic in the fixed half: later attempts never wait less than earlier ones' minimum.
    assert retry_delay(100, None, rand=lambda: 0.0) == pytest.approx(top / 2)
    assert retry_delay(1024, None, rand=lambda: 1.0) == pytest.approx(top)


def test_retry_after_wins_and_is_capped() -> None:
    never: Callable[[], float] = lambda: pytest.fail("no jitter with Retry-After")  # noqa: E731
    assert retry_delay(1, 30.0, rand=never) == 30.0
    assert retry_delay(10, 0.5, rand=never) == 0.5  # shorter than the backoff: the receiver knows
    assert retry_delay(3, 0.0, rand=never) == 0.0
    assert retry_delay(3, -5.0, rand=never) == 0.0
    assert retry_delay(1, outbox_mod.RETRY_AFTER_MAX * 10, rand=never) == outbox_mod.RETRY_AFTER_MAX
    assert retry_delay(1, outbox_mod.RETRY_AFTER_MAX, rand=never) == outbox_mod.RETRY_AFTER_MAX


def test_retry_delay_follows_the_module_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox_mod, "BACKOFF_FIRST", 0.01)
    monkeypatch.setattr(outbox_mod, "BACKOFF_MAX", 0.04)
    assert [retry_delay(n, None, rand=lambda: 1.0) for n in (1, 2, 3, 4, 5)] == pytest.approx(
        [0.01, 0.02, 0.04, 0.04, 0.04])


def test_retry_delay_is_capped_for_any_number_of_attempts() -> None:
    for attempts in (1025, 1100, 10_000):
        assert retry_delay(attempts, None, rand=lambda: 1.0) == outbox_mod.BACKOFF_MAX
