"""Turns the cases of a .test file (tests/promql_testfile.py) into ``promtool test rules``
unit-test files, so that Prometheus itself confirms every expected value.

One block (a ``load`` and its ``eval`` cases) becomes one unit-test file: ``interval`` is the
load step, each series line an ``input_series`` with the same expanding notation, each case a
``promql_expr_test`` at ``eval_time``. What promtool 2.42 does, and how each difference is met:

- it compares values with ``reflect.DeepEqual``: exact, so the .test files write every value
  as Prometheus computes it (all digits); where Prometheus' own answer varies in the last
  bits from run to run (see ROUNDING), promtool's printed answer is compared here instead.
  NaN never equals NaN. A case expecting NaN is
  therefore checked as two expressions: ``(q) >= -Inf`` gives every sample that is not NaN,
  with its exact value and its name; ``L != bool L``, where ``L`` is ``q`` with its metric
  name copied to the label ``promtool_name``, gives every sample's labels with 1 for NaN and
  0 otherwise. A scalar NaN is checked as ``vector((q) != bool (q))`` = 1.
- a scalar result is compared as one sample with no labels (``{}``).
- an empty expected result is ``exp_samples: []`` (both sides nil).
- both sides are sorted by labels before comparing: the order an ``eval_ordered`` case
  expects is checked by the engine's runner only.
- a query that fails is reported as ``expr: "...", time: ..., err: ...`` and fails the file;
  ``eval_fail`` cases therefore go to separate files that must fail, with exactly one such
  error line per case, and its text containing ``expected_fail_message`` when one is given.
- series are loaded lazily up to each rule-evaluation step and queried after the last one,
  at most the largest eval time: ``evaluation_interval`` is set to the greatest common divisor
  of the block's eval times so that every eval time is such a step.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from math import gcd

from tests.promql_testfile import Block, Case, split_series

NAME_COPY = "promtool_name"


@dataclass
class UnitFile:
    text: str
    cases: list[Case] = field(default_factory=list)  # the cases this file checks
    checks: int = 0  # promql_expr_test entries


def _value(v: float) -> str:
    if math.isnan(v):
        return ".nan"
    if math.isinf(v):
        return ".inf" if v > 0 else "-.inf"
    return repr(v)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def metric_text(labels: dict[str, str]) -> str:
    """``{"__name__": "a", "b": "c"}`` -> ``a{b="c"}`` (Prometheus' metric notation)."""
    name = labels.get("__name__", "")
    pairs = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items()) if k != "__name__")
    return f"{name}{{{pairs}}}"


def _checks(case: Case) -> list[tuple[str, list[tuple[dict[str, str], float]]]]:
    """(expression, expected samples) pairs that confirm one case with promtool."""
    q = case.query
    if case.scalar is not None:
        if math.isnan(case.scalar):
            return [(f"vector(({q}) != bool ({q}))", [({}, 1.0)])]
        return [(q, [({}, case.scalar)])]
    if not any(math.isnan(v) for _, v in case.expected):
        return [(q, case.expected)]
    copied = f'label_replace(({q}), "{NAME_COPY}", "$1", "__name__", "(.+)")'
    flags = []
    for labels, value in case.expected:
        marked = {k: v for k, v in labels.items() if k != "__name__"}
        if labels.get("__name__"):
            marked[NAME_COPY] = labels["__name__"]
        flags.append((marked, 1.0 if math.isnan(value) else 0.0))
    numbers = [(labels, v) for labels, v in case.expected if not math.isnan(v)]
    return [(f"({q}) >= -Inf", numbers), (f"{copied} != bool {copied}", flags)]


def _eval_interval_ms(cases: list[Case]) -> int:
    step = 0
    for case in cases:
        step = gcd(step, case.at_ms)
    return step or 60_000


def unit_file(block: Block, cases: list[Case]) -> UnitFile:
    lines = [f"evaluation_interval: {_eval_interval_ms(cases)}ms", "tests:",
             f"  - interval: {block.step_ms or 60_000}ms", "    input_series:"]
    for series_line in block.series:
        series, values = split_series(series_line)
        lines += [f"      - series: {_quote(series)}", f"        values: {_quote(values)}"]
    lines.append("    promql_expr_test:")
    unit = UnitFile("", list(cases))
    for case in cases:
        checks = [(case.query, [])] if case.fail else _checks(case)
        for expr, samples in checks:
            unit.checks += 1
            lines += [f"      - expr: {_quote(expr)}", f"        eval_time: {case.at_ms}ms"]
            if not samples:
                lines.append("        exp_samples: []")
                continue
            lines.append("        exp_samples:")
            for labels, value in samples:
                lines += [f"          - labels: {_quote(metric_text(labels))}",
                          f"            value: {_value(value)}"]
    unit.text = "\n".join(lines) + "\n"
    return unit


def unit_files(blocks: list[Block]) -> tuple[list[UnitFile], list[UnitFile]]:
    """(files that promtool must pass, files of eval_fail cases whose every case must fail)."""
    passing: list[UnitFile] = []
    failing: list[UnitFile] = []
    for block in blocks:
        good = [c for c in block.cases if not c.fail]
        bad = [c for c in block.cases if c.fail]
        if good:
            passing.append(unit_file(block, good))
        if bad:
            failing.append(unit_file(block, bad))
    return passing, failing


_ERROR_LINE = re.compile(r'^\s+expr: (".*"), time: (\S+), err: (.*)$')


def query_errors(output: str) -> list[tuple[str, str]]:
    """(expression, error text) of every query promtool reported as failing."""
    found = []
    for line in output.splitlines():
        match = _ERROR_LINE.match(line)
        if match:
            found.append((json.loads(match.group(1)), match.group(3)))
    return found


_MISMATCH = re.compile(r'^\s+expr: (".*"), time: (\S+),\n\s+exp: (.*)\n\s+got: (.*)$', re.M)
_SAMPLE = re.compile(r'(\{(?:[^"{}]|"(?:[^"\\]|\\.)*")*\}) (\S+?)(?:, |$)')


def _samples(text: str) -> list[tuple[str, float]]:
    return [] if text == "nil" else [(m.group(1), float(m.group(2))) for m in _SAMPLE.finditer(text)]


def _close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or abs(a - b) <= ROUNDING * max(abs(a), abs(b))


# Prometheus itself sums a group in the order the storage returns its series, which the test
# loader randomises (a Go map), so a sum or mean of inexact values can differ in the last bits
# from one run to the next. A mismatch promtool reports is accepted when the labels are equal
# and every value is within this relative distance of Prometheus' (printed in full) answer.
ROUNDING = 1e-12


@dataclass
class Verdict:
    exact: int  # checks promtool passed itself
    rounded: list[str]  # checks whose values promtool printed within ROUNDING of the expected
    wrong: list[str]  # everything else promtool reported


def verdict(output: str, checks: int) -> Verdict:
    """Reads promtool's report on files holding ``checks`` promql_expr_test entries."""
    rounded: list[str] = []
    wrong: list[str] = []
    for match in _MISMATCH.finditer(output):
        expr, exp, got = json.loads(match.group(1)), _samples(match.group(3)), _samples(match.group(4))
        same = len(exp) == len(got) and all(
            el == gl and _close(ev, gv) for (el, ev), (gl, gv) in zip(exp, got))
        (rounded if same else wrong).append(f"{expr} at {match.group(2)}: exp {match.group(3)} got {match.group(4)}")
    wrong += [f"{expr}: error {err}" for expr, err in query_errors(output)]
    reported = len(rounded) + len(wrong)
    if reported == 0 and "FAILED" in output:
        wrong.append(output)
    return Verdict(checks - reported, rounded, wrong)
