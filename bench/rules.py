"""Rule evaluation cost: µs per result with 1, 10 and 100 rules on one check, and window
functions over an hour of 1-second samples.

The reference, measured in the same run, is the bare CEL library evaluating the same
expression on a plain dict: the difference is what the engine adds (variables, window
binding, the state machine).

    python -m bench.rules
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cel

from bench._common import command_line, machine_info, md_table, update_results_section
from monitor.check_status import CheckStatuses
from monitor.core.clock import FakeClock
from monitor.config.loader import load_config
from monitor.core.results import Outcome, Result
from monitor.rules.engine import RuleEngine

EXPR = "!up && value > 100.0"
WINDOW_EXPRS = {
    'avg_over_time("latency", "1h")': 'avg_over_time("latency", "1h") > 2.0',
    'quantile_over_time(0.95, "latency", "1h")': 'quantile_over_time(0.95, "latency", "1h") > 2.0',
    'success_ratio("5m")': 'success_ratio("5m") < 0.95',
    'rate("value", "1h")': 'rate("value", "1h") > 10.0',
}


def per_call_us(fn: Callable[[], object], rounds: int = 5, calls: int = 2000) -> float:
    """Median over rounds of the mean µs per call (median damps a noisy neighbour)."""
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(samples)


def engine_with(directory: Path, exprs: list[str], samples: int) -> tuple[RuleEngine, Callable[[], object]]:
    (directory / "checks.yaml").write_text(
        "checks:\n  - {name: api, kind: heartbeat, max_age: 1h, interval: 1s, timeout: 1s}\n")
    rules = "".join(f"      - alert: R{i}\n        check: api\n        expr: '{e}'\n" for i, e in enumerate(exprs))
    (directory / "rules.yaml").write_text(f"groups:\n  - name: g\n    rules:\n{rules}")
    (directory / "monitor.yaml").write_text("check_files: [checks.yaml]\nrule_files: [rules.yaml]\n")
    config = load_config(directory / "monitor.yaml")
    statuses = CheckStatuses(history_window=3600, history_cap=4096)
    statuses.configure(config.checks)
    clock = FakeClock()
    for i in range(samples):  # an hour of 1 s samples, 1 in 50 failing
        clock.advance(1)
        statuses.record("api", Result(up=i % 50 != 0, value=float(i), latency=0.01 + (i % 7) / 100,
                                      at=clock.time(), outcome=Outcome.SUCCESS))
    engine = RuleEngine(statuses, clock=clock.time)
    engine.configure(config.checks, config.rules)
    check = config.checks[0]
    result = Result(up=True, value=1.0, latency=0.01, at=clock.time())
    return engine, lambda: engine.evaluate(check.name, result)


def main() -> None:
    rows = []
    bare = cel.compile(EXPR)
    scope = {"up": True, "value": 1.0}
    reference = per_call_us(lambda: bare.execute(scope))
    rows.append(["bare CEL, 1 expression (reference)", f"{reference:.1f}", "1.00×"])
    with tempfile.TemporaryDirectory() as tmp:
        for count in (1, 10, 100):
            _, evaluate = engine_with(Path(tmp), [EXPR] * count, samples=60)
            us = per_call_us(evaluate, calls=max(20, 2000 // count))
            rows.append([f"engine, {count} rule(s) on the check", f"{us:.1f} ({us / count:.1f} per rule)",
                         f"{us / count / reference:.2f}× per rule"])
        for label, expr in WINDOW_EXPRS.items():
            _, evaluate = engine_with(Path(tmp), [expr], samples=3600)
            us = per_call_us(evaluate, rounds=3, calls=50)
            rows.append([f"engine, 1 rule: {label} over 3,600 samples", f"{us:.1f}", f"{us / reference:.0f}×"])
    body = "\n".join([
        "## Rule evaluation (`bench/rules.py`)", "",
        f"Command: `{command_line()}`", "",
        *machine_info(),
        f"- expression: `{EXPR}`; engine = RuleEngine.evaluate for one result (variables, window binding,"
        " state machine); median of 5 rounds", "",
        md_table(["what", "µs per result", "vs bare CEL"], rows),
    ])
    print(body)
    update_results_section("rules", body)


if __name__ == "__main__":
    main()
