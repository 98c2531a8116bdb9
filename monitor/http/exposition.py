"""Fast text exposition of the per-check series.

prometheus_client renders each sample through several Python calls; at 10,000 checks
(80,000 series) that measured 1.8-5 s of CPU per scrape, and because rendering holds the
GIL, a worker thread does not keep it from stalling probes. Here each check's label text
is built once per config and a scrape is string joins: see bench/RESULTS.md for the cost.
"""

from __future__ import annotations

import math

from monitor.check_status import CheckStatus
from monitor.core.labels import escape_label_value, label_text
from monitor.core.results import Outcome
from monitor.rules.functions import NoData
from monitor.rules.slo import SloTracker
from monitor.core.records import AlertRecord

_OUTCOMES = tuple(Outcome)


def _number(value: float) -> str:
    if math.isfinite(value):
        return repr(float(value))
    return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")


def _family(out: list[str], name: str, kind: str, help_text: str, openmetrics: bool) -> None:
    # OpenMetrics names a counter family without `_total`; the classic format with it.
    family = name.removesuffix("_total") if openmetrics and kind == "counter" else name
    out.append(f"# HELP {family} {help_text}\n# TYPE {family} {kind}\n")


def render_checks(statuses: list[CheckStatus], openmetrics: bool = False) -> str:
    out: list[str] = []
    _family(out, "monitor_check_up", "gauge", "1 if the check's last run succeeded, else 0.", openmetrics)
    out.extend(f"monitor_check_up{{{s.label_text}}} {'1.0' if s.last.up else '0.0'}\n" for s in statuses if s.last is not None)
    _family(out, "monitor_check_value", "gauge", "The value of the check's last run (meaning depends on the kind).", openmetrics)
    for s in statuses:
        last = s.last
        if last is None:
            continue
        if last.series:  # one per series of a PromQL result, its labels added (at most max_series)
            out.extend(f"monitor_check_value{{{s.label_text},{label_text(dict(v.labels))}}} {_number(v.value)}\n"
                       for v in last.series)
        elif last.value is not None:
            out.append(f"monitor_check_value{{{s.label_text}}} {_number(last.value)}\n")
    _family(out, "monitor_check_latency_seconds", "gauge", "Duration of the check's last run.", openmetrics)
    out.extend(
        f"monitor_check_latency_seconds{{{s.label_text}}} {_number(s.last.latency)}\n"
        for s in statuses if s.last is not None
    )
    _family(out, "monitor_check_runs_total", "counter", "Check runs by result.", openmetrics)
    for s in statuses:
        counts = dict(s.runs)  # one C-level copy: safe against updates from the loop thread
        out.extend(
            f'monitor_check_runs_total{{{s.label_text},result="{o.value}"}} {counts.get(o, 0)}.0\n' for o in _OUTCOMES
        )
    _family(out, "monitor_check_skipped_runs_total", "counter",
            "Runs skipped because the previous run was still in progress.", openmetrics)
    out.extend(f"monitor_check_skipped_runs_total{{{s.label_text}}} {s.skipped}.0\n" for s in statuses)
    return "".join(out)


def render_alerts(alerts: list[AlertRecord], failures: dict[str, int], openmetrics: bool = False) -> str:
    """`monitor_alerts` is Prometheus' ALERTS: 1 per pending or firing alert, with its labels."""
    out: list[str] = []
    _family(out, "monitor_alerts", "gauge", "1 for each pending or firing alert.", openmetrics)
    out.extend(
        f'monitor_alerts{{{label_text(a.labels)},alertstate="{a.state}"}} 1.0\n' for a in alerts
    )
    _family(out, "monitor_rule_evaluation_failures_total", "counter",
            "Rule evaluations that failed (a missing key, a type error), by alert name.", openmetrics)
    out.extend(
        f'monitor_rule_evaluation_failures_total{{alertname="{escape_label_value(name)}"}} {count}.0\n'
        for name, count in sorted(failures.items())
    )
    return "".join(out)


# Burn rates exported for dashboards: the workbook's windows for a 30-day SLO.
SLO_EXPORT_WINDOWS = (("5m", 300.0), ("30m", 1800.0), ("1h", 3600.0), ("6h", 21600.0), ("1d", 86400.0), ("3d", 259200.0))


def render_slos(trackers: dict[str, SloTracker], now: float, openmetrics: bool = False) -> str:
    out: list[str] = []
    rows = sorted(trackers.items())
    _family(out, "monitor_slo_objective_ratio", "gauge", "The check's SLO objective as a ratio.", openmetrics)
    out.extend(f'monitor_slo_objective_ratio{{check="{escape_label_value(name)}"}} {_number(t.objective_ratio)}\n'
               for name, t in rows)
    _family(out, "monitor_slo_error_budget_remaining_ratio", "gauge",
            "Share of the error budget left over the SLO window (negative when overspent).", openmetrics)
    out.extend(f'monitor_slo_error_budget_remaining_ratio{{check="{escape_label_value(name)}"}} '
               f"{_number(t.error_budget_remaining(now))}\n" for name, t in rows)
    _family(out, "monitor_slo_burn_rate", "gauge", "Error rate over the window divided by the budgeted rate.", openmetrics)
    for name, tracker in rows:
        for label, seconds in SLO_EXPORT_WINDOWS:
            if seconds > tracker.config.window:
                continue
            try:
                rate = tracker.burn_rate(seconds, now)
            except NoData:
                continue  # no traffic in the window: no sample, rather than a misleading 0
            out.append(f'monitor_slo_burn_rate{{check="{escape_label_value(name)}",window="{label}"}} {_number(rate)}\n')
    return "".join(out)
