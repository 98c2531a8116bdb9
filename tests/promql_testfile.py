"""Runs PromQL cases written in Prometheus' own promql/testdata ``*.test`` format.

The format (from Prometheus' promql/test.go): ``load <step>`` followed by series lines
``name{label="value"} 0+10x5 _ stale 3``, then ``eval instant at <time> <query>`` (or
``eval_fail`` / ``eval_ordered``) followed by the expected series and values, or a bare number
for a scalar result; ``clear`` empties the storage. Values compare with Prometheus' own
tolerance (relative 1e-6, NaN equal to NaN).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from monitor.promql import STALE_NAN, PromQLError, SeriesStore, compile_query, evaluate

_DURATION = re.compile(r"(\d+)(ms|y|w|d|h|m|s)")
_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000, "y": 31_536_000_000}
_EVAL = re.compile(r"^eval(?:_(fail|ordered))?\s+instant\s+(?:at\s+(.+?))?\s+(.+)$")
_ITEM = re.compile(r"^(?P<value>[^+\-x]+|[+-][^+\-x]+)(?:(?P<step>[+-][^x]+))?x(?P<times>\d+)$")


def duration_ms(text: str) -> int:
    total, pos = 0, 0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            raise ValueError(f"bad duration {text!r}")
        total += int(match.group(1)) * _UNITS_MS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"bad duration {text!r}")
    return total


def _number(text: str) -> float:
    if text == "stale":
        return STALE_NAN
    lowered = text.lower()
    if lowered.lstrip("+-").startswith("0x"):
        return float(int(text, 16))
    return float(text)


def parse_series(line: str) -> tuple[dict[str, str], list[float | None]]:
    """``name{a="b"} 1+1x3 _ stale`` -> labels (with __name__) and values (None: no sample)."""
    labels: dict[str, str] = {}
    i = 0
    while i < len(line) and (line[i].isalnum() or line[i] in "_:"):
        i += 1
    if i:
        labels["__name__"] = line[:i]
    if i < len(line) and line[i] == "{":
        i += 1
        while True:
            while line[i] in " ,":
                i += 1
            if line[i] == "}":
                i += 1
                break
            start = i
            while line[i] not in "=":
                i += 1
            name = line[start:i].strip()
            i += 1
            assert line[i] == '"', line
            i += 1
            value = []
            while line[i] != '"':
                if line[i] == "\\":
                    i += 1
                    value.append({"n": "\n", "t": "\t"}.get(line[i], line[i]))
                else:
                    value.append(line[i])
                i += 1
            i += 1
            labels[name] = "".join(value)
    values: list[float | None] = []
    for item in line[i:].split():
        if item == "_":
            values.append(None)
            continue
        if item.startswith("_x"):
            values.extend([None] * int(item[2:]))
            continue
        match = _ITEM.match(item)
        if match is None:
            values.append(_number(item))
            continue
        start = _number(match.group("value"))
        step = _number(match.group("step")) if match.group("step") else 0.0
        for _ in range(int(match.group("times")) + 1):
            values.append(start)
            start += step
    return labels, values


@dataclass
class Case:
    line: int
    query: str
    at_ms: int
    fail: bool
    ordered: bool
    scalar: float | None = None
    expected: list[tuple[dict[str, str], float]] = field(default_factory=list)


@dataclass
class Outcome:
    passed: list[Case] = field(default_factory=list)
    failed: list[tuple[Case, str]] = field(default_factory=list)
    unsupported: list[tuple[Case, str]] = field(default_factory=list)


def almost_equal(a: float, b: float) -> bool:
    if math.isnan(a) and math.isnan(b):
        return True
    if a == b:
        return True
    diff = abs(a - b)
    min_normal = 2.2250738585072014e-308
    if a == 0 or b == 0 or diff < min_normal:
        return diff < 1e-6 * min_normal
    return diff / (abs(a) + abs(b)) < 1e-6


def run(text: str) -> Outcome:
    """Run every command of a .test file; returns which eval cases passed, failed, or use
    what the engine does not support."""
    outcome = Outcome()
    store = _new_store()
    lines = [ln.strip() for ln in text.split("\n")]
    lines = ["" if ln.startswith("#") else ln for ln in lines]
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line:
            i += 1
            continue
        word = line.split()[0].lower()
        if word == "clear":
            store = _new_store()
            i += 1
        elif word == "load":
            step = duration_ms(line.split(None, 1)[1].strip())
            i += 1
            series: dict[tuple[tuple[str, str], ...], tuple[dict[str, str], list[float | None]]] = {}
            while i < len(lines) and lines[i]:
                labels, values = parse_series(lines[i])
                series[tuple(sorted(labels.items()))] = (labels, values)  # a later line replaces an earlier one
                i += 1
            for labels, values in series.values():
                for n, value in enumerate(values):
                    if value is not None:
                        store.load(labels, n * step / 1000, value)
        elif word.startswith("eval"):
            match = _EVAL.match(line)
            assert match, line
            case = Case(i + 1, match.group(3), duration_ms(match.group(2)) if match.group(2) else 0,
                        match.group(1) == "fail", match.group(1) == "ordered")
            i += 1
            while i < len(lines) and lines[i]:
                try:
                    case.scalar = _number(lines[i])
                    i += 1
                    break
                except ValueError:
                    pass
                labels, values = parse_series(lines[i])
                assert len(values) == 1, lines[i]
                assert values[0] is not None
                case.expected.append((labels, values[0]))
                i += 1
            _check(case, store, outcome)
        else:
            raise ValueError(f"line {i + 1}: unknown command {line!r}")
    return outcome


def _new_store() -> SeriesStore:
    return SeriesStore([], retention=1e12, max_series=1_000_000)


def _check(case: Case, store: SeriesStore, outcome: Outcome) -> None:
    try:
        query = compile_query(case.query)
    except PromQLError as err:
        if case.fail and "unsupported" not in str(err):
            outcome.passed.append(case)
        elif "unsupported" in str(err):
            outcome.unsupported.append((case, str(err)))
        else:
            outcome.failed.append((case, f"compile: {err}"))
        return
    try:
        result = evaluate(query, store, case.at_ms / 1000)
    except PromQLError as err:
        if case.fail:
            outcome.passed.append(case)
        else:
            outcome.failed.append((case, f"evaluate: {err}"))
        return
    if case.fail:
        outcome.failed.append((case, f"expected an error, got {result!r}"))
        return
    problem = _compare(case, result)
    if problem:
        outcome.failed.append((case, problem))
    else:
        outcome.passed.append(case)


def _compare(case: Case, result: object) -> str | None:
    if isinstance(result, float):
        if case.scalar is None:
            return f"got scalar {result}, expected a vector"
        return None if almost_equal(case.scalar, result) else f"got {result}, expected {case.scalar}"
    assert isinstance(result, list)
    if case.scalar is not None:
        return f"got a vector {result}, expected scalar {case.scalar}"
    got = {tuple(sorted(s.labels.items())): s.value for s in result}
    want = {tuple(sorted(labels.items())): value for labels, value in case.expected}
    if len(got) != len(result):
        return "duplicate label sets in the result"
    if set(got) != set(want):
        return f"series differ: got {sorted(got)} expected {sorted(want)}"
    for key, value in want.items():
        if not almost_equal(value, got[key]):
            return f"{dict(key)}: got {got[key]}, expected {value}"
    if case.ordered:
        order = [tuple(sorted(s.labels.items())) for s in result]
        if order != [tuple(sorted(labels.items())) for labels, _ in case.expected]:
            return f"order differs: {order}"
    return None
