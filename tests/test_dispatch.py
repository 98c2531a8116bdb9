"""The dispatcher's grouping timers (Alertmanager's group_wait / group_interval /
repeat_interval semantics), driven by a FakeClock: nothing here sleeps."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from monitor.alerting.config import AlertingConfig
from monitor.alerting.dispatch import Dispatcher
from monitor.alerting.inhibition import InhibitRule, Inhibitor
from monitor.alerting.model import Alert, Notification
from monitor.alerting.routing import RoutingTree
from monitor.alerting.matchers import parse_matcher
from monitor.alerting.silences import Silence, SilenceBook
from monitor.core.clock import FakeClock

T0 = 1_700_000_000.0  # FakeClock's default start


def make_tree(route: dict[str, Any], receivers: tuple[str, ...] = ("default",), **extra: Any) -> RoutingTree:
    config = AlertingConfig.model_validate({"receivers": [{"name": n} for n in receivers], "route": route, **extra})
    tree = RoutingTree.from_config(config)
    assert tree is not None
    return tree


def make(
    tree: RoutingTree,
    clock: FakeClock,
    inhibitor: Inhibitor | None = None,
    silences: SilenceBook | None = None,
) -> Dispatcher:
    return Dispatcher(tree, clock.time, "http://mon.example", mutes=[silences or SilenceBook()],
                      inhibitor=inhibitor or Inhibitor([]))


def firing(fp: str, clock: FakeClock, **labels: str) -> Alert:
    return Alert(fingerprint=fp, labels=labels, annotations={}, starts_at=clock.time())


def resolved(alert: Alert, clock: FakeClock) -> Alert:
    return Alert(alert.fingerprint, alert.labels, alert.annotations, alert.starts_at, ends_at=clock.time())


def drive(d: Dispatcher, clock: FakeClock, until: float, origin: float = T0) -> list[tuple[float, Notification]]:
    """What the daemon does: sleep to next_wakeup, call due(), repeat; stops at ``until``.
    Returns (seconds since ``origin``, notification) pairs."""
    out: list[tuple[float, Notification]] = []
    while (wake := d.next_wakeup()) is not None and wake <= until:
        clock.advance(max(0.0, wake - clock.time()))  # a past wakeup: due at once
        out += [(clock.time() - origin, n) for n in d.due(clock.time())]
    clock.advance(max(0.0, until - clock.time()))
    return out


def fps(n: Notification) -> list[tuple[str, str]]:
    return [(a.fingerprint, a.status) for a in n.alerts]


ROUTE = {"receiver": "default", "group_by": ["alertname"], "group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h"}  # fmt: skip


# --------------------------------------------------------------------------- group_wait


def test_group_wait_delays_and_batches_the_first_notification() -> None:
    clock = FakeClock()
    d = make(make_tree(ROUTE), clock)
    d.receive(firing("b", clock, alertname="ApiDown", instance="2"))
    assert d.next_wakeup() == T0 + 30
    clock.advance(10)
    d.receive(firing("a", clock, alertname="ApiDown", instance="1"))
    assert d.due(T0 + 29) == []
    sent = drive(d, clock, T0 + 30)
    assert len(sent) == 1
    when, n = sent[0]
    assert when == 30
    assert n.receiver == "default"
    assert n.group_key == '{}:{alertname="ApiDown"}'
    assert n.group_labels == {"alertname": "ApiDown"}
    assert fps(n) == [("a", "firing"), ("b", "firing")]  # sorted by fingerprint
    assert n.external_url == "http://mon.example"
    # Nothing changed: quiet until repeat_interval.
    assert drive(d, clock, T0 + 3 * 3600) == []


def test_fired_and_resolved_within_group_wait_is_never_told() -> None:
    clock = FakeClock()
    d = make(make_tree(ROUTE), clock)
    a = firing("a", clock, alertname="Blip")
    d.receive(a)
    clock.advance(5)
    d.receive(resolved(a, clock))
    assert drive(d, clock, T0 + 600) == []
    assert d.next_wakeup() is None  # group removed


# --------------------------------------------------------------------------- group_by


def test_group_by_separates_groups() -> None:
    clock = FakeClock()
    d = make(make_tree(ROUTE), clock)
    d.receive(firing("a", clock, alertname="ApiDown", instance="1"))
    d.receive(firing("b", clock, alertname="ApiDown", instance="2"))
    d.receive(firing("c", clock, alertname="DiskFull", instance="1"))
    sent = sorted((n for _, n in drive(d, clock, T0 + 30)), key=lambda n: n.group_key)
    assert [(n.group_labels, fps(n)) for n in sent] == [
        ({"alertname": "ApiDown"}, [("a", "firing"), ("b", "firing")]),
        ({"alertname": "DiskFull"}, [("c", "firing")]),
    ]


def test_group_by_all_labels_groups_per_label_set() -> None:
    clock = FakeClock()
    d = make(make_tree({**ROUTE, "group_by": ["..."]}), clock)
    d.receive(firing("a", clock, alertname="ApiDown", instance="1"))
    d.receive(firing("b", clock, alertname="ApiDown", instance="2"))
    sent = [n for _, n in drive(d, clock, T0 + 30)]
    assert sorted(fps(n)[0][0] for n in sent) == ["a", "b"]
    assert all(len(n.alerts) == 1 for n in sent)
    assert {n.group_key for n in sent} == {
        '{}:{alertname="ApiDown", instance="1"}',
        '{}:{alertname="ApiDown", instance="2"}',
    }


def test_empty_group_by_is_one_group_for_the_route() -> None:
    clock = FakeClock()
    d = make(make_tree({**ROUTE, "group_by": []}), clock)
    d.receive(firing("a", clock, alertname="ApiDown"))
    d.receive(firing("b", clock, alertname="DiskFull"))
    [(_, n)] = drive(d, clock, T0 + 30)
    assert n.group_key == "{}:{}" and n.group_labels == {} and len(n.alerts) == 2


# --------------------------------------------------------------------------- group_interval


def test_group_interval_batches_later_changes() -> None:
    clock = FakeClock()
    d = make(make_tree(ROUTE), clock)
    d.receive(firing("a", clock, alertname="ApiDown"))
    assert len(drive(d, clock, T0 + 30)) == 1
    clock.advance(10)  # T0+40
    d.receive(firing("b", clock, alertname="ApiDown"))
    clock.advance(60)
    d.receive(firing("c", clock, alertname="ApiDown"))
    assert d.next_wakeup() == T0 + 330  # the group's grid, not group_wait again
    assert d.due(T0 + 329) == []
    [(when, n)] = drive(d, clock, T0 + 330)
    assert when == 330
    assert fps(n) == [("a", "firing"), ("b", "firing"), ("c", "firing")]


def test_late_tick_keeps_the_grid() -> None:
    clock = FakeClock()
    d = make(make_tree(ROUTE), clock)
    d.receive(firing("a", clock, alertname="ApiDown"))
    assert len(d.due(T0 + 700)) == 1  # the daemon was late by more than one interval
    assert d.next_wakeup() == T0 + 930  # 30 + 3 * 300: still on the group's grid


# --------------------------------------------------------------------------- repeat_interval


def test_repeat_interval_resends_unchanged_firing_groups_and_stops_after_resolve() -> None:
    clock = FakeClock()
    route = {**ROUTE, "group_interval": "1m", "repeat_interval": "5m"}
    d = make(make_tree(route), clock)
    a = firing("a", clock, alertname="ApiDown")
    d.receive(a)
    sent = drive(d, clock, T0 + 700)
    # First at 30, then each flush at or after last_sent + 5m: 330, 630.
    assert [when for when, _ in sent] == [30, 330, 630]
    assert all(fps(n) == [("a", "firing")] for _, n in sent)
    d.receive(resolved(a, clock))  # at 700
    [(when, n)] = drive(d, clock, T0 + 5000)
    assert when == 750 and fps(n) == [("a", "resolved")] and n.status == "resolved"
    assert d.next_wakeup() is None


# --------------------------------------------------------------------------- resolved


def test_resolved_alert_sent_once_then_group_removed() -> None:
    clock = FakeClock()
    d = make(make_tree(ROUTE), clock)
    a = firing("a", clock, alertname="ApiDown", instance="1")
    b = firing("b", clock, alertname="ApiDown", instance="2")
    d.receive(a)
    d.receive(b)
    assert len(drive(d, clock, T0 + 30)) == 1
    clock.advance(20)
    d.receive(resolved(a, clock))
    [(when, n)] = drive(d, clock, T0 + 330)
    assert when == 330 and fps(n) == [("a", "resolved"), ("b", "firing")] and n.status == "firing"
    # The resolved alert is forgotten: the next repeat carries only b.
    sent = drive(d, clock, T0 + 30 + 4 * 3600 + 300)
    assert [fps(n) for _, n in sent] == [[("b", "firing")]]
    d.receive(resolved(b, clock))
    sent = drive(d, clock, clock.time() + 3600)
    assert [fps(n) for _, n in sent] == [[("b", "resolved")]]
    assert d.next_wakeup() is None
    # A new alert for the same key starts a new group with group_wait again.
    start = clock.time()
    d.receive(firing("a", clock, alertname="ApiDown"))
    assert d.next_wakeup() == start + 30


def test_alert_refiring_after_resolve_is_news() -> None:
    clock = FakeClock()
    d = make(make_tree(ROUTE), clock)
    a = firing("a", clock, alertname="ApiDown", instance="1")
    d.receive(a)
    d.receive(firing("b", clock, alertname="ApiDown", instance="2"))
    drive(d, clock, T0 + 30)
    d.receive(resolved(a, clock))
    drive(d, clock, T0 + 330)
    d.receive(firing("a", clock, alertname="ApiDown", instance="1"))
    [(when, n)] = drive(d, clock, T0 + 630)
    assert when == 630 and fps(n) == [("a", "firing"), ("b", "firing")]


# --------------------------------------------------------------------------- continue


def test_continue_routes_notify_each_matching_route_receiver() -> None:
    route = {
        **ROUTE,
        "routes": [
            {"matchers": ['severity="critical"'], "receiver": "pager", "continue": True},
            {"matchers": ['severity="critical"'], "receiver": "audit", "continue": True},
            {"matchers": ['team="db"'], "receiver": "db"},
            {"matchers": ['team="db"'], "receiver": "never"},  # first match without continue wins
        ],
    }
    clock = FakeClock()
    d = make(make_tree(route, ("default", "pager", "audit", "db", "never")), clock)
    d.receive(firing("a", clock, alertname="DbDown", severity="critical", team="db"))
    d.receive(firing("b", clock, alertname="DiskFull", severity="warning"))
    sent = [n for _, n in drive(d, clock, T0 + 30)]
    assert sorted((n.receiver, fps(n)[0][0]) for n in sent) == [
        ("audit", "a"),
        ("db", "a"),
        ("default", "b"),
        ("pager", "a"),
    ]
    # Identical matchers on the pager and audit routes: still distinct groups (route.id),
    # yet both carry Alertmanager's key for the same route key.
    keys = {n.receiver: n.group_key for n in sent}
    assert keys["pager"] == keys["audit"] == '{}/{severity="critical"}:{alertname="DbDown"}'


# --------------------------------------------------------------------------- inhibition / silences


def test_inhibited_alerts_are_dropped() -> None:
    rule = InhibitRule(
        source_matchers=[parse_matcher('alertname="DatabaseDown"')],
        target_matchers=[parse_matcher('alertname="ApiDown"')],
        equal=["env"],
    )
    clock = FakeClock()
    d = make(make_tree({**ROUTE, "group_by": []}), clock, inhibitor=Inhibitor([rule]))
    db = firing("db", clock, alertname="DatabaseDown", env="prod")
    d.receive(db)
    d.receive(firing("api-prod", clock, alertname="ApiDown", env="prod"))
    d.receive(firing("api-staging", clock, alertname="ApiDown", env="staging"))
    [(_, n)] = drive(d, clock, T0 + 30)
    assert fps(n) == [("api-staging", "firing"), ("db", "firing")]
    # The cause recovers: the symptom is no longer inhibited and is news at the next tick.
    d.receive(resolved(db, clock))
    [(_, n)] = drive(d, clock, T0 + 330)
    assert fps(n) == [("api-prod", "firing"), ("api-staging", "firing"), ("db", "resolved")]


def test_silenced_alerts_are_dropped_and_a_silenced_only_group_sends_nothing() -> None:
    clock = FakeClock()
    book = SilenceBook()
    book.add(
        Silence(matchers=[parse_matcher('instance="1"')], starts_at=T0, ends_at=T0 + 3600, created_by="t", comment="c"),
        T0,
    )
    d = make(make_tree(ROUTE), clock, silences=book)
    d.receive(firing("a", clock, alertname="ApiDown", instance="1"))
    d.receive(firing("b", clock, alertname="ApiDown", instance="2"))
    d.receive(firing("c", clock, alertname="DiskFull", instance="1"))  # its group: all silenced
    sent = [n for _, n in drive(d, clock, T0 + 3000)]
    assert [(n.group_labels, fps(n)) for n in sent] == [({"alertname": "ApiDown"}, [("b", "firing")])]
    # The silence ends: the alerts it hid are news at the next group_interval tick.
    sent = [n for _, n in drive(d, clock, T0 + 3630)]
    assert sorted(fps(n)[0][0] for n in sent) == ["a", "c"]
    assert sorted(len(n.alerts) for n in sent) == [1, 2]


class _EnvMuted:
    """A mute stage of our own: any Muter in the list is applied like silences and inhibition."""

    def __init__(self, env: str) -> None:
        self.env = env

    def mutes(self, labels: Mapping[str, str], now: float) -> bool:
        return labels.get("env") == self.env


def test_every_alert_mute_stage_is_applied_the_same_way() -> None:
    clock = FakeClock()
    book = SilenceBook()
    book.add(Silence(matchers=[parse_matcher('instance="1"')], starts_at=T0, ends_at=T0 + 3600), T0)
    d = Dispatcher(make_tree({**ROUTE, "group_by": []}), clock.time, mutes=[book, _EnvMuted("dev")])
    d.receive(firing("dev", clock, alertname="ApiDown", env="dev"))
    d.receive(firing("silenced", clock, alertname="ApiDown", env="prod", instance="1"))
    d.receive(firing("told", clock, alertname="ApiDown", env="prod", instance="2"))
    [(_, n)] = drive(d, clock, T0 + 30)
    assert fps(n) == [("told", "firing")]


# --------------------------------------------------------------------------- time muting


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc).timestamp()


def test_muted_route_sends_nothing_in_the_window_and_sends_after_it() -> None:
    intervals = [
        {"name": "sunday-maintenance", "time_intervals": [{"weekdays": ["sunday"], "times": [{"start_time": "02:00", "end_time": "04:00"}]}]},
    ]  # fmt: skip
    route = {**ROUTE, "routes": [{"matchers": ['team="ops"'], "receiver": "ops", "mute_time_intervals": ["sunday-maintenance"]}]}  # fmt: skip
    tree = make_tree(route, ("default", "ops"), time_intervals=intervals)
    start = at(2026, 3, 1, 1, 59, 50)  # Sunday 01:59:50 UTC
    clock = FakeClock(start)
    d = make(tree, clock)
    a = firing("a", clock, alertname="Deploy", team="ops")
    d.receive(a)
    d.receive(firing("b", clock, alertname="Other", team="web"))  # default route: not muted
    sent = drive(d, clock, at(2026, 3, 1, 3, 59), origin=0.0)
    assert [(t, n.receiver) for t, n in sent] == [(start + 30, "default")]
    # The group's timers kept running through the window: still on its 5-minute grid.
    assert d.next_wakeup() == at(2026, 3, 1, 4, 0, 20)
    d.receive(resolved(firing("x", clock), clock))  # a lone resolved alert: never news
    later = drive(d, clock, at(2026, 3, 1, 4, 10), origin=0.0)
    assert [(t, n.receiver, fps(n)) for t, n in later] == [(at(2026, 3, 1, 4, 0, 20), "ops", [("a", "firing")])]


def test_resolved_alert_is_kept_through_a_mute_window() -> None:
    intervals = [{"name": "always", "time_intervals": [{"weekdays": ["sunday"]}]}]
    route = {**ROUTE, "routes": [{"matchers": ['team="ops"'], "receiver": "ops", "mute_time_intervals": ["always"]}]}
    tree = make_tree(route, ("default", "ops"), time_intervals=intervals)
    clock = FakeClock(at(2026, 2, 28, 23, 50))  # Saturday
    d = make(tree, clock)
    a = firing("a", clock, alertname="Deploy", team="ops")
    d.receive(a)
    assert len(drive(d, clock, at(2026, 2, 28, 23, 51))) == 1
    clock.advance(20 * 60)  # Sunday 00:11: muted all day
    d.receive(resolved(a, clock))
    assert drive(d, clock, at(2026, 3, 1, 23, 59)) == []
    sent = drive(d, clock, at(2026, 3, 2, 0, 10))  # Monday
    assert [fps(n) for _, n in sent] == [[("a", "resolved")]]
    assert d.next_wakeup() is None
