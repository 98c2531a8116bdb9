"""SLOs inside the engine: budget variables, built-in burn-rate alerts, metrics, persistence."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.check_status import CheckStatuses
from monitor.core.clock import FakeClock
from monitor.config.errors import ConfigError
from monitor.config.loader import Config, load_config
from monitor.http.exposition import render_slos
from monitor.core.results import Outcome, Result
from monitor.core.records import MinuteCount
from monitor.store.sqlite import SqliteStore
from tests.rule_setup import RulePipeline, engine_for

CHECKS = """checks:
  - name: billing
    kind: heartbeat
    max_age: 1h
    interval: 1m
    labels: {system: echopilot}
    slo: {objective: 99, window: 30d}
  - {name: plain, kind: heartbeat, max_age: 1h, interval: 1m}
"""
BUDGET_RULES = """groups:
  - name: budget
    rules:
      - alert: ErrorBudgetLow
        check: billing
        expr: error_budget_remaining < 0.25
        labels: {severity: warning}
      - alert: ErrorBudgetCritical
        check: billing
        expr: error_budget_remaining < 0.10
        labels: {severity: critical}
"""


def make(tmp_path: Path, rules: str = BUDGET_RULES, store: SqliteStore | None = None,
         clock: FakeClock | None = None) -> tuple[Config, CheckStatuses, RulePipeline, FakeClock]:
    return engine_for(tmp_path, CHECKS, rules, store, clock)


def feed(config: Config, statuses: CheckStatuses, engine: RulePipeline, clock: FakeClock, up: bool) -> None:
    result = Result(up=up, value=1.0, at=clock.time(), outcome=Outcome.SUCCESS if up else Outcome.FAILURE)
    statuses.record("billing", result)
    check = config.check("billing")
    assert check is not None
    engine.evaluate(check, result)


def firing(engine: RulePipeline) -> set[str]:
    return {a.alertname for a in engine.alerts.values() if a.state == "firing"}


def test_budget_rules_follow_the_runbook_thresholds(tmp_path: Path) -> None:
    config, statuses, engine, clock = make(tmp_path)
    for i in range(1000):  # 1 % errors exactly: the whole 99 % budget, spread out
        clock.advance(60)
        feed(config, statuses, engine, clock, up=i % 100 != 0 or i < 500)
    budget = engine.trackers["billing"].error_budget_remaining(clock.time())
    assert budget == pytest.approx(1 - 5 / 10.0, abs=0.01)  # 5 bad of 1000, 10 allowed
    assert firing(engine) == set()
    for _ in range(3):
        clock.advance(60)
        feed(config, statuses, engine, clock, up=False)
    assert "ErrorBudgetLow" in firing(engine) and "ErrorBudgetCritical" not in firing(engine)
    for _ in range(2):
        clock.advance(60)
        feed(config, statuses, engine, clock, up=False)
    assert {"ErrorBudgetLow", "ErrorBudgetCritical"} <= firing(engine)


def test_fast_burn_pages_and_slow_burn_only_tickets(tmp_path: Path) -> None:
    config, statuses, engine, clock = make(tmp_path, rules="groups: []\n")
    for _ in range(24 * 60):  # a healthy day
        clock.advance(60)
        feed(config, statuses, engine, clock, up=True)
    assert firing(engine) == set()
    for _ in range(60):  # a full hour of failures: burn rate 100 over 1h and 5m
        clock.advance(60)
        feed(config, statuses, engine, clock, up=False)
    pages = {a.alertname: a for a in engine.alerts.values() if a.state == "firing"}
    assert "SLOBurnRateFast" in pages
    fast = pages["SLOBurnRateFast"]
    assert fast.labels["severity"] == "critical" and fast.labels["slo"] == "99"
    assert fast.labels["long_window"] == "1h" and fast.labels["short_window"] == "5m"
    for _ in range(10):  # recovered: the 5 m window clears the page within minutes
        clock.advance(60)
        feed(config, statuses, engine, clock, up=True)
    assert "SLOBurnRateFast" not in firing(engine)


def test_slo_names_on_a_check_without_slo_are_config_errors(tmp_path: Path) -> None:
    rules = "groups:\n  - name: g\n    rules:\n      - alert: X\n        check: plain\n        expr: 'burn_rate(\"1h\") > 2.0'\n"
    with pytest.raises(ConfigError, match="reads the SLO of checks without `slo:`: plain"):
        make(tmp_path, rules=rules)


def test_slo_metrics(tmp_path: Path) -> None:
    config, statuses, engine, clock = make(tmp_path)
    for i in range(120):
        clock.advance(60)
        feed(config, statuses, engine, clock, up=i % 4 != 0)
    text = render_slos(engine.trackers, clock.time())
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["monitor_slo_objective_ratio"].samples[0].value == pytest.approx(0.99)
    rates = {s.labels["window"]: s.value for s in families["monitor_slo_burn_rate"].samples}
    assert rates["1h"] == pytest.approx(25.0, rel=0.05)  # 25 % errors against a 1 % budget
    assert "3d" in rates and families["monitor_slo_error_budget_remaining_ratio"].samples[0].value < 0


async def test_counts_persist_and_reload(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "state.db"))
    await store.open()
    config, statuses, engine, clock = make(tmp_path, store=store)
    for i in range(30):
        clock.advance(60)
        feed(config, statuses, engine, clock, up=i % 3 != 0)
    await engine.flush_slo_counts()
    before = engine.trackers["billing"].burn_rate(3600, clock.time())
    await store.close()

    reopened = SqliteStore(str(tmp_path / "state.db"))
    await reopened.open()
    _, _, fresh, _ = make(tmp_path, store=reopened, clock=clock)
    await fresh.load_slo_counts()
    # Everything but the still-open minute came back.
    assert fresh.trackers["billing"].burn_rate(3600, clock.time()) == pytest.approx(before, rel=0.1)
    await reopened.close()


async def test_old_counts_are_pruned(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "state.db"))
    await store.open()
    await store.add_counts("gone", [MinuteCount(minute=1, good=1, total=1)])  # a check long removed
    config, statuses, engine, clock = make(tmp_path, store=store)
    clock.advance(60)
    feed(config, statuses, engine, clock, up=True)
    clock.advance(60)
    await engine.flush_slo_counts()
    assert await store.load_counts("gone", 0) == []
    assert [c.total for c in await store.load_counts("billing", 0)] == [1]
    await store.close()
