"""One alert per series of a PromQL result, through the real rule engine on a fake clock.

The results are what the `metrics` kind returns (``query_result``), so the labels and
values are exactly a probe's."""

from __future__ import annotations

from pathlib import Path

from monitor.core.results import Result
from monitor.probes.metrics import query_result
from monitor.rules.alerts import Transition
from monitor.rules.engine import RuleEngine
from tests.rule_setup import engine_for

CHECKS = """\
checks:
  - name: queues
    kind: metrics
    url: http://127.0.0.1:9/metrics
    query: queue_depth
    interval: 15s
    labels: {team: jobs}
"""

RULES = """\
groups:
  - name: g
    rules:
      - alert: Backlog
        check: queues
        expr: value > 5
        labels: {severity: critical}
        annotations: {summary: '{{ $labels.queue }} has {{ $value }} waiting'}
      - alert: QueuesDown
        check: queues
        expr: '!up'
"""


def vector(at: float, **queues: float) -> Result:
    result = query_result([({"__name__": "queue_depth", "queue": q}, v) for q, v in queues.items()],
                          {"team": "jobs"}, 0.01, {})
    return Result(up=result.up, value=result.value, detail=result.detail, series=result.series, at=at)


def firing(engine: RuleEngine, alertname: str = "Backlog") -> dict[str, tuple[str, float | None]]:
    return {a.labels.get("queue", "-"): (a.state, a.value) for a in engine.alerts.values() if a.alertname == alertname}


def test_one_alert_per_series_with_its_labels_and_value(tmp_path: Path) -> None:
    config, _, pipeline, clock = engine_for(tmp_path, CHECKS, RULES)
    check = config.checks[0]
    events = pipeline.evaluate(check, vector(clock.time(), mail=3, billing=7, sms=12))
    assert firing(pipeline.engine) == {"billing": ("firing", 7.0), "sms": ("firing", 12.0)}
    alerts = {a.labels["queue"]: a for a in pipeline.alerts.values()}
    assert alerts["sms"].labels == {"alertname": "Backlog", "check": "queues", "severity": "critical",
                                    "team": "jobs", "queue": "sms"}
    assert alerts["sms"].annotations["summary"] == "sms has 12 waiting"
    assert alerts["sms"].fingerprint != alerts["billing"].fingerprint
    assert [e.transition for e in events] == [Transition.FIRING, Transition.FIRING]


def test_an_alert_whose_series_vanished_resolves(tmp_path: Path) -> None:
    config, _, pipeline, clock = engine_for(tmp_path, CHECKS, RULES)
    check = config.checks[0]
    pipeline.evaluate(check, vector(clock.time(), mail=3, billing=7, sms=12))
    clock.advance(15)
    events = pipeline.evaluate(check, vector(clock.time(), mail=9, billing=7))
    assert firing(pipeline.engine) == {"billing": ("firing", 7.0), "mail": ("firing", 9.0)}
    transitions = {(e.transition, e.alert.labels["queue"]) for e in events}
    assert transitions == {(Transition.RESOLVED, "sms"), (Transition.FIRING, "mail")}
    clock.advance(15)  # a value below the threshold resolves that series' alert only
    pipeline.evaluate(check, vector(clock.time(), mail=1, billing=7))
    assert firing(pipeline.engine) == {"billing": ("firing", 7.0)}


def test_a_failed_scrape_resolves_the_series_alerts_and_fires_the_checks_own(tmp_path: Path) -> None:
    config, _, pipeline, clock = engine_for(tmp_path, CHECKS, RULES)
    check = config.checks[0]
    pipeline.evaluate(check, vector(clock.time(), billing=7, sms=12))
    clock.advance(15)
    events = pipeline.evaluate(check, Result(up=False, error="server returned HTTP status 500", at=clock.time()))
    assert firing(pipeline.engine) == {}
    assert firing(pipeline.engine, "QueuesDown") == {"-": ("firing", None)}
    assert sorted(e.transition.value for e in events) == ["firing", "resolved", "resolved"]
    clock.advance(15)
    pipeline.evaluate(check, vector(clock.time(), billing=7))
    assert firing(pipeline.engine, "QueuesDown") == {}
    assert firing(pipeline.engine) == {"billing": ("firing", 7.0)}


def test_for_and_keep_firing_for_run_per_series(tmp_path: Path) -> None:
    rules = RULES.replace("expr: value > 5\n", "expr: value > 5\n        for: 30s\n        keep_firing_for: 20s\n")
    config, _, pipeline, clock = engine_for(tmp_path, CHECKS, rules)
    check = config.checks[0]
    pipeline.evaluate(check, vector(clock.time(), billing=7))
    clock.advance(15)
    pipeline.evaluate(check, vector(clock.time(), billing=7, sms=12))
    assert firing(pipeline.engine) == {"billing": ("pending", 7.0), "sms": ("pending", 12.0)}
    clock.advance(15)
    pipeline.evaluate(check, vector(clock.time(), billing=7, sms=12))
    assert firing(pipeline.engine) == {"billing": ("firing", 7.0), "sms": ("pending", 12.0)}
    clock.advance(15)  # billing's series is gone: kept firing for 20 s, then resolved
    pipeline.evaluate(check, vector(clock.time(), sms=12))
    assert firing(pipeline.engine)["billing"][0] == "firing"
    clock.advance(15)
    pipeline.evaluate(check, vector(clock.time(), sms=12))
    assert "billing" not in firing(pipeline.engine)
    assert firing(pipeline.engine)["sms"][0] == "firing"


def test_empty_result_holds_no_value_rule(tmp_path: Path) -> None:
    rules = RULES + "      - alert: Low\n        check: queues\n        expr: value < 1\n"
    config, _, pipeline, clock = engine_for(tmp_path, CHECKS, rules)
    check = config.checks[0]
    empty = vector(clock.time())
    assert empty.up is True and empty.value is None
    assert pipeline.evaluate(check, empty) == []
    assert pipeline.alerts == {} and pipeline.failures == {}
    # A result that is down still reads value as 0.0: `!up` style rules are unchanged.
    clock.advance(15)
    pipeline.evaluate(check, Result(up=False, error="x", at=clock.time()))
    assert {a.alertname for a in pipeline.alerts.values()} == {"QueuesDown", "Low"}


def test_series_alerts_survive_a_reload_and_a_restart(tmp_path: Path) -> None:
    config, statuses, pipeline, clock = engine_for(tmp_path, CHECKS, RULES)
    check = config.checks[0]
    pipeline.evaluate(check, vector(clock.time(), billing=7, sms=12))
    assert pipeline.configure(config.checks, config.rules) == []  # a reload: nothing resolves
    assert set(firing(pipeline.engine)) == {"billing", "sms"}
    # A restart: a new engine restores the records, then is configured.
    fresh = RuleEngine(statuses, clock=clock.time)
    fresh.restore(pipeline.alerts.values())
    assert fresh.configure(config.checks, config.rules).events == []
    clock.advance(15)
    events = fresh.evaluate("queues", vector(clock.time(), billing=7)).events
    assert [(e.transition, e.alert.labels["queue"]) for e in events] == [(Transition.RESOLVED, "sms")]
    # The rule's labels change: the old series alerts are not this rule's any more.
    changed = RULES.replace("severity: critical", "severity: warning")
    (tmp_path / "rules.yaml").write_text(changed)
    from monitor.config.loader import load_config
    reloaded = load_config(tmp_path / "monitor.yaml")
    resolved = fresh.configure(reloaded.checks, reloaded.rules).events
    assert [(e.transition, e.alert.labels["queue"]) for e in resolved] == [(Transition.RESOLVED, "billing")]


def test_series_label_colliding_with_a_rule_label_is_exported_prefixed(tmp_path: Path) -> None:
    config, _, pipeline, clock = engine_for(tmp_path, CHECKS, RULES)
    check = config.checks[0]
    result = query_result([({"queue": "a", "severity": "page"}, 9.0), ({"queue": "b", "severity": "page"}, 8.0)],
                          {"team": "jobs"}, 0.0, {})
    pipeline.evaluate(check, Result(up=True, detail=result.detail, series=result.series, at=clock.time()))
    labels = sorted((a.labels["queue"], a.labels["severity"], a.labels["exported_severity"])
                    for a in pipeline.alerts.values())
    assert labels == [("a", "critical", "page"), ("b", "critical", "page")]
