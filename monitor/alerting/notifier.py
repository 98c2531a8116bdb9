"""Alert transitions in, committed outbox entries out: the dispatcher on a timer.

The rule engine reports each firing and resolved alert; the dispatcher groups them; when a
group is due, its notifications become one outbox entry per integration of the receiver.
Those entries and the group's new "last told" record are one ``StateChange``, committed by
the same ordered writer as the alert states, and handed to the outbox only once durable:
nothing is sent that a crash could make us forget having decided, and nothing decided is
lost (``docs/notifications.md``).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable

import structlog

from monitor.alerting.config import AlertingConfig
from monitor.alerting.dispatch import Dispatcher, GroupRecord
from monitor.alerting.inhibition import Inhibitor, InhibitRule
from monitor.alerting.integrations import Target, build_targets
from monitor.alerting.model import Alert, Notification
from monitor.alerting.outbox import Outbox
from monitor.alerting.receivers.base import RESEND_INTERVAL
from monitor.alerting.routing import RoutingTree
from monitor.alerting.silences import SilenceBook
from monitor.rules.alerts import Transition
from monitor.rules.engine import AlertEvent
from monitor.core.records import AlertRecord, OutboxEntry, StateChange
from monitor.store.base import ChangeStore
from monitor.store.writer import StateWriter

log = structlog.get_logger("monitor.alerting")


def to_alert(record: AlertRecord, external_url: str, resolved_at: float | None = None) -> Alert:
    """The receivers' view of an engine alert. ``starts_at`` is when it started firing,
    as Prometheus sends it (a `for` clock's pending time is not part of the outage page)."""
    return Alert(
        fingerprint=record.fingerprint,
        labels=record.labels,
        annotations=record.annotations,
        starts_at=record.fired_at if record.fired_at is not None else record.active_at,
        ends_at=resolved_at,
        value=record.value,
        generator_url=f"{external_url.rstrip('/')}/" if external_url else "",
        unit=record.unit,
        error=record.error,
        active_at=record.active_at,
    )


class Notifier:
    def __init__(self, silences: SilenceBook, outbox: Outbox, writer: StateWriter,
                 now: Callable[[], float] = time.time) -> None:
        self._silences = silences
        self._outbox = outbox
        self._writer = writer
        self._now = now
        self._external_url = ""
        self._tree: RoutingTree | None = None
        self._dispatcher: Dispatcher | None = None
        self._targets: dict[str, list[Target]] = {}
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._seq = 0
        self._next_resend = 0.0
        # Record changes of a replaced dispatcher, written with the next flush.
        self._carried: dict[str, GroupRecord | None] = {}

    def configure(self, config: AlertingConfig, firing: list[AlertRecord], external_url: str = "") -> None:
        """(Re)build routing, inhibition and targets; groups carry over from the old tree
        through their records, as after a restart."""
        self._external_url = external_url
        self._tree = RoutingTree.from_config(config)
        self._targets = build_targets(config)
        self._outbox.configure(t for targets in self._targets.values() for t in targets)
        old = self._dispatcher
        if self._tree is None:
            self._dispatcher = None  # no route: alerts show in the API and status page only
            return
        inhibitor = Inhibitor([InhibitRule(source_matchers=r.sources, target_matchers=r.targets, equal=r.equal)
                               for r in config.inhibit_rules])
        self._dispatcher = Dispatcher(self._tree, self._now, external_url, mutes=[self._silences], inhibitor=inhibitor)
        if old is not None:
            self._carried.update(old.take_records())
            self._dispatcher.restore(old.records(), [to_alert(a, external_url) for a in firing])
            self._changed.set()

    async def start(self, store: ChangeStore, firing: list[AlertRecord]) -> None:
        """Rebuild groups from what receivers were last told and what fires now; start the
        flush loop and the outbox."""
        records: dict[str, GroupRecord] = await store.load_groups()
        if self._dispatcher is not None:
            self._dispatcher.restore(records, [to_alert(a, self._external_url) for a in firing])
        elif records:
            log.warning("notification_groups_dropped", groups=len(records), reason="no route configured")
        await self._outbox.start()
        self._task = asyncio.create_task(self._loop(), name="notifier")

    async def stop(self, grace: float = 5.0) -> None:
        """Stop flushing; deliveries in hand get ``grace`` seconds to finish."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        await self._outbox.stop(grace)

    def on_event(self, event: AlertEvent) -> None:
        """The engine's listener: only firing and resolved matter to receivers."""
        if self._dispatcher is None:
            return
        if event.transition is Transition.FIRING:
            self._dispatcher.receive(to_alert(event.alert, self._external_url))
        elif event.transition is Transition.RESOLVED:
            self._dispatcher.receive(to_alert(event.alert, self._external_url, resolved_at=event.at))
        else:
            return
        self._changed.set()  # group_wait 0 (or an old alert) may be due right now

    def flush(self) -> StateChange:
        """Take what is due now and commit it; the outbox gets the entries once durable."""
        if self._dispatcher is None:
            return StateChange()
        now = self._now()
        notifications = self._dispatcher.due(now)
        entries = [entry for n in notifications for entry in self._entries(n, now)]
        records, self._carried = {**self._carried, **self._dispatcher.take_records()}, {}
        change = StateChange(outbox=entries, groups=records)
        if change:
            # Durable first, then sent; if the store cannot take it, sent from memory anyway
            # (the outbox reconciles when the commit lands): a page never waits on the store.
            self._writer.submit(change, on_commit=lambda: self._outbox.add(entries),
                                on_failure=lambda: self._outbox.add(entries, durable=False))
        return change

    def _entries(self, notification: Notification, now: float) -> list[OutboxEntry]:
        targets = self._targets.get(notification.receiver, [])
        firing = sum(1 for a in notification.alerts if a.status == "firing")
        log.info("notification_queued", receiver=notification.receiver, group=notification.group_key,
                 firing=firing, resolved=len(notification.alerts) - firing, integrations=len(targets))
        payload = notification.to_record()
        return [OutboxEntry(id=secrets.token_hex(16), seq=self._next_seq(), target=t.name, payload=payload,
                            created_at=now) for t in targets]

    def _next_seq(self) -> int:
        # Nanoseconds keep the order across restarts; +1 keeps it within one tick.
        self._seq = max(self._seq + 1, time.time_ns())
        return self._seq

    def resend(self) -> None:
        """Re-send what is firing to integrations that need to keep hearing it (Alertmanager,
        which otherwise resolves an alert on its own once its endsAt passes)."""
        if self._dispatcher is None:
            return
        now = self._now()
        for receiver, targets in self._targets.items():
            resending = [t for t in targets if t.resends]
            alerts = self._dispatcher.told_firing(receiver) if resending else []
            if not alerts:
                continue
            notification = Notification(receiver=receiver, group_key=f"{{}}/resend:{receiver}", group_labels={},
                                        alerts=alerts, external_url=self._external_url)
            for target in resending:
                self._outbox.resend(OutboxEntry(id=secrets.token_hex(16), seq=self._next_seq(), target=target.name,
                                                payload=notification.to_record(), created_at=now))

    def _resend_if_due(self) -> float | None:
        """Re-send if a period has passed; seconds until the next one (None: nothing resends)."""
        if not any(t.resends for targets in self._targets.values() for t in targets):
            return None
        now = self._now()
        if now >= self._next_resend:
            self.resend()
            self._next_resend = now + RESEND_INTERVAL
        return self._next_resend - now

    async def _loop(self) -> None:
        while True:
            wakeup = self._dispatcher.next_wakeup() if self._dispatcher is not None else None
            timeout = None if wakeup is None else max(wakeup - self._now(), 0.0)
            resend_in = self._resend_if_due()
            if resend_in is not None:
                timeout = resend_in if timeout is None else min(timeout, resend_in)
            try:
                await asyncio.wait_for(self._changed.wait(), timeout)
            except TimeoutError:
                pass
            self._changed.clear()
            try:
                self.flush()
            except Exception:  # the loop must outlive any bug in one flush
                log.exception("notification_flush_failed")
                await asyncio.sleep(1.0)
