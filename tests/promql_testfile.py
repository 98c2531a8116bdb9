"""Reads and runs PromQL cases written in Prometheus' ``.test`` format (tests/promql/*.test).

The format (Prometheus' promql/test.go): ``load <step>`` followed by series lines
``name{label="value"} 0+10x5 _ stale 3``, then ``eval instant at <time> <query>`` (or
``eval_fail`` / ``eval_ordered``) followed by the expected series and values, or a bare number
for a scalar result; ``clear`` empties the storage. An ``eval_fail`` may be followed by
``expected_fail_message <text>``, which the error must contain. Values compare with
Prometheus' own tolerance (relative 1e-6, NaN equal to NaN); tests/promql_promtool.py checks
the same files against Prometheus itself, exactly.
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


def split_series(line: str) -> tuple[str, str]:
    """``name{a="b"} 1+1x3`` -> (``name{a="b"}``, ``1+1x3``): the series and its values."""
    i = 0
    while i < len(line) and (line[i].isalnum() or line[i] in "_:"):
        i += 1
    if i < len(line) and line[i] == "{":
        quoted = False
        while True:
            i += 1
            if line[i] == "\\" and quoted:
                i += 1
            elif line[i] == '"':
                quoted = not quoted
            elif line[i] == "}" and not quoted:
                i += 1
                break
    return line[:i], line[i:].strip()


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
    return labels, parse_values(line[i:])


def parse_values(text: str) -> list[float | None]:
    values: list[float | None] = []
    for item in text.split():
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
    return values


@dataclass
class Case:
    line: int
    query: str
    at_ms: int
    fail: bool
    ordered: bool
    scalar: float | None = None
    expected: list[tuple[dict[str, str], float]] = field(default_factory=list)
    fail_message: str | None = None  # ``expected_fail_message <text>``: the error contains it


@dataclass
class Block:
    """One ``load`` (after the start of the file or a ``clear``) and the cases evaluated on it."""
    step_ms: int = 0
    series: list[str] = field(default_factory=list)  # the series lines as written
    cases: list[Case] = field(default_factory=list)


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


def parse(text: str) -> list[Block]:
    """The file's commands as blocks. A second ``load`` without ``clear`` between them adds to
    the storage in the .test format; files here keep one ``load`` per block so that each block
    is also one ``promtool test rules`` group (tests/promql_promtool.py)."""
    blocks = [Block()]
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
            blocks.append(Block())
            i += 1
        elif word == "load":
            block = blocks[-1]
            if block.series or block.cases:
                raise ValueError(f"line {i + 1}: one load per block: write clear before it")
            block.step_ms = duration_ms(line.split(None, 1)[1].strip())
            i += 1
            while i < len(lines) and lines[i]:
                block.series.append(lines[i])
                i += 1
        elif word.startswith("eval"):
            match = _EVAL.match(line)
            if match is None:
                raise ValueError(f"line {i + 1}: bad eval {line!r}")
            case = Case(i + 1, match.group(3), duration_ms(match.group(2)) if match.group(2) else 0,
                        match.group(1) == "fail", match.group(1) == "ordered")
            i += 1
            while i < len(lines) and lines[i]:
                if lines[i].startswith("expected_fail_message "):
                    case.fail_message = lines[i].split(None, 1)[1]
                    i += 1
                    continue
                try:
                    case.scalar = _number(lines[i])
                    i += 1
                    break
                except ValueError:
                    pass
                labels, values = parse_series(lines[i])
                if len(values) != 1 or values[0] is None:
                    raise ValueError(f"line {i + 1}: an expected sample has one value")
                case.expected.append((labels, values[0]))
                i += 1
            blocks[-1].cases.append(case)
        else:
            raise ValueError(f"line {i + 1}: unknown command {line!r}")
    return [b for b in blocks if b.series or b.cases]


def run(text: str) -> Outcome:
    """Run every case of a .test file through the engine; returns which eval cases passed,
    failed, or use what the engine does not support."""
    outcome = Outcome()
    for block in parse(text):
        store = _new_store()
        series: dict[tuple[tuple[str, str], ...], tuple[dict[str, str], list[float | None]]] = {}
        for line in block.series:
            labels, values = parse_series(line)
            series[tuple(sorted(labels.items()))] = (labels, values)  # a later line replaces an earlier one
        for labels, values in series.values():
            for n, value in enumerate(values):
                if value is not None:
                    store.load(labels, n * block.step_ms / 1000, value)
        for case in block.cases:
            _check(case, store, outcome)
    return outcome


def _new_store() -> SeriesStore:
    return SeriesStore([], retention=1e12, max_series=1_000_000)


def _check(case: Case, store: SeriesStore, outcome: Outcome) -> None:
    try:
        query = compile_query(case.query)
    except PromQLError as err:
        if case.fail and "unsupported" not in str(err) and (case.fail_message or "") in str(err):
            outcome.passed.append(case)
        elif "unsupported" in str(err):
            outcome.unsupported.append((case, str(err)))
        else:
            outcome.failed.append((case, f"compile: {err}"))
        return
    try:
        result = evaluate(query, store, case.at_ms / 1000)
    except PromQLError as err:
        if case.fail and case.fail_message is not None and case.fail_message not in str(err):
            outcome.failed.append((case, f"error {str(err)!r} lacks {case.fail_message!r}"))
        elif case.fail:
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
