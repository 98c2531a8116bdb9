"""Prometheus' own PromQL test cases (tests/promql/*.test, from Prometheus v2.42.0's
promql/testdata) run through this engine: every case passes, or uses a function or construct
the engine refuses at compile time for a reason listed here."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.promql_testfile import run

FILES = sorted((Path(__file__).parent / "promql").glob("*.test"))

# What the engine refuses (docs/configuration.md, "PromQL supported"), as its error says it.
REFUSED = (
    "unsupported function label_replace",
    "unsupported function label_join",
    "unsupported function holt_winters",
    "unsupported construct subquery",
    "unsupported construct negative offset",
    "unsupported construct @ <timestamp>",
)

# Cases per file that must pass, so a loader bug that skips cases cannot go unnoticed.
MINIMUM_PASSED = {
    "aggregators.test": 83, "collision.test": 2, "functions.test": 180, "histograms.test": 38,
    "literals.test": 20, "operators.test": 94, "selectors.test": 30, "staleness.test": 14,
    "trig_functions.test": 19,
}


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_prometheus_cases_agree(path: Path) -> None:
    outcome = run(path.read_text())
    failures = [f"line {case.line}: {case.query}: {why}" for case, why in outcome.failed]
    assert failures == []
    refused = [(case.query, why) for case, why in outcome.unsupported if not why.startswith(REFUSED)]
    assert refused == []
    assert len(outcome.passed) >= MINIMUM_PASSED[path.name]


def test_every_file_is_known() -> None:
    assert {p.name for p in FILES} == set(MINIMUM_PASSED)
