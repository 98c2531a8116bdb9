"""What survives a restart or a reload: the groups' "last told" records, on a FakeClock.

A restarted dispatcher must neither tell a receiver again what it already heard, nor forget
to tell it that an alert it paged for has resolved meanwhile.
"""

from __future__ import annotations

import json

from monitor.alerting.dispatch import Dispatcher, record_id
from monitor.alerting.model import Notification
from monitor.core.clock import FakeClock
from tests.test_dispatch import ROUTE, drive, firing, fps, make, make_tree, resolved

T0 = 1_700_000_000.0


def told_once(clock: FakeClock) -> tuple[Dispatcher, dict[str, dict[str, object]]]:
    """A dispatcher that paged for alerts a and b; the records it would have committed."""
    d = make(make_tree(ROUTE), clock)
    d.receive(firing("a", clock, alertname="ApiDown", instance="1"))
    d.receive(firing("b", clock, alertname="ApiDown", instance="2"))
    assert len(drive(d, clock, T0 + 30)) == 1
    records = d.take_records()
    assert len(records) == 1 and all(r is not None for r in records.values())
    # They go through JSON in the store: the restored state must not depend on Python objects.
    return d, json.loads(json.dumps(records))


def test_restart_with_the_same_alerts_firing_tells_nothing_new() -> None:
    clock = FakeClock()
    old, records = told_once(clock)
    clock.advance(60)
    d = make(make_tree(ROUTE), clock)
    d.restore(records, list(old._groups.values())[0].alerts.values())
    assert drive(d, clock, T0 + 3 * 3600) == []
    # ...until repeat_interval (4h after the page), which carries over too.
    sent = drive(d, clock, T0 + 30 + 4 * 3600 + 300)
    assert [fps(n) for _, n in sent] == [[("a", "firing"), ("b", "firing")]]


def test_alert_that_resolved_while_down_is_told_resolved_at_once() -> None:
    clock = FakeClock()
    old, records = told_once(clock)
    still_firing = list(old._groups.values())[0].alerts["b"]
    clock.advance(600)
    d = make(make_tree(ROUTE), clock)
    d.restore(records, [still_firing])
    assert d.next_wakeup() == clock.time()  # due now, not a group_interval later
    sent = d.due(clock.time())
    assert [fps(n) for n in sent] == [[("a", "resolved"), ("b", "firing")]]
    resolved_a = sent[0].alerts[0]
    assert resolved_a.ends_at == clock.time() and resolved_a.labels == {"alertname": "ApiDown", "instance": "1"}


def test_everything_resolved_while_down_sends_one_resolve_and_deletes_the_record() -> None:
    clock = FakeClock()
    _, records = told_once(clock)
    clock.advance(600)
    d = make(make_tree(ROUTE), clock)
    d.restore(records, [])
    sent = d.due(clock.time())
    assert [n.status for n in sent] == ["resolved"]
    assert d.take_records() == {rid: None for rid in records}
    assert d.next_wakeup() is None
    assert drive(d, clock, clock.time() + 3600) == []


def test_alert_older_than_group_wait_is_flushed_at_once() -> None:
    clock = FakeClock()
    d = make(make_tree(ROUTE), clock)
    old = firing("a", clock, alertname="ApiDown")
    clock.advance(600)  # it started firing while the daemon was down
    d.restore({}, [old])
    assert d.next_wakeup() == clock.time()
    assert [fps(n) for n in d.due(clock.time())] == [[("a", "firing")]]


def test_fresh_alert_still_waits_group_wait() -> None:
    clock = FakeClock()
    d = make(make_tree(ROUTE), clock)
    d.receive(firing("a", clock, alertname="ApiDown"))
    assert d.next_wakeup() == T0 + 30


def test_record_of_a_route_gone_from_the_config_is_dropped() -> None:
    clock = FakeClock()
    _, records = told_once(clock)
    other = {**ROUTE, "routes": [{"receiver": "team", "matchers": ["team=db"]}]}
    edited = {rid: {**r, "route": r["route"] + "/gone"} for rid, r in records.items()}
    d = make(make_tree(other, receivers=("default", "team")), clock)
    d.restore(edited, [])
    assert d.take_records() == {rid: None for rid in records}
    assert d.due(clock.time()) == []


def test_records_follow_each_notification_and_group_deletion() -> None:
    clock = FakeClock()
    d = make(make_tree(ROUTE), clock)
    a = firing("a", clock, alertname="ApiDown")
    d.receive(a)
    assert d.take_records() == {}  # nothing told yet, nothing to remember
    drive(d, clock, T0 + 30)
    (rid, record), = d.take_records().items()
    assert record is not None and record["sent_firing"] == ["a"] and set(record["told"]) == {"a"}
    assert rid == record_id((d.records()[rid]["route"], '{}:{alertname="ApiDown"}'))  # type: ignore[index]
    clock.advance(10)
    d.receive(resolved(a, clock))
    sent: list[tuple[float, Notification]] = drive(d, clock, T0 + 400)
    assert [n.status for _, n in sent] == ["resolved"]
    assert d.take_records() == {rid: None}
