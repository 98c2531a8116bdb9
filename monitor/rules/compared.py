"""The value a rule's condition compared: ``$value`` in annotations, as in Prometheus.

In Prometheus ``$value`` of ``histogram_quantile(...) > 2`` is the quantile, not whatever the
series measured. A rule here is one CEL condition, so the comparisons in it are found in its
text when the config loads: the condition is split at the top-level ``||`` and ``&&`` (in
that order of precedence, parentheses respected) and each part that is a comparison
(``<``, ``<=``, ``>``, ``>=``, ``==``, ``!=``) is kept with its two sides compiled. When the
condition holds, the first comparison that also holds gives ``$value``: its left-hand side, or
its right-hand side when the left is a constant (``2 < latency``). Only numbers count; a rule
with no such comparison (``!up``, ``body.status in [...]``) falls back to the check's value.

docs/configuration.md ("Annotation templates") documents the rule; the unit of the compared
value follows from what it reads (``unit_of``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from monitor.core.expressions import Expression, ExpressionError, compile_expression
from monitor.rules.functions import NoData

_COMPARISONS = ("<=", ">=", "==", "!=", "<", ">")
_OPEN, _CLOSE = "([{", ")]}"


@dataclass(frozen=True)
class Comparison:
    test: Expression  # the comparison itself
    side: Expression  # the side whose value is reported
    side_text: str


def _top_level(source: str) -> list[tuple[int, str]]:
    """(position, character) of every character outside strings and brackets."""
    out: list[tuple[int, str]] = []
    depth, i, quote = 0, 0, ""
    while i < len(source):
        c = source[i]
        if quote:
            if c == "\\":
                i += 1
            elif source.startswith(quote, i):
                i += len(quote) - 1
                quote = ""
        elif c in "'\"":
            quote = source[i:i + 3] if source[i:i + 3] in ("'''", '"""') else c
            i += len(quote) - 1
        elif c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth -= 1
        elif depth == 0:
            out.append((i, c))
        i += 1
    return out


def _split(source: str, operator: str) -> list[str]:
    top = _top_level(source)
    cuts = [i for i, c in top if source.startswith(operator, i)]
    parts, start = [], 0
    for cut in cuts:
        parts.append(source[start:cut])
        start = cut + len(operator)
    parts.append(source[start:])
    return parts


def _unwrap(source: str) -> str:
    """Drop parentheses around the whole text: ``((a > 1))`` -> ``a > 1``."""
    text = source.strip()
    # Wrapped whole exactly when nothing is left outside brackets: `(a) && (b)` has " && ".
    while text.startswith("(") and text.endswith(")") and not _top_level(text):
        text = text[1:-1].strip()
    return text


def comparison_texts(source: str) -> list[tuple[str, str, str]]:
    """(left, operator, right) of each comparison the condition is made of, in order."""
    text = _unwrap(source)
    if any(c == "?" for _, c in _top_level(text)):
        return []  # a conditional expression: which branch compared is not knowable from the text
    for operator in ("||", "&&"):
        parts = _split(text, operator)
        if len(parts) > 1:
            return [found for part in parts for found in comparison_texts(part)]
    if text.startswith("!") and not text.startswith("!="):
        return []  # a negated comparison held by failing: its sides are not what was exceeded
    for i, c in _top_level(text):
        if c not in "<>=!":
            continue
        found = next((op for op in _COMPARISONS if text.startswith(op, i)), None)
        if found is None:
            continue
        left, right = text[:i].strip(), text[i + len(found):].strip()
        return [(left, found, right)] if left and right else []
    return []


def compile_comparisons(source: str, variables: tuple[str, ...], functions: tuple[str, ...]) -> list[Comparison]:
    """The comparisons of an already valid condition, each with the side it reports."""
    found = []
    for left, operator, right in comparison_texts(source):
        try:
            test = compile_expression(f"{left} {operator} {right}", variables, functions)
            sides = [(compile_expression(text, variables, functions), text) for text in (left, right)]
        except ValueError:
            continue  # the split did not give expressions of their own: report nothing rather than nonsense
        reported = next((s for s in sides if _reads_something(s[0])), None)
        if reported is not None:
            found.append(Comparison(test, reported[0], reported[1]))
    return found


def _reads_something(expression: Expression) -> bool:
    program = expression.program
    return bool(set(program.variables())) or any(
        not f.startswith(("_", "!_", "-_", "@")) and f not in ("double", "int", "uint") for f in program.functions())


def compared_value(comparisons: list[Comparison], scope: Mapping[str, Any]) -> tuple[float, str] | None:
    """The value (and the text of the side it came from) of the first comparison that holds."""
    for comparison in comparisons:
        try:
            if comparison.test.evaluate(scope) is not True:
                continue
            value = comparison.side.evaluate(scope)
        except (ExpressionError, NoData, ValueError):
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value), comparison.side_text
    return None


_QUOTED = r"""["']([a-z]+)["']"""
_UNIT_PATTERNS: tuple[tuple[re.Pattern[str], str | None], ...] = (
    (re.compile(r"latency|age"), "seconds"),
    (re.compile(r"value"), None),  # the check's own unit
    (re.compile(r"status"), "status"),
    (re.compile(r"success_ratio\(.*\)|error_budget_remaining"), "ratio"),
    (re.compile(r"count_over_time\(.*\)|changes\(.*\)|size\(.*\)"), "count"),
    (re.compile(rf"(?:avg|min|max)_over_time\(\s*{_QUOTED}\s*,.*\)"), "field"),
    (re.compile(rf"quantile_over_time\([^,]+,\s*{_QUOTED}\s*,.*\)"), "field"),
)


def unit_of(side_text: str, check_unit: str) -> str:
    """The unit of what one side of a comparison reads: ``latency`` and windows over it are
    seconds, ``value`` and windows over it the check's unit, ratios a ratio; arithmetic or
    anything else has none (the number is shown plain)."""
    text = side_text.strip()
    for pattern, unit in _UNIT_PATTERNS:
        match = pattern.fullmatch(text)
        if match is None:
            continue
        if unit == "field":
            return {"latency": "seconds", "value": check_unit, "up": "ratio"}.get(match.group(1), "")
        return check_unit if unit is None else unit
    return ""
