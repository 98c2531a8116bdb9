"""A rule engine over checks and rules written to a temp dir, on a fake clock."""

from __future__ import annotations

from pathlib import Path

from monitor.check_status import CheckStatuses
from monitor.core.clock import FakeClock
from monitor.config.loader import Config, load_config
from monitor.rules.engine import RuleEngine
from monitor.store.base import Store


def engine_for(tmp_path: Path, checks: str, rules: str, store: Store | None = None,
               clock: FakeClock | None = None) -> tuple[Config, CheckStatuses, RuleEngine, FakeClock]:
    (tmp_path / "checks.yaml").write_text(checks)
    (tmp_path / "rules.yaml").write_text(rules)
    (tmp_path / "monitor.yaml").write_text("check_files: [checks.yaml]\nrule_files: [rules.yaml]\n")
    config = load_config(tmp_path / "monitor.yaml")
    statuses = CheckStatuses()
    statuses.configure(config.checks)
    clock = clock or FakeClock(1_700_000_000.0)
    engine = RuleEngine(statuses, store=store, clock=clock.time)
    engine.configure(config.checks, config.rules)
    return config, statuses, engine, clock
