"""Rule evaluation and the alert state machine, on a fake clock (no sleeping)."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.check_status import CheckStatuses
from monitor.core.clock import FakeClock
from monitor.config.errors import ConfigError
from monitor.config.loader import Config, load_config
from monitor.history import History
from monitor.core.results import Outcome, Result
from monitor.rules.alerts import Transition, fingerprint, step
from monitor.rules.engine import AlertEvent
from monitor.rules.functions import NoData, WindowFunctions
from monitor.core.records import AlertRecord
from tests.rule_setup import RulePipeline, engine_for

CHECKS = """checks:
  - {name: api, kind: heartbeat, max_age: 1h, interval: 10s, labels: {system: echo, env: prod}}
  - {name: worker, kind: heartbeat, max_age: 1h, interval: 10s, labels: {system: echo}}
  - {name: other, kind: heartbeat, max_age: 1h, interval: 10s, labels: {system: pulse}}
"""


def make(tmp_path: Path, rules: str) -> tuple[Config, CheckStatuses, RulePipeline, FakeClock, list[AlertEvent]]:
    config, statuses, engine, clock = engine_for(tmp_path, CHECKS, rules)
    return config, statuses, engine, clock, engine.events


def feed(config: Config, statuses: CheckStatuses, engine: RulePipeline, clock: FakeClock, name: str,
         up: bool, value: float = 1.0, latency: float = 0.01) -> list[AlertEvent]:
    result = Result(up=up, value=value, latency=latency, at=clock.time(),
                    outcome=Outcome.SUCCESS if up else Outcome.FAILURE, error=None if up else "down")
    statuses.record(name, result)
    check = config.check(name)
    assert check is not None
    return engine.evaluate(check, result)


def rule(expr: str, extra: str = "", check: str = "api") -> str:
    return f"groups:\n  - name: g\n    rules:\n      - alert: A\n        check: {check}\n        expr: '{expr}'\n{extra}"


def transitions(events: list[AlertEvent]) -> list[str]:
    return [e.transition.value for e in events]


def test_for_holds_pending_until_the_boundary(tmp_path: Path) -> None:
    config, statuses, engine, clock, events = make(tmp_path, rule("!up", "        for: 30s\n"))
    feed(config, statuses, engine, clock, "api", up=False)
    (alert,) = engine.alerts.values()
    assert alert.state == "pending" and alert.active_at == clock.time()
    clock.advance(20)
    feed(config, statuses, engine, clock, "api", up=False)
    assert next(iter(engine.alerts.values())).state == "pending"
    clock.advance(10)  # exactly `for` after activeAt: fires, as Prometheus does
    feed(config, statuses, engine, clock, "api", up=False)
    assert next(iter(engine.alerts.values())).state == "firing"
    assert transitions(events) == ["pending", "firing"]
    clock.advance(10)
    feed(config, statuses, engine, clock, "api", up=True)
    assert engine.alerts == {} and transitions(events) == ["pending", "firing", "resolved"]


def test_pending_that_clears_is_cancelled_not_resolved(tmp_path: Path) -> None:
    config, statuses, engine, clock, events = make(tmp_path, rule("!up", "        for: 1m\n"))
    for up in (False, False, True, False):
        clock.advance(10)
        feed(config, statuses, engine, clock, "api", up=up)
    assert transitions(events) == ["pending", "cancelled", "pending"]
    # The `for` clock restarted with the second pending.
    assert next(iter(engine.alerts.values())).active_at == clock.time()


def test_for_zero_fires_at_once(tmp_path: Path) -> None:
    config, statuses, engine, clock, events = make(tmp_path, rule("!up"))
    feed(config, statuses, engine, clock, "api", up=False)
    assert transitions(events) == ["firing"]


def test_keep_firing_for_holds_through_flapping(tmp_path: Path) -> None:
    config, statuses, engine, clock, events = make(tmp_path, rule("!up", "        keep_firing_for: 30s\n"))
    feed(config, statuses, engine, clock, "api", up=False)
    for up in (True, False, True, True):  # recoveries shorter than keep_firing_for
        clock.advance(10)
        feed(config, statuses, engine, clock, "api", up=up)
    assert transitions(events) == ["firing"]
    clock.advance(15)  # 35 s since the condition was last true
    feed(config, statuses, engine, clock, "api", up=True)
    assert transitions(events) == ["firing", "resolved"]


def test_label_selector_makes_one_alert_per_check_with_contract_labels(tmp_path: Path) -> None:
    config, statuses, engine, clock, events = make(
        tmp_path, rule("!up", "        labels: {severity: critical, env: override}\n", check="{system: echo}"))
    for name in ("api", "worker", "other"):
        feed(config, statuses, engine, clock, name, up=False)
    labels = sorted((a.labels for a in engine.alerts.values()), key=lambda l: l["check"])
    assert labels == [
        {"alertname": "A", "check": "api", "env": "override", "severity": "critical", "system": "echo"},
        {"alertname": "A", "check": "worker", "env": "override", "severity": "critical", "system": "echo"},
    ]
    assert {a.fingerprint for a in engine.alerts.values()} == {fingerprint(l) for l in labels}


def test_default_severity_is_warning(tmp_path: Path) -> None:
    config, statuses, engine, clock, _ = make(tmp_path, rule("!up"))
    feed(config, statuses, engine, clock, "api", up=False)
    assert next(iter(engine.alerts.values())).labels["severity"] == "warning"


def test_window_rule_error_rate_over_five_minutes(tmp_path: Path) -> None:
    # The runbooks' "error rate > 5% for 5 minutes".
    config, statuses, engine, clock, events = make(tmp_path, rule('success_ratio("5m") < 0.95', "        for: 5m\n"))
    for i in range(60):  # 10 minutes at 10 s, 1 failure in 10: 90 % success
        clock.advance(10)
        feed(config, statuses, engine, clock, "api", up=i % 10 != 0)
    assert transitions(events) == ["pending", "firing"]
    alert = next(iter(engine.alerts.values()))
    assert alert.fired_at is not None and alert.fired_at - alert.active_at >= 300


def test_staleness_makes_silence_look_down(tmp_path: Path) -> None:
    config, statuses, engine, clock, events = make(tmp_path, rule("!up"))
    feed(config, statuses, engine, clock, "api", up=True)
    clock.advance(15)
    assert engine.sweep() == []  # one missed run is not yet stale
    clock.advance(60)
    assert transitions(engine.sweep()) == ["firing"]
    feed(config, statuses, engine, clock, "api", up=True)
    assert transitions(events) == ["firing", "resolved"]


def test_evaluation_errors_do_not_fire_and_are_counted(tmp_path: Path) -> None:
    config, statuses, engine, clock, events = make(tmp_path, rule("body.status == \"ok\""))
    feed(config, statuses, engine, clock, "api", up=True)
    feed(config, statuses, engine, clock, "api", up=True)
    assert engine.alerts == {} and engine.failures["A"] == 2


def test_reconfigure_resolves_alerts_of_removed_rules(tmp_path: Path) -> None:
    config, statuses, engine, clock, events = make(tmp_path, rule("!up"))
    feed(config, statuses, engine, clock, "api", up=False)
    engine.configure(config.checks, [])
    assert engine.alerts == {} and transitions(events) == ["firing", "resolved"]


@pytest.mark.parametrize(
    ("expr", "needle"),
    [
        ('avg_over_time("latency", "soon") > 1', "invalid duration"),
        ('avg_over_time("colour", "5m") > 1', "unknown field"),
        ('quantile_over_time(2, "latency", "5m") > 1', "quantile"),
        ("value * 2 > 100", "float * int"),
    ],
)
def test_bad_windows_fields_and_types_are_config_errors(tmp_path: Path, expr: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        make(tmp_path, rule(expr))
    assert needle in str(err.value) and "rules.yaml:6:" in str(err.value)


def history(samples: list[tuple[float, bool, float]]) -> History:
    h = History(1000)
    for at, up, value in samples:
        h.add(Result(up=up, value=value, latency=value / 10, at=at))
    return h


def test_window_functions() -> None:
    h = history([(float(t), t % 20 != 0, float(t)) for t in range(0, 301, 10)])
    w = WindowFunctions(h, now=300.0)
    assert w.avg_over_time("value", "1m") == pytest.approx(270.0)  # 240..300
    assert w.max_over_time("value", "5m") == 300.0 and w.min_over_time("value", "5m") == 0.0
    assert w.quantile_over_time(0.5, "value", "5m") == pytest.approx(150.0)
    assert w.success_ratio("1m") == pytest.approx(3 / 7)
    assert w.count_over_time("1m") == 7
    assert w.changes("up", "1m") == 6
    assert w.rate("value", "5m") == pytest.approx(1.0)
    with pytest.raises(NoData):
        WindowFunctions(h, now=10_000.0).avg_over_time("value", "5m")


def test_rate_handles_counter_resets() -> None:
    h = history([(0.0, True, 100.0), (10.0, True, 110.0), (20.0, True, 5.0), (30.0, True, 15.0)])
    assert WindowFunctions(h, now=30.0).rate("value", "1m") == pytest.approx((10 + 5 + 10) / 30)


def test_step_is_pure_and_keeps_active_at() -> None:
    fresh = AlertRecord("f", "A", "api", "pending", {}, {}, active_at=100.0)
    first = step(None, True, 100.0, 60, 0, fresh)
    assert first.transition is Transition.PENDING and first.alert is not None
    later = step(first.alert, True, 130.0, 60, 0, AlertRecord("f", "A", "api", "pending", {}, {}, active_at=130.0))
    assert later.alert is not None and later.alert.active_at == 100.0 and later.transition is None


def test_annotations_are_rendered_templates(tmp_path: Path) -> None:
    extra = ("        annotations:\n"
             "          summary: 'Disk {{ $labels.check }} is {{ $value }}% full'\n"
             "          runbook_url: 'https://runbooks.invalid/{{ $labels.alertname | toLower }}'\n")
    config, statuses, engine, clock, _ = make(tmp_path, rule("!up", extra))
    feed(config, statuses, engine, clock, "api", up=False, value=93.5)
    (alert,) = engine.alerts.values()
    assert alert.annotations == {"summary": "Disk api is 93.5% full", "runbook_url": "https://runbooks.invalid/a"}


def test_bad_annotation_template_is_a_config_error(tmp_path: Path) -> None:
    extra = "        annotations:\n          summary: '{{ $labels.check | nosuchfunc }}'\n"
    with pytest.raises(ConfigError) as err:
        make(tmp_path, rule("!up", extra))
    assert "rules.yaml:" in str(err.value) and "nosuchfunc" in str(err.value)


def test_a_check_that_never_reports_goes_stale(tmp_path: Path) -> None:
    config, statuses, engine, clock, events = make(tmp_path, rule("!up"))
    clock.advance(25)
    assert engine.sweep() == []
    clock.advance(10)  # past 2 intervals + timeout with no result at all
    fired = engine.sweep()
    assert transitions(fired) == ["firing"] and fired[0].alert.check == "api"
