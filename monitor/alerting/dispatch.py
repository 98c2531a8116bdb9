"""The dispatcher: alerts into aggregation groups, groups into notifications on a timer.

Alertmanager's grouping semantics, kept because users tune their trees for them:

- a group is ``(route, group labels)``; it is created when its first alert arrives;
- its first flush is ``group_wait`` after that, so alerts arriving meanwhile travel together;
- after each flush the next one is ``group_interval`` later; a flush notifies only if the
  group changed since the last notification (a new firing alert, or an alert resolved),
  or if ``repeat_interval`` has passed since then while something still fires;
- resolved alerts ride along in the next notification once, then are forgotten; a group
  with no alerts left is deleted.

This module holds only timers and state; nothing here sleeps or sends. The daemon calls
``due(now)`` on a tick (``next_wakeup()`` says when) and hands the result to receivers,
which is also what lets tests drive it with a fake clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from monitor.alerting.inhibition import Inhibitor
from monitor.alerting.model import Alert, Notification
from monitor.alerting.routing import Route, RoutingTree, group_key, group_labels
from monitor.alerting.silences import SilenceBook

# (route.id, group key): route.id, not route.key, so two sibling routes with identical
# matchers (a `continue: true` fan-out) keep separate groups and timers.
GroupId = tuple[str, str]


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


class Dispatcher:
    """Groups alerts per matching route and says which notifications are due when."""

    def __init__(
        self,
        tree: RoutingTree,
        inhibitor: Inhibitor,
        silences: SilenceBook,
        now: Callable[[], float],
        external_url: str = "",
    ) -> None:
        self._tree = tree
        self._inhibitor = inhibitor
        self._silences = silences
        self._now = now  # wall-clock seconds: mute/active time intervals are wall-clock
        self._external_url = external_url
        self._groups: dict[GroupId, _Group] = {}

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
            # Replace, never merge: the newest state of an alert is the only one that counts.
            group.alerts[alert.fingerprint] = alert

    def due(self, now: float) -> list[Notification]:
        """Flush every group whose timer has run out by ``now``; the notifications to send."""
        # Inhibition sources: every firing alert we hold, silenced ones included (a silenced
        # cause still explains its symptoms, as in Alertmanager). Deduplicated by fingerprint,
        # since one alert sits in several groups when `continue` fans it out.
        firing: dict[str, Mapping[str, str]] = {}
        for group in self._groups.values():
            for fp, alert in group.alerts.items():
                if alert.status == "firing":
                    firing[fp] = alert.labels
        sources = list(firing.values())

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
            if self._tree.muted(group.route, now):
                # Muted: say nothing, keep everything (resolved alerts included) so the
                # first flush after the mute window reports the state of the group then.
                continue
            notification = self._flush(group, sources, now)
            if notification is not None:
                out.append(notification)
            # Resolved alerts are told at most once: in this notification, or never if the
            # receiver had no need to hear (silenced, inhibited, or fired and resolved
            # before it ever heard of them).
            group.alerts = {fp: a for fp, a in group.alerts.items() if a.status == "firing"}
            if not group.alerts:
                del self._groups[gid]
        return out

    def next_wakeup(self) -> float | None:
        """The earliest time ``due`` has something to do; None when there are no groups."""
        return min((g.next_flush for g in self._groups.values()), default=None)

    def _flush(self, group: _Group, sources: list[Mapping[str, str]], now: float) -> Notification | None:
        visible = [
            a
            for a in group.alerts.values()
            if not self._silences.silenced_by(a.labels, now)
            and not self._inhibitor.inhibited(a.labels, sources)
        ]
        if not visible:
            # Everything muted: nothing to say, and the receiver's view stays as it was (as in
            # Alertmanager, whose pipeline stops when no alert survives silences/inhibition).
            return None
        firing = frozenset(a.fingerprint for a in visible if a.status == "firing")
        resolved = frozenset(a.fingerprint for a in visible if a.status == "resolved")
        if not _needs_update(group, firing, resolved, now):
            return None
        group.sent_firing, group.sent_resolved, group.last_sent = firing, resolved, now
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
