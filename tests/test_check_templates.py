"""Annotations that see the check: `$check.*`, `$value` as the compared value (as in
Prometheus), `$valueText` with its unit; units per kind; timed-out runs are no latency samples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.alerting.notifier import to_alert
from monitor.config.errors import ConfigError
from monitor.core.results import Outcome, Result
from monitor.core.units import UNITS, format_quantity
from monitor.history import History
from monitor.probes import PROBES, VALUE_UNITS, value_unit
from monitor.rules.compared import comparison_texts, unit_of
from monitor.rules.functions import WindowFunctions
from tests.rule_setup import engine_for

CHECKS = """checks:
  - {name: api, kind: http, url: "http://127.0.0.1:1/health", interval: 15s, timeout: 5s, labels: {system: s}}
  - {name: cert, kind: tls, address: "127.0.0.1:1", interval: 1m, timeout: 5s}
  - {name: jobs, kind: postgres, dsn: "postgresql://u@127.0.0.1:1/d", unit: seconds, interval: 30s, timeout: 5s}
"""


def rules(*items: tuple[str, str, str]) -> str:
    out = "groups:\n  - name: g\n    rules:\n"
    for alert, check, expr in items:
        out += (f"      - alert: {alert}\n        check: {check}\n        expr: {json.dumps(expr)}\n"
                "        annotations:\n"
                "          value: '{{ $value }}'\n          text: '{{ $valueText }}'\n"
                "          why: '{{ $check.error }}'\n          shown: '{{ $check.valueText }}'\n"
                "          up: '{{ $check.up }}'\n          status: '{{ $check.status }}'\n"
                "          unit: '{{ $check.unit }}'\n          outcome: '{{ $check.outcome }}'\n"
                "          latency: '{{ $check.latency | humanizeDuration }}'\n"
                "          kind: '{{ $check.kind }} {{ $check.name }}'\n"
                "          detail: '{{ $check.detail.body.status }} {{ $check.detail.missing }}'\n")
    return out


class World:
    def __init__(self, tmp_path: Path, rule_text: str) -> None:
        self.config, self.statuses, self.engine, self.clock = engine_for(tmp_path, CHECKS, rule_text)

    def feed(self, name: str, result: Result) -> None:
        result = Result(up=result.up, value=result.value, latency=result.latency, detail=result.detail,
                        error=result.error, outcome=result.outcome, at=self.clock.time())
        self.statuses.record(name, result)
        check = self.config.check(name)
        assert check is not None
        self.engine.evaluate(check, result)

    def annotations(self, alertname: str) -> dict[str, str]:
        return next(a.annotations for a in self.engine.alerts.values() if a.alertname == alertname)


def http_result(up: bool, status: int, latency: float, error: str | None = None) -> Result:
    return Result(up=up, value=float(status), latency=latency, error=error,
                  detail={"status": status, "body": {"status": "degraded" if not up else "healthy"}},
                  outcome=Outcome.SUCCESS if up else Outcome.FAILURE)


def test_value_is_the_compared_p95_not_the_http_status(tmp_path: Path) -> None:
    w = World(tmp_path, rules(("Slow", "api", 'quantile_over_time(0.95, "latency", "5m") > 2.0')))
    for latency in (3.0, 3.2, 3.4, 3.1):
        w.feed("api", http_result(True, 200, latency))
        w.clock.advance(15)
    got = w.annotations("Slow")
    p95 = WindowFunctions(w.statuses.get("api").history, w.clock.time()).quantile_over_time(  # type: ignore[union-attr]
        0.95, "latency", "5m")
    assert float(got["value"]) == pytest.approx(p95) and 3.3 < p95 < 3.4
    assert got["text"] == format_quantity(p95, "seconds") == f"{p95:.3g} s"
    assert got["shown"] == "HTTP 200"  # the check's own value, with the kind's unit
    assert got["up"] == "true" and got["status"] == "200" and got["unit"] == "status"
    assert got["kind"] == "http api" and got["latency"] == "3.1s" and got["outcome"] == "success"
    assert got["detail"] == "healthy <no value>" and got["why"] == ""
    (alert,) = w.engine.alerts.values()
    assert alert.value == pytest.approx(p95) and alert.unit == "seconds"


def test_a_rule_without_a_comparison_reports_the_check_value_and_error(tmp_path: Path) -> None:
    w = World(tmp_path, rules(("Down", "api", "!up")))
    w.feed("api", http_result(False, 503, 0.2, error="status 503 not in [200]"))
    got = w.annotations("Down")
    assert got["value"] == "503" and got["text"] == "HTTP 503"
    assert got["why"] == "status 503 not in [200]" and got["up"] == "false" and got["outcome"] == "failure"
    assert got["detail"] == "degraded <no value>"
    (record,) = w.engine.alerts.values()
    sent = to_alert(record, "http://monitor.example")
    assert (sent.error, sent.unit, sent.value) == ("status 503 not in [200]", "status", 503.0)


def test_first_comparison_that_held_and_constants_on_the_left(tmp_path: Path) -> None:
    w = World(tmp_path, rules(
        ("Expiring", "cert", "has(detail.not_after) && value < 14.0 && value >= 3.0"),
        ("Either", "api", "latency > 100.0 || value >= 500.0"),
        ("Reversed", "api", "0.5 < latency"),
    ))
    w.feed("cert", Result(up=True, value=12.0, detail={"not_after": "2030-01-01T00:00:00Z"}))
    assert w.annotations("Expiring")["text"] == "12 days"
    w.feed("api", http_result(False, 503, 0.75))
    assert w.annotations("Either")["value"] == "503"  # the left comparison did not hold
    assert w.annotations("Reversed")["value"] == "0.75" and w.annotations("Reversed")["text"] == "750 ms"


def test_a_check_unit_override_and_a_stale_check(tmp_path: Path) -> None:
    w = World(tmp_path, rules(("Old", "jobs", "value > 60.0"), ("Gone", "jobs", "!up")))
    w.feed("jobs", Result(up=True, value=5400.0))
    assert w.annotations("Old")["text"] == "1h 30m" and w.annotations("Old")["unit"] == "seconds"
    w.clock.advance(600)  # no result for ten intervals: the sweep reads the check as down
    w.engine.sweep()
    assert w.annotations("Gone")["why"].startswith("stale: no result for 600s")
    assert w.annotations("Gone")["up"] == "false"


def test_unknown_check_field_is_a_load_error(tmp_path: Path) -> None:
    bad = "groups:\n  - name: g\n    rules:\n      - alert: A\n        check: api\n        expr: '!up'\n" \
          "        annotations: {summary: '{{ $check.eror }}'}\n"
    with pytest.raises(ConfigError) as err:
        engine_for(tmp_path, CHECKS, bad)
    assert "$check.eror" in str(err.value) and "error" in str(err.value)


@pytest.mark.parametrize(("expr", "expected"), [
    ("!up", []),
    ("up && value > 500", [("value", ">", "500")]),
    ("up && (value > 0 || detail.x > 0)", [("value", ">", "0"), ("detail.x", ">", "0")]),
    ('body.msg == "a > b && c" && value != 3', [("body.msg", "==", '"a > b && c"'), ("value", "!=", "3")]),
    ("value > 1 ? true : false", []),
    ("!(value > 3)", []),
    ('size(type(body) == list ? body : body.jobs) > 0', [("size(type(body) == list ? body : body.jobs)", ">", "0")]),
])
def test_comparisons_are_found_in_the_text(expr: str, expected: list[tuple[str, str, str]]) -> None:
    assert comparison_texts(expr) == expected


@pytest.mark.parametrize(("side", "check_unit", "unit"), [
    ("latency", "status", "seconds"), ("age", "", "seconds"), ("value", "days", "days"),
    ('quantile_over_time(0.99, "latency", "5m")', "status", "seconds"),
    ('avg_over_time("value", "10m")', "bytes", "bytes"), ('avg_over_time("up", "10m")', "", "ratio"),
    ('success_ratio("5m")', "status", "ratio"), ("error_budget_remaining", "", "ratio"),
    ('count_over_time("5m")', "", "count"), ("status", "status", "status"),
    ("value * 100.0", "ratio", ""), ('rate("value", "5m")', "count", ""),
])
def test_unit_of_the_compared_side(side: str, check_unit: str, unit: str) -> None:
    assert unit_of(side, check_unit) == unit


def test_every_kind_has_a_unit() -> None:
    assert set(VALUE_UNITS) == set(PROBES)
    assert all(isinstance(u, str) and u in UNITS or callable(u) for u in VALUE_UNITS.values())


def test_redis_unit_depends_on_the_mode(tmp_path: Path) -> None:
    checks = """checks:
  - {name: q, kind: redis, queue: jobs}
  - {name: mem, kind: redis, info: used_memory}
  - {name: mem2, kind: redis, info: used_memory, unit: bytes}
"""
    config, *_ = engine_for(tmp_path, checks, "groups: []\n")
    assert [value_unit(c) for c in config.checks] == ["count", "", "bytes"]


# ---- timeouts are not latency samples ---------------------------------------------------------

def test_a_timed_out_run_is_no_latency_sample() -> None:
    history = History(16)
    for n, (outcome, latency) in enumerate([(Outcome.SUCCESS, 0.2), (Outcome.TIMEOUT, 5.0), (Outcome.FAILURE, 1.0),
                                            (Outcome.TIMEOUT, 5.0), (Outcome.SUCCESS, 0.4)]):
        history.add(Result(up=outcome is Outcome.SUCCESS, latency=latency, outcome=outcome, at=float(n)))
    functions = WindowFunctions(history, 10.0)
    assert functions.max_over_time("latency", "1m") == 1.0  # the failure's real latency counts
    assert functions.quantile_over_time(1.0, "latency", "1m") == 1.0
    assert functions.avg_over_time("latency", "1m") == pytest.approx((0.2 + 1.0 + 0.4) / 3)
    assert functions.count_over_time("1m") == 5 and functions.success_ratio("1m") == 0.4  # still runs


def test_a_timeout_outage_neither_fires_nor_lingers_in_a_latency_rule(tmp_path: Path) -> None:
    w = World(tmp_path, rules(("Slow", "api", 'quantile_over_time(0.95, "latency", "5m") > 2.0')))
    for _ in range(8):
        w.feed("api", http_result(True, 200, 0.1))
        w.clock.advance(15)
    for _ in range(20):  # five minutes of 5-second timeouts
        w.feed("api", Result(up=False, latency=5.0, error="timeout", outcome=Outcome.TIMEOUT))
        w.clock.advance(15)
        assert not w.engine.alerts
    for _ in range(20):  # recovered: fast again, and the timeouts still in the window do not count
        w.feed("api", http_result(True, 200, 0.1))
        w.clock.advance(15)
        assert not w.engine.alerts


