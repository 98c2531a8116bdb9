"""The rule stages over checks and rules written to a temp dir, on a fake clock, wired as
the daemon wires them (monitor/daemon.py): a result goes to the SLO counts and the engine;
every evaluation's events are collected in order."""

from __future__ import annotations

from pathlib import Path

from monitor.check_status import CheckStatuses
from monitor.config.loader import Config, load_config
from monitor.core.clock import FakeClock
from monitor.core.records import AlertRecord
from monitor.core.results import Result
from monitor.probes.base import CheckBase
from monitor.rules.engine import AlertEvent, Evaluation, RuleEngine
from monitor.rules.model import LoadedRule
from monitor.rules.slo import SloTracker
from monitor.rules.slo_counts import SloCounts
from monitor.rules.staleness import StalenessSweep
from monitor.store.base import CountStore


class RulePipeline:
    def __init__(self, statuses: CheckStatuses, clock: FakeClock, store: CountStore | None = None) -> None:
        self.slos = SloCounts(store, clock=clock.time)
        self.engine = RuleEngine(statuses, self.slos, clock=clock.time)
        self.staleness = StalenessSweep(statuses, self.engine, clock=clock.time)
        self.events: list[AlertEvent] = []
        self.changes: list[Evaluation] = []

    def configure(self, checks: list[CheckBase], rules: list[LoadedRule]) -> list[AlertEvent]:
        self.slos.configure(checks)
        return self._take(self.engine.configure(checks, rules))

    def evaluate(self, check: CheckBase, result: Result) -> list[AlertEvent]:
        self.slos.record(check.name, result)
        return self._take(self.engine.evaluate(check.name, result))

    def sweep(self) -> list[AlertEvent]:
        return self._take(self.staleness.sweep())

    def _take(self, evaluation: Evaluation) -> list[AlertEvent]:
        self.events.extend(evaluation.events)
        self.changes.append(evaluation)
        return evaluation.events

    @property
    def alerts(self) -> dict[str, AlertRecord]:
        return self.engine.alerts

    @property
    def failures(self) -> dict[str, int]:
        return self.engine.failures

    @property
    def trackers(self) -> dict[str, SloTracker]:
        return self.slos.trackers

    async def flush_slo_counts(self) -> None:
        await self.slos.flush()

    async def load_slo_counts(self) -> None:
        await self.slos.load()


def engine_for(tmp_path: Path, checks: str, rules: str, store: CountStore | None = None,
               clock: FakeClock | None = None) -> tuple[Config, CheckStatuses, RulePipeline, FakeClock]:
    (tmp_path / "checks.yaml").write_text(checks)
    (tmp_path / "rules.yaml").write_text(rules)
    (tmp_path / "monitor.yaml").write_text("check_files: [checks.yaml]\nrule_files: [rules.yaml]\n")
    config = load_config(tmp_path / "monitor.yaml")
    statuses = CheckStatuses()
    statuses.configure(config.checks)
    clock = clock or FakeClock(1_700_000_000.0)
    pipeline = RulePipeline(statuses, clock, store)
    pipeline.configure(config.checks, config.rules)
    return config, statuses, pipeline, clock
