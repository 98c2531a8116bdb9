"""The dispatcher: alerts into aggregation groups, groups into notifications on a timer.

Alertmanager's grouping semantics, kept because users tune their trees for them:

- a group is ``(route, group labels)``; it is created when its first alert arrives;
- its first flush is ``group_wait`` after that, so alerts arriving meanwhile travel together;
- after each flush the next one is ``group_interval`` later; a flush notifies only if the
  group changed since the last notification (a new firing alert, or an alert resolved),
  or if ``repeat_interval`` has passed since then while something still fires;
- resolved alerts ride along in the next notification once, then are forgotten; a group
  with no alerts left is deleted.

Muting is a list of stages of one shape (:mod:`monitor.alerting.muting`): a group whose
route's time muter holds it back is not flushed at all; otherwise each of its alerts is
asked of the alert stages (silences, and inhibition by what fires at that flush) and only
what none of them mutes is told.

This module holds only timers and state; nothing here sleeps or sends. The daemon calls
``due(now)`` on a tick (``next_wakeup()`` says when) and hands the result to the outbox,
which is also what lets tests drive it with a fake clock.

What a receiver was last told about each group is the only dispatcher state that must
survive a restart: ``take_records()`` hands out the records that changed (to be committed
with the outbox entries of the same flush), and ``restore()`` rebuilds the groups from them
plus the alerts still firing, so nothing is told twice and an alert that resolved while the
daemon was down is still reported resolved.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from monitor.alerting.inhibition import Inhibitor
from monitor.alerting.model import Alert, Notification
from monitor.alerting.muting import Muter, muted
from monitor.alerting.routing import Route, RoutingTree, group_key, group_labels

# (route.id, group key): route.id, not route.key, so two sibling routes with identical
# matchers (a `continue: true` fan-out) keep separate groups and timers.
GroupId = tuple[str, str]
GroupRecord = dict[str, Any]

log = structlog.get_logger("monitor.alerting")


def record_id(gid: GroupId) -> str:
    """The store's key for a group's record: fixed length, whatever the labels hold."""
    return hashlib.sha256(f"{gid[0]}\x00{gid[1]}".encode()).hexdigest()[:32]


@dataclass
class _Group:
    """One aggregation group. Only what the timer and change detection need."""

    route: Route
    key: str  # Alertmanager's group key (route key + group labels), what receivers see
    labels: dict[str, str]
    first_seen: float
    next_flush: float  # when due() next looks at this group
    alerts: dict[str, Alert] = field(default_factory=dict)  # latest version per fingerprint
    # What the receiver last heard (None: nothing yet). Fingerprint sets, not hashes: a set
    # answers "is anything new?" (subset test), which a hash cannot.
    sent_firing: frozenset[str] | None = None
    sent_resolved: frozenset[str] = frozenset()
    last_sent: float | None = None  # for repeat_interval
    # The firing alerts as last told, so a restart can tell their resolution even when
    # the alert itself is gone from the rule engine by then.
    told: dict[str, Alert] = field(default_factory=dict)

    def to_record(self) -> GroupRecord:
        return {
            "route": self.route.id,
            "key": self.key,
            "labels": self.labels,
            "first_seen": self.first_seen,
            "sent_firing": sorted(self.sent_firing or ()),
            "sent_resolved": sorted(self.sent_resolved),
            "last_sent": self.last_sent,
            "told": {fp: a.to_record() for fp, a in self.told.items()},
        }


class Dispatcher:
    """Groups alerts per matching route and says which notifications are due when."""

    def __init__(
        self,
        tree: RoutingTree,
        now: Callable[[], float],
        external_url: str = "",
        *,
        mutes: Sequence[Muter] = (),
        inhibitor: Inhibitor | None = None,
    ) -> None:
        """``mutes``: alert stages that hold for every flush (the silence book); ``inhibitor``:
        the inhibit rules, whose stage is made at each flush from the alerts firing then."""
        self._tree = tree
        self._mutes = tuple(mutes)
        self._inhibitor = inhibitor or Inhibitor(())
        self._now = now  # wall-clock seconds: mute/active time intervals are wall-clock
        self._external_url = external_url
        self._groups: dict[GroupId, _Group] = {}
        self._dirty: dict[str, GroupRecord | None] = {}  # record changes not yet taken

    def receive(self, alert: Alert) -> None:
        """An alert changed state (firing, or resolved with ``ends_at`` set)."""
        now = self._now()
        for route in self._tree.match(alert.labels):
            gid = (route.id, group_key(route, alert.labels))
            group = self._groups.get(gid)
            if group is None:
                group = _Group(
                    route=route,
                    key=gid[1],
                    labels=group_labels(route, alert.labels),
                    first_seen=now,
                    next_flush=now + route.group_wait,
                )
                self._groups[gid] = group
            if group.last_sent is None and alert.starts_at + route.group_wait <= now:
                # An alert already older than group_wait (restored after a restart, or
                # routed anew after a reload) has waited enough: as Alertmanager does,
                # flush now rather than add another group_wait to a page that is late.
                group.next_flush = min(group.next_flush, now)
            # Replace, never merge: the newest state of an alert is the only one that counts.
            group.alerts[alert.fingerprint] = alert

    def restore(self, records: Mapping[str, GroupRecord], firing: Iterable[Alert]) -> None:
        """Rebuild groups after a restart or reload, before any ``receive``.

        ``records`` are the persisted group records, ``firing`` the alerts firing now. A
        told alert that no longer fires resolved while nobody was watching: it is resolved
        now and told at the group's first flush, which is due at once.
        """
        now = self._now()
        firing_now = {a.fingerprint: a for a in firing}
        routes = {route.id: route for route in self._tree.routes()}
        for rid, record in records.items():
            route = routes.get(record["route"])
            if route is None:
                # The route was edited away: its receiver is not ours to tell any more.
                log.warning("notification_group_dropped", route=record["route"], group=record["key"],
                            reason="route no longer in the config")
                self._dirty[rid] = None
                continue
            told = {fp: Alert.from_record(a) for fp, a in record.get("told", {}).items()}
            group = _Group(
                route=route,
                key=record["key"],
                labels=dict(record["labels"]),
                first_seen=float(record["first_seen"]),
                next_flush=now,
                sent_firing=frozenset(record["sent_firing"]),
                sent_resolved=frozenset(record["sent_resolved"]),
                last_sent=record["last_sent"],
                told=told,
            )
            for fp, alert in told.items():
                group.alerts[fp] = firing_now.get(fp) or replace(alert, ends_at=now)
            self._groups[(route.id, group.key)] = group
        for alert in firing_now.values():
            self.receive(alert)

    def records(self) -> dict[str, GroupRecord]:
        """Every group that told a receiver something: what a reload hands the next dispatcher."""
        return {record_id(gid): g.to_record() for gid, g in self._groups.items() if g.sent_firing is not None}

    def told_firing(self, receiver: str) -> list[Alert]:
        """The alerts ``receiver`` was last told are firing (across its groups), for
        integrations that must keep hearing about them (Alertmanager forwarding)."""
        found: dict[str, Alert] = {}
        for group in self._groups.values():
            if group.route.receiver == receiver:
                found.update(group.told)
        return [found[fp] for fp in sorted(found)]

    def take_records(self) -> dict[str, GroupRecord | None]:
        """Record changes since the last call (None: delete), for the store."""
        dirty, self._dirty = self._dirty, {}
        return dirty

    def due(self, now: float) -> list[Notification]:
        """Flush every group whose timer has run out by ``now``; the notifications to send."""
        # The same alert stages for every group of this flush; inhibition's is made here because
        # it depends on what fires now.
        alert_mutes = (*self._mutes, self._inhibitor.with_sources(self._firing_labels()))
        out: list[Notification] = []
        ready = sorted(
            (gid for gid, g in self._groups.items() if g.next_flush <= now),
            key=lambda gid: (self._groups[gid].next_flush, gid),
        )
        for gid in ready:
            group = self._groups[gid]
            # Advance on the group's own grid (not from `now`), so a late tick does not
            # shift every later flush; a tick that missed several intervals flushes once.
            while group.next_flush <= now:
                group.next_flush += group.route.group_interval
            if self._tree.time_muter(group.route).mutes(group.labels, now):
                # Muted: say nothing, keep everything (resolved alerts included) so the
                # first flush after the mute window reports the state of the group then.
                continue
            notification = self._flush(group, alert_mutes, now)
            if notification is not None:
                out.append(notification)
            # Resolved alerts are told at most once: in this notification, or never if the
            # receiver had no need to hear (silenced, inhibited, or fired and resolved
            # before it ever heard of them).
            group.alerts = {fp: a for fp, a in group.alerts.items() if a.status == "firing"}
            if not group.alerts:
                del self._groups[gid]
                if group.sent_firing is not None:
                    self._dirty[record_id(gid)] = None
            elif notification is not None:
                self._dirty[record_id(gid)] = group.to_record()
        return out

    def next_wakeup(self) -> float | None:
        """The earliest time ``due`` has something to do; None when there are no groups."""
        return min((g.next_flush for g in self._groups.values()), default=None)

    def _firing_labels(self) -> list[Mapping[str, str]]:
        """Inhibition sources: every firing alert we hold, silenced ones included (a silenced
        cause still explains its symptoms, as in Alertmanager). Deduplicated by fingerprint,
        since one alert sits in several groups when `continue` fans it out."""
        firing: dict[str, Mapping[str, str]] = {}
        for group in self._groups.values():
            for fp, alert in group.alerts.items():
                if alert.status == "firing":
                    firing[fp] = alert.labels
        return list(firing.values())

    def _flush(self, group: _Group, mutes: Sequence[Muter], now: float) -> Notification | None:
        visible = [a for a in group.alerts.values() if not muted(mutes, a.labels, now)]
        if not visible:
            # Everything muted: nothing to say, and the receiver's view stays as it was (as in
            # Alertmanager, whose pipeline stops when no alert survives silences/inhibition).
            return None
        firing = frozenset(a.fingerprint for a in visible if a.status == "firing")
        resolved = frozenset(a.fingerprint for a in visible if a.status == "resolved")
        if not _needs_update(group, firing, resolved, now):
            return None
        group.sent_firing, group.sent_resolved, group.last_sent = firing, resolved, now
        group.told = {a.fingerprint: a for a in visible if a.status == "firing"}
        return Notification(
            receiver=group.route.receiver,
            group_key=group.key,
            group_labels=dict(group.labels),
            alerts=sorted(visible, key=lambda a: a.fingerprint),
            external_url=self._external_url,
        )


def _needs_update(group: _Group, firing: frozenset[str], resolved: frozenset[str], now: float) -> bool:
    """Alertmanager's dedup decision (its ``DedupStage.needsUpdate``)."""
    if group.sent_firing is None:
        # Never notified: only firing alerts are news; a lone resolved one is not.
        return bool(firing)
    if not firing <= group.sent_firing:
        return True  # a firing alert the receiver has not heard of
    if not firing:
        # All clear: tell the receiver, but only if it was told something was firing.
        return bool(group.sent_firing)
    if not resolved <= group.sent_resolved:
        return True  # an alert resolved since the last notification
    assert group.last_sent is not None  # set together with sent_firing
    return now >= group.last_sent + group.route.repeat_interval
