"""Evaluates rules when their check produces a result, and keeps every alert's state.

Results arrive from the scheduler; each rule watching that check is evaluated at once
(no separate evaluation tick adding delay). What changed is handed to the store in order,
one transaction per evaluation, so a restart resumes exactly where the last commit left off.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from monitor.check_status import CheckStatus, CheckStatuses
from monitor.core.durations import format_duration
from monitor.core.expressions import ExpressionError
from monitor.probes import CheckBase
from monitor.core.labels import DEFAULT_SEVERITY
from monitor.core.results import Result
from monitor.rules.alerts import Step, Transition, fingerprint, step
from monitor.rules.functions import SLO_FUNCTIONS, WINDOW_FUNCTIONS, NoData, SloFunctions, WindowFunctions, variables
from monitor.rules.model import RULE_VARIABLES, LoadedRule, Location, Rule
from monitor.rules.slo import SloTracker, burn_rate_alerts
from monitor.core.records import AlertRecord, StateChange
from monitor.store.base import Store
from monitor.store.writer import StateWriter

log = structlog.get_logger("monitor.rules")
PRUNE_EVERY = 3600.0


@dataclass(frozen=True)
class AlertEvent:
    """One transition, for whoever delivers notifications."""

    transition: Transition
    alert: AlertRecord
    at: float


@dataclass
class _Bound:
    """A rule applied to one check."""

    loaded: LoadedRule
    check: CheckBase
    labels: dict[str, str]
    fingerprint: str
    window_functions: set[str] = field(default_factory=set)
    # Only the variables the expression reads are handed to CEL: converting `body` and
    # `detail` on every evaluation was most of the per-rule cost (bench/rules.py).
    variables: tuple[str, ...] = ()


def stale_after(check: CheckBase) -> float:
    """How long without a result before a check counts as down: two missed runs."""
    return 2 * check.interval + check.timeout


class RuleEngine:
    def __init__(self, statuses: CheckStatuses, store: Store | None = None, clock: Callable[[], float] | None = None) -> None:
        self._statuses = statuses
        self._store = store
        self._now = clock or time.time
        self._by_check: dict[str, list[_Bound]] = {}
        self._functions_needed: dict[str, set[str]] = {}  # per check: window/SLO functions its rules call
        self.alerts: dict[str, AlertRecord] = {}
        self.trackers: dict[str, SloTracker] = {}  # per check with `slo:`
        self.external_url = ""  # for `$externalURL` in annotations
        self._pruned_at = 0.0
        self._started_at = self._now()
        self.failures: Counter[str] = Counter()  # evaluation errors per alertname
        self._failing: set[str] = set()  # fingerprints whose last evaluation errored (log once)
        self._listeners: list[Callable[[AlertEvent], None]] = []
        self._writer: StateWriter | None = None
        self._owns_writer = False

    def on_event(self, listener: Callable[[AlertEvent], None]) -> None:
        self._listeners.append(listener)

    # --- configuration ---------------------------------------------------------------
    def configure(self, checks: list[CheckBase], rules: list[LoadedRule]) -> None:
        """Bind rules to checks; alerts whose rule or check is gone resolve now."""
        by_check: dict[str, list[_Bound]] = {}
        trackers: dict[str, SloTracker] = {}
        for check in checks:
            if check.slo is not None:
                old = self.trackers.get(check.name)
                trackers[check.name] = old if old is not None and old.config == check.slo else SloTracker(check.slo)
            for loaded in [*rules, *slo_rules(check)]:
                if loaded.rule.selects(check.name, check.labels):
                    labels = alert_labels(loaded, check)
                    program = loaded.rule.expression.program
                    used = set(program.functions()) & set(WINDOW_FUNCTIONS + SLO_FUNCTIONS)
                    names = tuple(sorted(set(program.variables()) & set(RULE_VARIABLES)))
                    by_check.setdefault(check.name, []).append(
                        _Bound(loaded, check, labels, fingerprint(labels), used, names))
        self._by_check = by_check
        self._functions_needed = {name: set().union(*(b.window_functions for b in bound))
                                  for name, bound in by_check.items()}
        self.trackers = trackers
        alive = {b.fingerprint for bound in by_check.values() for b in bound}
        gone = [fp for fp in self.alerts if fp not in alive]
        if gone:
            now = self._now()
            change = StateChange(delete=gone)
            for fp in gone:
                alert = self.alerts.pop(fp)
                if alert.state == "firing":
                    self._emit(AlertEvent(Transition.RESOLVED, alert, now))
            self._persist(change)

    def attach(self, store: Store, writer: StateWriter | None = None) -> None:
        """Use ``store``, committing through ``writer`` (shared with the notifier, so their
        changes land in the order they happened); without one the engine runs its own."""
        self._store = store
        self._writer = writer

    async def start(self) -> None:
        """Load persisted alerts (and start a writer of our own if none was attached)."""
        if self._store is not None:
            for alert in await self._store.load_alerts():
                self.alerts[alert.fingerprint] = alert
            if self._writer is None:
                self._writer, self._owns_writer = StateWriter(self._store), True
                self._writer.start()

    async def load_slo_counts(self) -> None:
        if self._store is None:
            return
        now = self._now()
        for name, tracker in self.trackers.items():
            since = int(now // 60) - tracker.window_minutes
            tracker.load(await self._store.load_counts(name, since))

    async def flush_slo_counts(self) -> None:
        """Persist completed minutes; a failed write gives them back for the next flush."""
        if self._store is None:
            return
        now = self._now()
        if now - self._pruned_at > PRUNE_EVERY:
            # Counts older than the longest SLO window are never read again (nor are those of
            # checks that lost their `slo:`): the table stays as small as the windows need.
            self._pruned_at = now
            longest = max((t.window_minutes for t in self.trackers.values()), default=0)
            try:
                await self._store.prune_counts(int(now // 60) - longest - 1)
            except Exception as err:
                log.error("slo_counts_prune_failed", error=str(err))
        for name, tracker in list(self.trackers.items()):
            counts = tracker.pending_flush(now)
            if not counts:
                continue
            try:
                await self._store.add_counts(name, counts)
            except Exception as err:
                tracker.requeue(counts)
                log.error("slo_counts_write_failed", check=name, error=str(err))

    async def stop(self) -> None:
        """Write everything queued (when the writer is ours), then stop."""
        if self._writer is not None and self._owns_writer:
            await self._writer.stop()
        await self.flush_slo_counts()

    def firing(self) -> list[AlertRecord]:
        return [a for a in self.alerts.values() if a.state == "firing"]

    # --- evaluation ------------------------------------------------------------------
    def evaluate(self, check: CheckBase, result: Result) -> list[AlertEvent]:
        status = self._statuses.get(check.name)
        if status is None:
            return []
        tracker = self.trackers.get(check.name)
        if tracker is not None:
            tracker.record(result.at, result.up)
        return self._evaluate_status(status, self._now(), result)

    def sweep(self) -> list[AlertEvent]:
        """Re-evaluate checks whose results stopped coming, so staleness is seen."""
        now = self._now()
        events: list[AlertEvent] = []
        for status in self._statuses.all():
            last = status.last
            if last is None:
                # Never produced a result (its runs hang past every deadline): judge it as a
                # failed result taken at start, so it goes stale like any other silence.
                last = Result(up=False, error="no result since start", at=self._started_at)
            if now - last.at > stale_after(status.check):
                events.extend(self._evaluate_status(status, now, last))
        return events

    def _evaluate_status(self, status: CheckStatus, now: float, result: Result) -> list[AlertEvent]:
        bound = self._by_check.get(status.check.name)
        if not bound:
            return []
        labels = {**status.check.labels, "check": status.check.name}
        tracker = self.trackers.get(status.check.name)
        budget = tracker.error_budget_remaining(now) if tracker is not None else 1.0
        base = variables(result, labels, now, stale_after(status.check), budget)
        needed = self._functions_needed[status.check.name]
        functions = WindowFunctions(status.history, now).bind(needed - set(SLO_FUNCTIONS))
        if tracker is not None and "burn_rate" in needed:
            functions["burn_rate"] = SloFunctions(tracker, now).burn_rate
        change = StateChange()
        events: list[AlertEvent] = []
        for b in bound:
            condition = self._condition(b, base, functions)
            current = self.alerts.get(b.fingerprint)
            if current is None and not condition:
                continue  # the common case: nothing to do, nothing to allocate
            fresh = self._fresh(b, status.check.name, now, result) if condition else current
            assert fresh is not None
            outcome: Step = step(current, condition, now, b.loaded.rule.for_, b.loaded.rule.keep_firing_for, fresh)
            if outcome.alert is not None:
                self.alerts[b.fingerprint] = outcome.alert
                if _worth_writing(current, outcome.alert, b.loaded.rule.keep_firing_for > 0):
                    change.upsert.append(outcome.alert)
            elif current is not None:
                del self.alerts[b.fingerprint]
                change.delete.append(b.fingerprint)
            if outcome.transition is not None:
                event = AlertEvent(outcome.transition, outcome.alert or current, now)  # type: ignore[arg-type]
                events.append(event)
                self._emit(event)
        if change.upsert or change.delete:
            self._persist(change)
        return events

    def _fresh(self, b: _Bound, check: str, now: float, result: Result) -> AlertRecord:
        return AlertRecord(
            fingerprint=b.fingerprint, alertname=b.loaded.rule.alert, check=check, state="pending",
            labels=b.labels, annotations=b.loaded.rule.render_annotations(b.labels, result.value, self.external_url),
            active_at=now, value=result.value,
        )

    def _condition(self, b: _Bound, base: dict[str, object], functions: dict[str, Callable[..., Any]]) -> bool:
        scope = {name: base[name] for name in b.variables}
        for name in b.window_functions:
            scope[name] = functions[name]
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

    # --- side effects ----------------------------------------------------------------
    def _emit(self, event: AlertEvent) -> None:
        # Firing is worth a warning in the log; resolving is good news (and the value the
        # record carries is the last one that fired, so it is not repeated here).
        if event.transition is Transition.FIRING:
            log.warning("alert_firing", alert=event.alert.alertname, check=event.alert.check, value=event.alert.value)
        elif event.transition is Transition.RESOLVED:
            log.info("alert_resolved", alert=event.alert.alertname, check=event.alert.check)
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # a broken listener must not stop evaluation
                log.exception("alert_listener_failed")

    def _persist(self, change: StateChange) -> None:
        if self._writer is not None:
            self._writer.submit(change)


def _worth_writing(before: AlertRecord | None, after: AlertRecord, keeps_firing: bool) -> bool:
    """Write state changes, not every evaluation: a firing alert is re-evaluated with each
    result. `last_true_at` is written only for rules with keep_firing_for, which read it."""
    if before is None or keeps_firing:
        return before != after
    return (before.state, before.labels, before.annotations, before.fired_at) != (
        after.state, after.labels, after.annotations, after.fired_at)


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
    """The check's labels, the rule's labels (which win), alertname, check, severity (docs/configuration.md)."""
    labels = {**check.labels, **loaded.rule.labels, "alertname": loaded.rule.alert, "check": check.name}
    labels.setdefault("severity", DEFAULT_SEVERITY)
    return labels
