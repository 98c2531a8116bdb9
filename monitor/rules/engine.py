"""Evaluates rules when their check produces a result, and keeps every alert's state.

Results arrive from the scheduler; each rule watching that check is evaluated at once (no
separate evaluation tick adding delay). Evaluation is pure: it returns what happened, the
transitions (for the notifier) and the ``StateChange`` to persist (for the store's ordered
writer), and never does I/O itself. The daemon hands each on; persisting alert states, SLO
counting (``slo_counts.py``) and the staleness sweep (``staleness.py``) live elsewhere.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from monitor.check_status import CheckStatuses
from monitor.core.durations import format_duration
from monitor.core.expressions import ExpressionError
from monitor.core.labels import DEFAULT_SEVERITY, with_series_labels
from monitor.core.records import AlertRecord, StateChange
from monitor.core.results import Result
from monitor.core.units import format_quantity
from monitor.probes import value_unit
from monitor.probes.base import CheckBase
from monitor.rules.alerts import Step, Transition, fingerprint, step
from monitor.rules.compared import compared_value, unit_of
from monitor.rules.functions import NoData, Reads, lacks_value, rule_functions, variables
from monitor.rules.model import LoadedRule, Location, Rule
from monitor.rules.slo import burn_rate_alerts
from monitor.rules.slo_counts import SloCounts

log = structlog.get_logger("monitor.rules")


@dataclass(frozen=True)
class AlertEvent:
    """One transition, for whoever delivers notifications."""

    transition: Transition
    alert: AlertRecord
    at: float


@dataclass
class Evaluation:
    """What one evaluation did: transitions for the notifier, a change for the store."""

    events: list[AlertEvent] = field(default_factory=list)
    change: StateChange = field(default_factory=StateChange)

    def extend(self, other: Evaluation) -> None:
        self.events.extend(other.events)
        self.change.upsert.extend(other.change.upsert)
        self.change.delete.extend(other.change.delete)


@dataclass
class _Bound:
    """A rule applied to one check."""

    loaded: LoadedRule
    check: CheckBase
    labels: dict[str, str]
    fingerprint: str
    reads: Reads
    unit: str  # of the check's value


def stale_after(check: CheckBase) -> float:
    """How long without a result before a check counts as down: two missed runs."""
    return 2 * check.interval + check.timeout


class RuleEngine:
    def __init__(self, statuses: CheckStatuses, slos: SloCounts | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._statuses = statuses
        self._slos = slos if slos is not None else SloCounts(clock=clock)
        self._now = clock
        self._by_check: dict[str, list[_Bound]] = {}
        self._functions_needed: dict[str, set[str]] = {}  # per check: window/SLO functions its rules call
        self.alerts: dict[str, AlertRecord] = {}
        self.external_url = ""  # for `$externalURL` in annotations
        self.failures: Counter[str] = Counter()  # evaluation errors per alertname
        self._failing: set[str] = set()  # fingerprints whose last evaluation errored (log once)
        # A rule's per-series alerts (results with several series): its fingerprint -> theirs.
        self._series: dict[str, set[str]] = {}

    # --- configuration ---------------------------------------------------------------
    def configure(self, checks: list[CheckBase], rules: list[LoadedRule]) -> Evaluation:
        """Bind rules to checks; alerts whose rule or check is gone resolve now."""
        by_check: dict[str, list[_Bound]] = {}
        for check in checks:
            for loaded in [*rules, *slo_rules(check)]:
                if loaded.rule.selects(check.name, check.labels):
                    labels = alert_labels(loaded, check)
                    reads = Reads.of(loaded.rule.expression.program)
                    by_check.setdefault(check.name, []).append(
                        _Bound(loaded, check, labels, fingerprint(labels), reads, value_unit(check)))
        self._by_check = by_check
        self._functions_needed = {name: set().union(*(b.reads.functions for b in bound))
                                  for name, bound in by_check.items()}
        alive = {b.fingerprint for bound in by_check.values() for b in bound}
        self._series = _series_alerts(self.alerts, by_check, alive)
        alive.update(*self._series.values())
        out = Evaluation()
        now = self._now()
        for fp in [fp for fp in self.alerts if fp not in alive]:
            alert = self.alerts.pop(fp)
            out.change.delete.append(fp)
            if alert.state == "firing":
                out.events.append(self._logged(AlertEvent(Transition.RESOLVED, alert, now)))
        return out

    def restore(self, alerts: Iterable[AlertRecord]) -> None:
        """Take back the alert states a previous run persisted (before the first evaluation):
        a pending alert keeps its `for` clock, a firing one stays firing without firing again."""
        self.alerts.update((a.fingerprint, a) for a in alerts)

    def firing(self) -> list[AlertRecord]:
        return [a for a in self.alerts.values() if a.state == "firing"]

    # --- evaluation ------------------------------------------------------------------
    def evaluate(self, check: str, result: Result, now: float | None = None) -> Evaluation:
        """Evaluate every rule bound to ``check`` on ``result`` (its latest, or for the
        staleness sweep its last); ``now`` defaults to the clock."""
        bound = self._by_check.get(check)
        status = self._statuses.get(check)
        if not bound or status is None:
            return Evaluation()
        now = self._now() if now is None else now
        labels = {**status.check.labels, "check": check}
        tracker = self._slos.trackers.get(check)
        budget = tracker.error_budget_remaining(now) if tracker is not None else 1.0
        base = variables(result, labels, now, stale_after(status.check), budget)
        functions = rule_functions(self._functions_needed[check], status.history, now, tracker)
        out = Evaluation()
        for b in bound:
            if result.series or b.fingerprint in self._series:
                self._advance_series(b, now, result, base, functions, out)
                continue
            scope = b.reads.scope(base, functions)
            self._advance(b, now, result, base, scope, self._condition(b, scope), out)
        return out

    def _advance(self, b: _Bound, now: float, result: Result, base: dict[str, Any], scope: dict[str, Any],
                 condition: bool, out: Evaluation) -> None:
        """One alert (``b``'s fingerprint) through one evaluation."""
        current = self.alerts.get(b.fingerprint)
        if current is None and not condition:
            return  # the common case: nothing to do, nothing to allocate
        fresh = self._fresh(b, b.check.name, now, result, base, scope) if condition else current
        assert fresh is not None
        outcome: Step = step(current, condition, now, b.loaded.rule.for_, b.loaded.rule.keep_firing_for, fresh)
        if outcome.alert is not None:
            self.alerts[b.fingerprint] = outcome.alert
            if _worth_writing(current, outcome.alert, b.loaded.rule.keep_firing_for > 0):
                out.change.upsert.append(outcome.alert)
        elif current is not None:
            del self.alerts[b.fingerprint]
            out.change.delete.append(b.fingerprint)
        if outcome.transition is not None:
            alert = outcome.alert or current
            assert alert is not None
            out.events.append(self._logged(AlertEvent(outcome.transition, alert, now)))

    def _advance_series(self, b: _Bound, now: float, result: Result, base: dict[str, Any],
                        functions: dict[str, Callable[..., Any]], out: Evaluation) -> None:
        """A result of several series (the PromQL kinds): one alert per series, its labels
        added to the rule's, judged on that series' value. An alert whose series is gone
        from the result is judged false: it resolves (after `keep_firing_for`), as in
        Prometheus. A result without series is judged as one, under the rule's own labels."""
        seen: set[str] = set()
        if result.series:
            for series in result.series:
                labels = with_series_labels(b.labels, series.labels, reserved=())
                one = replace(b, labels=labels, fingerprint=fingerprint(labels))
                series_base = {**base, "value": series.value, "labels": {**base["labels"], **dict(series.labels)}}
                scope = b.reads.scope(series_base, functions)
                self._advance(one, now, replace(result, value=series.value), series_base, scope,
                              self._condition(one, scope), out)
                seen.add(one.fingerprint)
        else:
            scope = b.reads.scope(base, functions)
            self._advance(b, now, result, base, scope, self._condition(b, scope), out)
            seen.add(b.fingerprint)
        before = self._series.get(b.fingerprint, set())
        for fp in (before | {b.fingerprint}) - seen:
            current = self.alerts.get(fp)
            if current is not None:
                self._advance(replace(b, labels=current.labels, fingerprint=fp), now, result, base, {}, False, out)
        children = {fp for fp in before | seen if fp != b.fingerprint and fp in self.alerts}
        if children:
            self._series[b.fingerprint] = children
        else:
            self._series.pop(b.fingerprint, None)

    def _fresh(self, b: _Bound, check: str, now: float, result: Result, base: dict[str, Any],
               scope: dict[str, Any]) -> AlertRecord:
        """The alert as this (true) evaluation sees it: ``value`` is what the condition
        compared (its unit follows from what it read), else the check's value."""
        rule = b.loaded.rule
        compared = compared_value(rule.comparisons, scope)
        value, unit = (compared[0], unit_of(compared[1], b.unit)) if compared else (result.value, b.unit)
        fields = check_fields(b.check, result, base, b.unit)
        annotations = rule.render_annotations(b.labels, value, self.external_url, fields, format_quantity(value, unit))
        return AlertRecord(
            fingerprint=b.fingerprint, alertname=rule.alert, check=check, state="pending",
            labels=b.labels, annotations=annotations, active_at=now, value=value, unit=unit, error=base["error"],
        )

    def _condition(self, b: _Bound, scope: dict[str, object]) -> bool:
        if lacks_value(scope):
            return False
        try:
            verdict = b.loaded.rule.expression.evaluate(scope) is True
        except NoData:
            verdict = False
        except (ExpressionError, ValueError) as err:
            self.failures[b.loaded.rule.alert] += 1
            if b.fingerprint not in self._failing:
                self._failing.add(b.fingerprint)
                log.warning("rule_evaluation_failed", alert=b.loaded.rule.alert, check=b.check.name,
                            error=str(err), rule=str(b.loaded.where))
            return False
        self._failing.discard(b.fingerprint)
        return verdict

    @staticmethod
    def _logged(event: AlertEvent) -> AlertEvent:
        # One log event per state change. Firing is worth a warning; resolving is good news
        # (and the value the record carries is the last one that fired, so it is not repeated).
        if event.transition is Transition.FIRING:
            log.warning("alert_firing", alert=event.alert.alertname, check=event.alert.check, value=event.alert.value)
        elif event.transition is Transition.RESOLVED:
            log.info("alert_resolved", alert=event.alert.alertname, check=event.alert.check)
        return event


def _series_alerts(alerts: dict[str, AlertRecord], by_check: dict[str, list[_Bound]],
                   alive: set[str]) -> dict[str, set[str]]:
    """Which alerts are per-series alerts of a bound rule (its labels plus a series'), so a
    reload or a restart keeps them; any other alert that is not alive resolves."""
    out: dict[str, set[str]] = {}
    for fp, alert in alerts.items():
        if fp in alive:
            continue
        for b in by_check.get(alert.check, ()):
            if b.loaded.rule.alert == alert.alertname and b.labels.items() <= alert.labels.items():
                out.setdefault(b.fingerprint, set()).add(fp)
                break
    return out


def _worth_writing(before: AlertRecord | None, after: AlertRecord, keeps_firing: bool) -> bool:
    """Write state changes, not every evaluation: a firing alert is re-evaluated with each
    result. `last_true_at` is written only for rules with keep_firing_for, which read it."""
    if before is None or keeps_firing:
        return before != after
    return (before.state, before.labels, before.annotations, before.fired_at) != (
        after.state, after.labels, after.annotations, after.fired_at)


def check_fields(check: CheckBase, result: Result, base: dict[str, Any], unit: str) -> dict[str, Any]:
    """What ``$check.NAME`` reads in annotations (templates.CHECK_FIELDS): the latest result,
    with ``up`` and ``error`` as the rule saw them (a stale check reads as down)."""
    return {
        "name": check.name, "kind": check.kind, "up": base["up"], "value": result.value, "unit": unit,
        "valueText": format_quantity(result.value, unit), "latency": result.latency, "error": base["error"],
        "outcome": result.outcome.value, "status": base["status"], "detail": result.detail,
    }


def slo_rules(check: CheckBase) -> list[LoadedRule]:
    """The SRE workbook's burn-rate alerts for a check with `slo:` (unless turned off)."""
    if check.slo is None:
        return []
    objective = f"{check.slo.objective:g}"
    return [
        LoadedRule(
            group="slo",
            rule=Rule.model_validate({
                "alert": alert.name,
                "check": check.name,
                "expr": f'burn_rate("{format_duration(alert.long_window)}") > {alert.factor!r} && '
                        f'burn_rate("{format_duration(alert.short_window)}") > {alert.factor!r}',
                "labels": {**alert.labels, "slo": objective},
                "annotations": {
                    "summary": f"{check.name} is burning its {objective}% error budget {alert.factor:g}x too fast",
                    "description": f"Burn rate above {alert.factor:g} over both {format_duration(alert.long_window)} "
                                   f"and {format_duration(alert.short_window)}.",
                },
            }),
            where=Location("<slo>", 0),
        )
        for alert in burn_rate_alerts(check.slo)
    ]


def alert_labels(loaded: LoadedRule, check: CheckBase) -> dict[str, str]:
    """The check's labels, the rule's labels (which win), alertname, check, severity."""
    labels = {**check.labels, **loaded.rule.labels, "alertname": loaded.rule.alert, "check": check.name}
    labels.setdefault("severity", DEFAULT_SEVERITY)
    return labels
