"""The hand-rolled per-check exposition must parse as both text formats, escaping included."""

from __future__ import annotations

import math

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from monitor.check_status import CheckStatuses
from monitor.http.metrics import DaemonMetrics
from monitor.probes.disk import DiskCheck
from monitor.core.results import Outcome, Result
from monitor.rules.engine import RuleEngine
from monitor.rules.slo_counts import SloCounts


def statuses() -> CheckStatuses:
    odd = DiskCheck.model_validate({"name": "odd", "kind": "disk", "interval": 10, "timeout": 5,
                                    "labels": {"team": 'a "quoted"\\ back\nslash'}})
    plain = DiskCheck.model_validate({"name": "plain", "kind": "disk", "interval": 10, "timeout": 5})
    never = DiskCheck.model_validate({"name": "never", "kind": "disk", "interval": 10, "timeout": 5})
    result = CheckStatuses()
    result.configure([odd, plain, never])
    result.record("odd", Result(up=False, value=math.inf, latency=0.5, outcome=Outcome.FAILURE))
    result.record("plain", Result(up=True, value=None, latency=1e-7))
    return result


def metrics() -> DaemonMetrics:
    checks = statuses()
    slos = SloCounts()
    return DaemonMetrics(checks, RuleEngine(checks, slos), slos)


def test_text_format_round_trips() -> None:
    body, content_type = metrics().render("")
    assert content_type.startswith("text/plain")
    families = {f.name: f for f in parse_text(body.decode())}
    up = {s.labels["check"]: s for s in families["monitor_check_up"].samples}
    assert up["odd"].labels["team"] == 'a "quoted"\\ back\nslash' and up["odd"].value == 0.0
    assert "never" not in up  # no result yet: no gauge, rather than a misleading 0
    values = {s.labels["check"]: s.value for s in families["monitor_check_value"].samples}
    assert values == {"odd": math.inf}  # `plain` has no value
    runs = {(s.labels["check"], s.labels["result"]): s.value for s in families["monitor_check_runs"].samples}
    assert runs[("odd", "failure")] == 1.0 and runs[("never", "success")] == 0.0
    assert "monitor_scheduler_lag_seconds_created" not in body.decode()


def test_openmetrics_format_round_trips() -> None:
    body, content_type = metrics().render("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    text = body.decode()
    assert text.endswith("# EOF\n") and text.count("# EOF") == 1
    families = {f.name: f for f in parse_openmetrics(text)}
    assert families["monitor_check_runs"].type == "counter"
    assert families["monitor_check_latency_seconds"].samples[1].value == 1e-7
