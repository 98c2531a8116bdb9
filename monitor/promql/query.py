"""compile_query: PromQL text -> an immutable, reusable Query (parsed by promql-parser).

The parser (a Rust extension) is imported on the first compilation, not with this package:
a daemon without metrics checks never loads it. Everything the parser accepts that this
engine does not evaluate exactly as Prometheus 2.42 does is refused here, naming the
function or construct, so a query never silently gets a different answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .errors import PromQLError
from .functions_table import AGGREGATIONS, RETURNS
from .nodes import (
    MANY_TO_MANY,
    MANY_TO_ONE,
    MATRIX,
    ONE_TO_MANY,
    ONE_TO_ONE,
    SCALAR,
    STRING,
    VECTOR,
    Aggregate,
    Binary,
    Call,
    MatrixSel,
    Negate,
    Node,
    Number,
    String,
    VectorSel,
)
from .selector import EQUAL, NOT_EQUAL, NOT_REGEX, REGEX, Matcher, Selector

LOOKBACK_MS = 300_000  # Prometheus' default --query.lookback-delta, 5m
MAX_QUERY_LENGTH = 10_000  # characters; a runbook query is a line or two

# Functions Prometheus 2.42 has that the parser (which follows later versions) no longer knows.
_PROMETHEUS_2_42_ONLY = frozenset({"holt_winters"})
_UNKNOWN_FUNCTION = re.compile(r"unknown function with name '([^']*)'")

_SET_OPS = frozenset({"and", "or", "unless"})
_COMPARISONS = frozenset({"==", "!=", ">", "<", ">=", "<="})
_ARITHMETIC = frozenset({"+", "-", "*", "/", "%", "^", "atan2"})


@dataclass(frozen=True, eq=False)
class Query:
    """A compiled query: evaluate it with ``evaluate(query, store, at)`` as often as needed."""

    text: str
    root: Node
    selectors: tuple[Selector, ...]
    retention: float  # seconds of samples needed before the evaluation time

    @property
    def returns(self) -> str:
        return self.root.kind  # "scalar" or "vector"


def compile_query(text: str) -> Query:
    if len(text) > MAX_QUERY_LENGTH:
        raise PromQLError(f"query is {len(text)} characters long, over the limit of {MAX_QUERY_LENGTH}")
    if not text.strip():
        raise PromQLError("query is empty")
    _check_2_42_syntax(text)
    import promql_parser  # lazily: see the module docstring

    try:
        parsed = promql_parser.parse(text)
    except ValueError as err:
        message = _one_line(str(err))
        unknown = _UNKNOWN_FUNCTION.fullmatch(message)
        if unknown and unknown.group(1) in _PROMETHEUS_2_42_ONLY:
            raise PromQLError(f"unsupported function {unknown.group(1)}") from None
        raise PromQLError(f"parse error: {message}") from None
    except Exception as err:  # the binding may raise its own types on odd input
        raise PromQLError(f"parse error: {_one_line(str(err)) or type(err).__name__}") from None
    builder = _Builder(promql_parser)
    root = builder.build(parsed)
    if root.kind not in (SCALAR, VECTOR):
        raise PromQLError(f"query must return an instant vector or scalar, not a {'range vector' if root.kind == MATRIX else root.kind}")
    selectors = tuple(dict.fromkeys(builder.selectors))
    retention = (builder.longest_ms + LOOKBACK_MS) / 1000
    return Query(text=text, root=root, selectors=selectors, retention=retention)


# The parser follows later Prometheus versions, whose grammar grew: numbers and durations
# became interchangeable ("x + 1m", "rate(x[5])", "offset 90") and names may be quoted
# UTF-8. Prometheus 2.42 refuses all of these; so does this engine, rather than answer a
# query Prometheus would reject.
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_DURATION = r"(?:\d+(?:ms|[smhdwy]))+"
_BRACES = re.compile(r"\{([^{}]*)\}")
_BRACKETS = re.compile(r"\[([^\]]*)\]")
_OFFSET = re.compile(r"\boffset\b\s*(-?)\s*([^\s()\[\]{},]*)", re.IGNORECASE)
_DURATION_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:ms|[smhdwy])(?![\w.])")
_LEGACY_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def _check_2_42_syntax(text: str) -> None:
    plain = _STRING.sub('""', text)
    for inside in _BRACKETS.findall(plain):
        for part in inside.split(":"):
            if part.strip() and not re.fullmatch(_DURATION, part.strip()):
                raise PromQLError(f"parse error: bad duration {part.strip()!r} in [...] (Prometheus 2.42 needs a unit, as in [5m])")
    for _, duration in _OFFSET.findall(plain):
        if not re.fullmatch(_DURATION, duration):
            raise PromQLError(f"parse error: bad duration {duration!r} after offset (Prometheus 2.42 needs a unit, as in offset 5m)")
    for inside in _BRACES.findall(plain):
        if re.search(r'(?:^|,)\s*""', inside):
            raise PromQLError("unsupported construct quoted metric name inside {...} (not in Prometheus 2.42)")
    rest = _OFFSET.sub(" ", _BRACKETS.sub(" ", plain))
    found = _DURATION_NUMBER.search(rest)
    if found:
        raise PromQLError(f"unsupported construct duration {found.group(0)} used as a number (not in Prometheus 2.42)")


def _check_name(name: str, what: str) -> None:
    if not _LEGACY_NAME.fullmatch(name) or (what == "label" and ":" in name):
        raise PromQLError(f"unsupported construct {what} name {name!r} (quoted UTF-8 names are not in Prometheus 2.42)")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _ms(delta: timedelta | None) -> int:
    if delta is None:
        return 0
    return int(round(delta / timedelta(milliseconds=1)))


class _Builder:
    def __init__(self, module: Any) -> None:
        self.p = module
        self.selectors: list[Selector] = []
        self.longest_ms = 0

    def build(self, e: Any) -> Node:
        p = self.p
        if isinstance(e, p.ParenExpr):
            return self.build(e.expr)
        if isinstance(e, p.NumberLiteral):
            return Number(float(e.val))
        if isinstance(e, p.StringLiteral):
            return String(str(e.val))
        if isinstance(e, p.VectorSelector):
            return self.vector(e, 0)
        if isinstance(e, p.MatrixSelector):
            range_ms = _ms(e.range)
            vs = self.vector(e.vector_selector, range_ms)
            return MatrixSel(vs, range_ms)
        if isinstance(e, p.SubqueryExpr):
            raise PromQLError("unsupported construct subquery (expr[range:step])")
        if isinstance(e, p.UnaryExpr):
            inner = self.build(e.expr)
            if inner.kind not in (SCALAR, VECTOR):
                raise PromQLError(f"unary expression only allowed on expressions of type scalar or instant vector, got {inner.kind}")
            if isinstance(inner, Number):
                return Number(-inner.value)
            return Negate(inner, inner.kind)
        if isinstance(e, p.Call):
            return self.call(e)
        if isinstance(e, p.AggregateExpr):
            return self.aggregate(e)
        if isinstance(e, p.BinaryExpr):
            return self.binary(e)
        raise PromQLError(f"unsupported construct {type(e).__name__}")

    def vector(self, e: Any, range_ms: int) -> VectorSel:
        p = self.p
        if e.matchers.or_matchers:
            raise PromQLError("unsupported construct 'or' between label matchers (not in Prometheus 2.42)")
        if e.at is not None:
            if e.at.type not in (p.AtModifierType.Start, p.AtModifierType.End):
                raise PromQLError("unsupported construct @ <timestamp> (only the query's own window of samples is kept; "
                                  "@ start() and @ end() are supported)")
        offset = _ms(e.offset)
        if offset < 0:
            raise PromQLError("unsupported construct negative offset (Prometheus 2.42 refuses it by default)")
        ops = ((p.MatchOp.Equal, EQUAL), (p.MatchOp.NotEqual, NOT_EQUAL), (p.MatchOp.Re, REGEX), (p.MatchOp.NotRe, NOT_REGEX))
        matchers: list[Matcher] = []
        name = e.name
        if name:
            matchers.append(Matcher.create("__name__", EQUAL, name))
        if name:
            _check_name(name, "metric")
        for m in e.matchers.matchers:
            _check_name(m.name, "label")
            op = next(mine for theirs, mine in ops if m.op == theirs)
            matchers.append(Matcher.create(m.name, op, m.value))
            if name is None and m.name == "__name__" and op == EQUAL:
                name = m.value
        if all(m.matches("") for m in matchers):
            raise PromQLError("vector selector must contain at least one non-empty matcher")
        selector = Selector(name or None, tuple(matchers))
        self.selectors.append(selector)
        self.longest_ms = max(self.longest_ms, range_ms + offset)
        return VectorSel(selector, offset)

    def call(self, e: Any) -> Node:
        name = e.func.name
        if name not in RETURNS:
            raise PromQLError(f"unsupported function {name}")
        args = tuple(self.build(a) for a in e.args)
        return Call(name, args, RETURNS[name])

    def aggregate(self, e: Any) -> Node:
        op = str(e.op)
        if op not in AGGREGATIONS:
            raise PromQLError(f"unsupported aggregation {op}")
        expr = self.build(e.expr)
        param = self.build(e.param) if e.param is not None else None
        grouping: tuple[str, ...] = ()
        without = False
        if e.modifier is not None:
            grouping = tuple(sorted(e.modifier.labels))
            for label in grouping:
                _check_name(label, "label")
            without = e.modifier.type == self.p.AggModifierType.Without
        if expr.kind != VECTOR:
            raise PromQLError(f"expected type instant vector in aggregation expression, got {expr.kind}")
        if op == "count_values":
            if not isinstance(param, String):
                raise PromQLError("count_values needs a string literal as its first argument")
        elif param is not None and param.kind != SCALAR:
            raise PromQLError(f"expected type scalar in aggregation parameter, got {param.kind}")
        return Aggregate(op, expr, param, grouping, without)

    def binary(self, e: Any) -> Node:
        p = self.p
        op = str(e.op)
        lhs = self.build(e.lhs)
        rhs = self.build(e.rhs)
        mod = e.modifier
        return_bool = bool(mod.return_bool) if mod is not None else False
        if mod is not None and mod.fill_values is not None and (mod.fill_values.lhs is not None or mod.fill_values.rhs is not None):
            raise PromQLError("unsupported construct fill() modifier (not in Prometheus 2.42)")
        if op not in _SET_OPS | _COMPARISONS | _ARITHMETIC:
            raise PromQLError(f"unsupported operator {op}")
        for side in (lhs, rhs):
            if side.kind not in (SCALAR, VECTOR):
                raise PromQLError(f"binary expression must contain only scalar and instant vector types, got {side.kind}")
        if lhs.kind == SCALAR and rhs.kind == SCALAR:
            if op in _SET_OPS:
                raise PromQLError(f"set operator {op} not allowed in binary scalar expression")
            if op in _COMPARISONS and not return_bool:
                raise PromQLError("comparisons between scalars must use BOOL modifier")
            return Binary(op, lhs, rhs, return_bool, ONE_TO_ONE, False, (), (), SCALAR)
        card = ONE_TO_ONE
        on = False
        matching: tuple[str, ...] = ()
        include: tuple[str, ...] = ()
        if op in _SET_OPS:
            card = MANY_TO_MANY
        if mod is not None:
            cards = (
                (p.VectorMatchCardinality.OneToOne, ONE_TO_ONE),
                (p.VectorMatchCardinality.ManyToOne, MANY_TO_ONE),
                (p.VectorMatchCardinality.OneToMany, ONE_TO_MANY),
                (p.VectorMatchCardinality.ManyToMany, MANY_TO_MANY),
            )
            card = next(mine for theirs, mine in cards if mod.card == theirs)
            if op in _SET_OPS:
                card = MANY_TO_MANY
            if mod.matching is not None:
                on = mod.matching.type == p.LabelModifierType.Include
                matching = tuple(mod.matching.labels)
            if mod.group_labels:
                include = tuple(mod.group_labels)
            for label in matching + include:
                _check_name(label, "label")
        if (lhs.kind == SCALAR or rhs.kind == SCALAR) and (matching or on or card in (MANY_TO_ONE, ONE_TO_MANY)):
            if op not in _SET_OPS:
                raise PromQLError("vector matching only allowed between instant vectors")
        if op in _SET_OPS and (lhs.kind == SCALAR or rhs.kind == SCALAR):
            raise PromQLError(f"set operator {op} not allowed in binary scalar expression")
        return Binary(op, lhs, rhs, return_bool, card, on, matching, include, VECTOR)


