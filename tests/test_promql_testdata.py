"""The PromQL cases of tests/promql/*.test, each checked twice: by Prometheus 2.42 itself
(``promtool test rules`` on unit-test files made from the cases, tests/promql_promtool.py)
and by this engine (tests/promql_testfile.py). The cases are this project's own; their
expected values are what promtool confirms, so the engine is held to Prometheus' answers."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.promql_promtool import metric_text, query_errors, unit_files, verdict
from tests.promql_testfile import parse, run

FILES = sorted((Path(__file__).parent / "promql").glob("*.test"))
PROMTOOL = "/usr/bin/promtool"  # Debian's prometheus package, installed by scripts/system-packages.sh

# Cases per file, so a reader bug that skips cases cannot go unnoticed.
CASES = {
    "aggregations.test": 64, "functions.test": 131, "histograms.test": 29, "operators.test": 99,
    "over_time.test": 48, "rates.test": 54, "selectors.test": 55,
}

# Where the engine knowingly answers differently from Prometheus 2.42 (the case stays as
# Prometheus answers it; the engine must still fail it, so a fix shows up here).
# (file, query, eval time in ms) -> why.
DISAGREEMENTS = {
    ("functions.test", 'year(pool_usage_ratio{pool="db"})', 300_000):
        "date functions of NaN/Inf: Go converts to int64 min and answers year 292277026596; the engine gives NaN",
    ("functions.test", 'year(pool_usage_ratio{pool="db"})', 360_000):
        "date functions of +Inf: Go's int64 conversion; the engine gives NaN",
    ("functions.test", 'month(pool_usage_ratio{pool="db"})', 420_000):
        "date functions of -Inf: Go's int64 conversion; the engine gives NaN",
}


def test_every_file_is_known() -> None:
    assert {p.name for p in FILES} == set(CASES)


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_engine_agrees(path: Path) -> None:
    outcome = run(path.read_text())
    known = {(q, t) for (name, q, t) in DISAGREEMENTS if name == path.name}
    failures = [f"line {case.line}: {case.query}: {why}" for case, why in outcome.failed
                if (case.query, case.at_ms) not in known]
    assert failures == []
    assert outcome.unsupported == []
    still_failing = {(case.query, case.at_ms) for case, _ in outcome.failed}
    assert known - still_failing == set(), "a listed disagreement now passes: remove it from DISAGREEMENTS"
    assert len(outcome.passed) + len(outcome.failed) == CASES[path.name]


def _promtool(tmp: Path, texts: list[str]) -> subprocess.CompletedProcess[str]:
    names = []
    for n, text in enumerate(texts):
        name = tmp / f"unit{n}.yml"
        name.write_text(text)
        names.append(str(name))
    return subprocess.run([PROMTOOL, "test", "rules", *names], capture_output=True, text=True, timeout=120)


def test_promtool_is_installed() -> None:
    assert shutil.which(PROMTOOL), "promtool missing: run scripts/system-packages.sh (make test does)"


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_prometheus_agrees(path: Path, tmp_path: Path) -> None:
    """promtool passes every non-failing case and reports exactly one query error per
    eval_fail case, with the expected message."""
    passing, failing = unit_files(parse(path.read_text()))
    assert sum(len(u.cases) for u in passing + failing) == CASES[path.name]
    if passing:
        result = _promtool(tmp_path, [u.text for u in passing])
        checks = sum(u.checks for u in passing)
        found = verdict(result.stderr, checks)
        assert found.wrong == []
        assert found.exact + len(found.rounded) == checks
        assert result.stdout.count("Unit Testing:") == len(passing)
    fail_cases = [case for unit in failing for case in unit.cases]
    if fail_cases:
        (tmp_path / "fail").mkdir()
        result = _promtool(tmp_path / "fail", [u.text for u in failing])
        assert result.returncode == 1
        errors = query_errors(result.stderr)
        assert sorted(q for q, _ in errors) == sorted(c.query for c in fail_cases), result.stderr
        for case in fail_cases:
            texts = [err for q, err in errors if q == case.query]
            assert all((case.fail_message or "") in err for err in texts), (case.query, texts)


def test_nan_cases_become_promtool_checks() -> None:
    """A NaN expectation turns into checks promtool can compare exactly."""
    block = parse("load 1m\n  m{a=\"b\"} NaN\n  m{a=\"c\"} 2\n\neval instant at 0m m\n  m{a=\"b\"} NaN\n  m{a=\"c\"} 2\n")[0]
    (unit,), _ = unit_files([block])
    assert "'(m) >= -Inf'" in unit.text
    assert "promtool_name" in unit.text
    assert unit.checks == 2
    assert metric_text({"__name__": "m", "a": 'q"t'}) == 'm{a="q\\"t"}'


def test_only_last_bit_differences_are_accepted() -> None:
    report = ('  FAILED:\n    expr: "avg(x)", time: 5m,\n        exp: {a="1"} 4.666666666666667E+00\n'
              '        got: {a="1"} 4.666666666666666E+00\n    expr: "sum(x)", time: 5m,\n'
              '        exp: {a="1"} 4.6667E+00\n        got: {a="1"} 4.6668E+00\n'
              '    expr: "x", time: 1m, err: boom\n')
    found = verdict(report, 5)
    assert found.exact == 2
    assert len(found.rounded) == 1 and found.rounded[0].startswith("avg(x)")
    assert [w.split(" ")[0] for w in found.wrong] == ["sum(x)", "x:"]
