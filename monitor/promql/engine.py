"""evaluate: one instant evaluation of a compiled query over a SeriesStore, with Prometheus
2.42's semantics (promql/engine.go and functions.go, instant queries).

Values inside the evaluator: a scalar is a float, an instant vector a list of
(labels, value) pairs (labels as in labels.py). Errors that Prometheus raises at evaluation
(many-to-many matching, duplicate label sets...) are PromQLError with Prometheus' text.
"""

from __future__ import annotations

import calendar
import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from . import gomath
from . import labels as lbl
from . import rangefuncs as rf
from .errors import PromQLError
from .functions_table import DATE, SIMPLE
from .labels import Labels
from .nodes import (
    MANY_TO_ONE,
    ONE_TO_MANY,
    ONE_TO_ONE,
    SCALAR,
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
from .quantile import bucket_quantile, quantile
from .query import LOOKBACK_MS, Query
from .store import Series, SeriesStore, is_stale, to_ms

Vector = list[tuple[Labels, float]]
Value = float | Vector | str


@dataclass(frozen=True)
class Sample:
    """One element of an instant vector result."""

    labels: Mapping[str, str]
    value: float


def evaluate(query: Query, store: SeriesStore, at: float) -> float | list[Sample]:
    """The query's value at ``at`` (seconds): a float for a scalar, else the instant vector."""
    result = _Evaluator(store, to_ms(at)).eval(query.root)
    if isinstance(result, float):
        return result
    assert isinstance(result, list)
    return [Sample(dict(labels), value) for labels, value in result]


def _atanh(x: float) -> float:
    if x == 1:
        return math.inf
    if x == -1:
        return -math.inf
    return gomath.safe(math.atanh, x)


_SIMPLE_FUNCS: dict[str, Callable[[float], float]] = {
    "abs": abs, "ceil": gomath.ceil, "floor": gomath.floor, "exp": gomath.exp, "ln": gomath.ln,
    "log2": gomath.log2, "log10": gomath.log10, "sqrt": gomath.sqrt, "sgn": gomath.sgn,
    "sin": lambda x: gomath.safe(math.sin, x), "cos": lambda x: gomath.safe(math.cos, x),
    "tan": lambda x: gomath.safe(math.tan, x), "asin": lambda x: gomath.safe(math.asin, x),
    "acos": lambda x: gomath.safe(math.acos, x), "atan": lambda x: gomath.safe(math.atan, x),
    "sinh": lambda x: gomath.safe(math.sinh, x), "cosh": lambda x: gomath.safe(math.cosh, x),
    "tanh": lambda x: gomath.safe(math.tanh, x), "asinh": lambda x: gomath.safe(math.asinh, x),
    "acosh": lambda x: gomath.safe(math.acosh, x), "atanh": _atanh,
    "deg": lambda x: x * 180 / math.pi, "rad": lambda x: x * math.pi / 180,
}


_ARITH = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": gomath.div,
    "%": gomath.mod,
    "^": gomath.power,
    "atan2": math.atan2,
}
_COMPARE = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
}
# Arithmetic drops the metric name; comparisons (without bool) and atan2 keep it.
_DROPS_NAME = frozenset({"+", "-", "*", "/", "%", "^"})
_LABEL_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789")


def _check_unique(vector: Vector) -> Vector:
    if len(vector) > 1 and len({labels for labels, _ in vector}) != len(vector):
        raise PromQLError("vector cannot contain metrics with the same labelset")
    return vector


def _go_max(a: float, b: float) -> float:
    if a != a or b != b:
        return math.nan
    return max(a, b)


def _go_min(a: float, b: float) -> float:
    if a != a or b != b:
        return math.nan
    return min(a, b)


class _Evaluator:
    def __init__(self, store: SeriesStore, t: int) -> None:
        self.store = store
        self.t = t

    def eval(self, node: Node) -> Value:
        if isinstance(node, Number):
            return node.value
        if isinstance(node, String):
            return node.value
        if isinstance(node, VectorSel):
            return [(labels, value) for labels, value, _ in self.select(node)]
        if isinstance(node, Call):
            return self.call(node)
        if isinstance(node, Binary):
            return self.binary(node)
        if isinstance(node, Aggregate):
            return self.aggregate(node)
        if isinstance(node, Negate):
            inner = self.eval(node.expr)
            if isinstance(inner, float):
                return -inner
            assert isinstance(inner, list)
            return _check_unique([(lbl.drop_name(labels), -value) for labels, value in inner])
        raise PromQLError(f"cannot evaluate {type(node).__name__} here")  # MatrixSel outside a function

    def scalar(self, node: Node) -> float:
        value = self.eval(node)
        assert isinstance(value, float)
        return value

    def vector(self, node: Node) -> Vector:
        value = self.eval(node)
        assert isinstance(value, list)
        return value

    # -- selectors ----------------------------------------------------------------------

    def select(self, node: VectorSel) -> list[tuple[Labels, float, int]]:
        ref = self.t - node.offset_ms
        oldest = ref - LOOKBACK_MS
        out: list[tuple[Labels, float, int]] = []
        for series in self.store.series_for(node.selector):
            ts = series.ts
            i = bisect_right(ts, ref) - 1
            if i < 0:
                continue
            t = ts[i]
            if t < oldest:
                continue
            value = series.values[i]
            if value != value and is_stale(value):
                continue
            out.append((series.labels, value, t))
        return out

    def ranges(self, node: MatrixSel) -> list[tuple[Series, Sequence[int], Sequence[float]]]:
        maxt = self.t - node.vector.offset_ms
        mint = maxt - node.range_ms
        out: list[tuple[Series, Sequence[int], Sequence[float]]] = []
        for series in self.store.series_for(node.vector.selector):
            ts = series.ts
            lo = bisect_left(ts, mint)
            hi = bisect_right(ts, maxt)
            if lo >= hi:
                continue
            times: Sequence[int] = ts[lo:hi]
            values: Sequence[float] = series.values[lo:hi]
            if series.has_stale:
                kept = [(t, v) for t, v in zip(times, values) if not (v != v and is_stale(v))]
                if not kept:
                    continue
                times = [t for t, _ in kept]
                values = [v for _, v in kept]
            out.append((series, times, values))
        return out

    # -- functions ----------------------------------------------------------------------

    def call(self, node: Call) -> Value:
        name = node.name
        args = node.args
        matrix = next((a for a in args if isinstance(a, MatrixSel)), None)
        if matrix is not None:
            return self.range_call(node, matrix)
        if name in SIMPLE:
            fn = _SIMPLE_FUNCS[name]
            return _check_unique([(lbl.drop_name(labels), fn(v)) for labels, v in self.vector(args[0])])
        if name == "time":
            return self.t / 1000
        if name == "pi":
            return math.pi
        if name == "vector":
            return [(lbl.EMPTY, self.scalar(args[0]))]
        if name == "scalar":
            vec = self.vector(args[0])
            return vec[0][1] if len(vec) == 1 else math.nan
        if name == "timestamp":
            arg = args[0]
            if isinstance(arg, VectorSel):
                # A raw selector gives each sample's own timestamp, not the evaluation time.
                return _check_unique([(lbl.drop_name(labels), t / 1000) for labels, _, t in self.select(arg)])
            return _check_unique([(lbl.drop_name(labels), self.t / 1000) for labels, _ in self.vector(arg)])
        if name in ("clamp", "clamp_min", "clamp_max"):
            vec = self.vector(args[0])
            if name == "clamp":
                low, high = self.scalar(args[1]), self.scalar(args[2])
                if high < low:
                    return []
                return _check_unique([(lbl.drop_name(labels), _go_max(low, _go_min(high, v))) for labels, v in vec])
            bound = self.scalar(args[1])
            pick = _go_max if name == "clamp_min" else _go_min
            return _check_unique([(lbl.drop_name(labels), pick(bound, v)) for labels, v in vec])
        if name == "round":
            vec = self.vector(args[0])
            to_nearest = self.scalar(args[1]) if len(args) > 1 else 1.0
            inverse = gomath.div(1.0, to_nearest)
            return _check_unique([(lbl.drop_name(labels), gomath.div(gomath.floor(v * inverse + 0.5), inverse))
                                  for labels, v in vec])
        if name == "absent":
            vec = self.vector(args[0])
            if vec:
                return []
            return [(_absent_labels(args[0]), 1.0)]
        if name == "histogram_quantile":
            return self.histogram_quantile(self.scalar(args[0]), self.vector(args[1]))
        if name in ("sort", "sort_desc"):
            vec = self.vector(args[0])
            sign = 1.0 if name == "sort" else -1.0
            return sorted(vec, key=lambda s: (s[1] != s[1], sign * s[1] if s[1] == s[1] else 0.0))
        if name in DATE:
            if not args:
                return [(lbl.EMPTY, _date(name, self.t / 1000))]
            return _check_unique([(lbl.drop_name(labels), _date(name, v)) for labels, v in self.vector(args[0])])
        raise PromQLError(f"unsupported function {name}")

    def range_call(self, node: Call, matrix: MatrixSel) -> Vector:
        name = node.name
        series = self.ranges(matrix)
        if name == "absent_over_time":
            if series:
                return []
            return [(_absent_labels(matrix), 1.0)]
        maxt = self.t - matrix.vector.offset_ms
        mint = maxt - matrix.range_ms
        range_seconds = matrix.range_ms // 1000 + (matrix.range_ms % 1000) / 1000
        param = 0.0
        if name in ("quantile_over_time", "predict_linear"):
            other = node.args[0] if name == "quantile_over_time" else node.args[1]
            param = self.scalar(other)
        out: Vector = []
        for one, ts, vs in series:
            value: float | None
            if name == "rate":
                value = rf.extrapolated_rate(ts, vs, mint, maxt, range_seconds, True, True)
            elif name == "increase":
                value = rf.extrapolated_rate(ts, vs, mint, maxt, range_seconds, True, False)
            elif name == "delta":
                value = rf.extrapolated_rate(ts, vs, mint, maxt, range_seconds, False, False)
            elif name == "irate":
                value = rf.instant_value(ts, vs, True)
            elif name == "idelta":
                value = rf.instant_value(ts, vs, False)
            elif name == "deriv":
                value = rf.linear_regression(ts, vs, ts[0])[0] if len(ts) >= 2 else None
            elif name == "predict_linear":
                if len(ts) < 2:
                    value = None
                else:
                    slope, intercept = rf.linear_regression(ts, vs, self.t)
                    value = slope * param + intercept
            elif name == "avg_over_time":
                value = rf.avg_over_time(vs)
            elif name == "sum_over_time":
                value = rf.sum_over_time(vs)
            elif name == "min_over_time":
                value = rf.min_over_time(vs)
            elif name == "max_over_time":
                value = rf.max_over_time(vs)
            elif name == "count_over_time":
                value = float(len(vs))
            elif name == "last_over_time":
                value = vs[-1]
            elif name == "stddev_over_time":
                value = rf.stddev_over_time(vs)
            elif name == "stdvar_over_time":
                value = rf.stdvar_over_time(vs)
            elif name == "present_over_time":
                value = 1.0
            elif name == "quantile_over_time":
                value = rf.quantile_over_time(param, vs)
            elif name == "changes":
                value = rf.changes(vs)
            elif name == "resets":
                value = rf.resets(vs)
            else:
                raise PromQLError(f"unsupported function {name}")
            if value is None:
                continue
            # last_over_time acts like an offset and keeps the metric name; every other
            # range function drops it.
            out.append((one.labels if name == "last_over_time" else one.unnamed, value))
        return _check_unique(out)

    def histogram_quantile(self, q: float, vec: Vector) -> Vector:
        groups: dict[Labels, list[tuple[float, float]]] = {}
        for labels, value in vec:
            bound = gomath.parse_go_float(lbl.get(labels, lbl.BUCKET))
            if bound is None:  # no le label, or not a number: Prometheus skips the sample
                continue
            # Grouped by every label but le (the metric name too), output without the name.
            key = tuple(p for p in labels if p[0] != lbl.BUCKET)
            groups.setdefault(key, []).append((bound, value))
        return _check_unique([(lbl.drop_name(key), bucket_quantile(q, buckets)) for key, buckets in groups.items()])

    # -- aggregations -------------------------------------------------------------------

    def aggregate(self, node: Aggregate) -> Vector:
        op = node.op
        param_value: float = 0.0
        value_label = ""
        if op == "count_values":
            assert isinstance(node.param, String)
            value_label = node.param.value
            if not _valid_label_name(value_label):
                raise PromQLError(f"invalid label name {lbl.quote(value_label)}")
        elif node.param is not None:
            param_value = self.scalar(node.param)
        vec = self.vector(node.expr)
        return _aggregate(op, node.grouping, node.without, param_value, value_label, vec)

    # -- binary operators ---------------------------------------------------------------

    def binary(self, node: Binary) -> Value:
        lhs = self.eval(node.lhs)
        rhs = self.eval(node.rhs)
        op = node.op
        if isinstance(lhs, float) and isinstance(rhs, float):
            if op in _COMPARE:
                return 1.0 if _COMPARE[op](lhs, rhs) else 0.0
            return float(_ARITH[op](lhs, rhs))
        if isinstance(lhs, list) and isinstance(rhs, float):
            return _check_unique(_vector_scalar(op, lhs, rhs, False, node.return_bool))
        if isinstance(lhs, float) and isinstance(rhs, list):
            return _check_unique(_vector_scalar(op, rhs, lhs, True, node.return_bool))
        assert isinstance(lhs, list) and isinstance(rhs, list)
        if op in ("and", "or", "unless"):
            return _check_unique(_set_op(op, lhs, rhs, node))
        return _check_unique(_vector_binop(op, lhs, rhs, node))


def _valid_label_name(name: str) -> bool:
    return bool(name) and not name[0].isdigit() and all(ch in _LABEL_NAME_CHARS for ch in name)


def _absent_labels(node: Node) -> Labels:
    """The labels absent() gives its 1: those the selector fixes with a single = matcher."""
    selector = node.vector.selector if isinstance(node, MatrixSel) else (node.selector if isinstance(node, VectorSel) else None)
    if selector is None:
        return lbl.EMPTY
    result: dict[str, str] = {}
    seen: set[str] = set()
    for m in selector.matchers:
        if m.name == lbl.NAME:
            continue
        if m.op == "=" and m.name not in seen:
            result[m.name] = m.value
            seen.add(m.name)
        else:
            result.pop(m.name, None)
    return lbl.make(result)


def _date(name: str, seconds: float) -> float:
    if not math.isfinite(seconds):
        return math.nan
    try:
        moment = datetime.fromtimestamp(int(seconds), tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return math.nan
    if name == "days_in_month":
        return float(calendar.monthrange(moment.year, moment.month)[1])
    if name == "day_of_month":
        return float(moment.day)
    if name == "day_of_week":
        return float((moment.weekday() + 1) % 7)  # Go: Sunday is 0
    if name == "day_of_year":
        return float(moment.timetuple().tm_yday)
    if name == "hour":
        return float(moment.hour)
    if name == "minute":
        return float(moment.minute)
    if name == "month":
        return float(moment.month)
    return float(moment.year)


# -- binary operators ---------------------------------------------------------------------


def _vector_scalar(op: str, vec: Vector, scalar: float, swap: bool, return_bool: bool) -> Vector:
    out: Vector = []
    compare = _COMPARE.get(op)
    arith = _ARITH.get(op)
    for labels, v in vec:
        lv, rv = (scalar, v) if swap else (v, scalar)
        if compare is not None:
            keep = compare(lv, rv)
            value = v  # a filter keeps the vector's value, whichever side it is on
        else:
            assert arith is not None
            value = float(arith(lv, rv))
            keep = True
        if return_bool:
            value = 1.0 if keep else 0.0
            keep = True
        if keep:
            out.append((lbl.drop_name(labels) if (op in _DROPS_NAME or return_bool) else labels, value))
    return out


def _signature_fn(node: Binary):  # type: ignore[no-untyped-def]
    names = frozenset(node.matching)
    if node.on:
        return lambda labels: tuple(p for p in labels if p[0] in names)
    ignored = names | {lbl.NAME}
    return lambda labels: tuple(p for p in labels if p[0] not in ignored)


def _set_op(op: str, lhs: Vector, rhs: Vector, node: Binary) -> Vector:
    sig = _signature_fn(node)
    if op == "and":
        if not lhs or not rhs:
            return []
        right = {sig(labels) for labels, _ in rhs}
        return [s for s in lhs if sig(s[0]) in right]
    if op == "or":
        if not lhs:
            return list(rhs)
        if not rhs:
            return list(lhs)
        left = {sig(labels) for labels, _ in lhs}
        return list(lhs) + [s for s in rhs if sig(s[0]) not in left]
    # unless
    if not lhs or not rhs:
        return list(lhs)
    right = {sig(labels) for labels, _ in rhs}
    return [s for s in lhs if sig(s[0]) not in right]


def _match_labels(labels: Labels, node: Binary) -> Labels:
    names = frozenset(node.matching)
    if node.on:
        return tuple(p for p in labels if p[0] in names)
    return tuple(p for p in labels if p[0] not in names and p[0] != lbl.NAME)


def _vector_binop(op: str, lhs: Vector, rhs: Vector, node: Binary) -> Vector:
    if not lhs or not rhs:
        return []
    card = node.card
    if card == ONE_TO_MANY:
        lhs, rhs = rhs, lhs
    sig = _signature_fn(node)
    right: dict[Labels, tuple[Labels, float]] = {}
    for sample in rhs:
        key = sig(sample[0])
        dup = right.get(key)
        if dup is not None:
            side = "left" if card == ONE_TO_MANY else "right"
            raise PromQLError(
                f"found duplicate series for the match group {lbl.show(_match_labels(sample[0], node))} on the {side} "
                f"hand-side of the operation: [{lbl.show(sample[0])}, {lbl.show(dup[0])}];many-to-many matching not "
                "allowed: matching labels must be unique on one side")
        right[key] = sample
    compare = _COMPARE.get(op)
    arith = _ARITH.get(op)
    matched: dict[Labels, set[Labels] | None] = {}
    out: Vector = []
    include = node.include
    names = frozenset(node.matching)
    for labels, value in lhs:
        key = sig(labels)
        match = right.get(key)
        if match is None:
            continue
        r_labels, r_value = match
        vl, vr = (r_value, value) if card == ONE_TO_MANY else (value, r_value)
        if compare is not None:
            keep = compare(vl, vr)
            result = vl
        else:
            assert arith is not None
            result = float(arith(vl, vr))
            keep = True
        if node.return_bool:
            result = 1.0 if keep else 0.0
        elif not keep:
            continue
        # The result's labels: the "many" side's, less the name for arithmetic, only the
        # on() labels (or less the ignoring() ones) for one-to-one, plus group_x labels
        # taken from the "one" side.
        metric = labels
        if op in _DROPS_NAME:
            metric = lbl.drop_name(metric)
        if card == ONE_TO_ONE:
            metric = lbl.keep(metric, names) if node.on else lbl.without(metric, names)
        for name in include:
            metric = lbl.with_label(metric, name, lbl.get(r_labels, name))
        if node.return_bool:
            metric = lbl.drop_name(metric)
        if card == ONE_TO_ONE:
            if key in matched:
                raise PromQLError("multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)")
            matched[key] = None
        else:
            seen = matched.get(key)
            if seen is None:
                seen = set()
                matched[key] = seen
            elif metric in seen:
                raise PromQLError("multiple matches for labels: grouping labels must ensure unique matches")
            seen.add(metric)
        out.append((metric, result))
    return out


# -- aggregations -------------------------------------------------------------------------


class _Group:
    __slots__ = ("labels", "value", "mean", "count", "heap")

    def __init__(self, labels: Labels, value: float) -> None:
        self.labels = labels
        self.value = value
        self.mean = value
        self.count = 1
        self.heap: list[tuple[Labels, float]] = []


def _aggregate(op: str, grouping: tuple[str, ...], without: bool, param: float, value_label: str, vec: Vector) -> Vector:
    k = 0
    if op in ("topk", "bottomk"):
        if not (param == param and -9.223372036854776e18 <= param <= 9.223372036854776e18):
            raise PromQLError(f"Scalar value {gomath.format_float(param) if param == param else 'NaN'} overflows int64")
        k = int(param)
        if k < 1:
            return []
    names = frozenset(grouping)
    if op == "count_values" and not without:
        names = names | {value_label}
    dropped = names | {lbl.NAME}
    groups: dict[Labels, _Group] = {}
    order: list[_Group] = []
    less = _less_top if op == "topk" else _less_bottom
    for labels, v in vec:
        metric = labels
        if op == "count_values":
            metric = lbl.with_label(labels, value_label, gomath.format_float(v))
        if without:
            key = tuple(p for p in metric if p[0] not in dropped)
        elif names:
            key = tuple(p for p in metric if p[0] in names)
        else:
            key = lbl.EMPTY
        group = groups.get(key)
        if group is None:
            group = _Group(key, v)
            groups[key] = group
            order.append(group)
            if op in ("stddev", "stdvar"):
                group.value = 0.0
            elif op in ("topk", "bottomk", "quantile"):
                group.heap = [(labels, v)]
            elif op == "group":
                group.value = 1.0
            continue
        if op == "sum":
            group.value += v
        elif op == "avg":
            group.count += 1
            mean = group.mean
            if math.isinf(mean):
                if math.isinf(v) and (mean > 0) == (v > 0):
                    continue
                if not math.isinf(v) and v == v:
                    continue
            group.mean = mean + (v / group.count - mean / group.count)
        elif op == "max":
            if group.value < v or group.value != group.value:
                group.value = v
        elif op == "min":
            if group.value > v or group.value != group.value:
                group.value = v
        elif op in ("count", "count_values"):
            group.count += 1
        elif op in ("stddev", "stdvar"):
            group.count += 1
            delta = v - group.mean
            group.mean += delta / group.count
            group.value += delta * (v - group.mean)
        elif op in ("topk", "bottomk"):
            heap = group.heap
            top = heap[0][1]
            beats = top < v if op == "topk" else top > v
            if len(heap) < k or beats or top != top:
                if len(heap) == k:
                    if k == 1:
                        heap[0] = (labels, v)
                        continue
                    _heap_pop(heap, less)
                heap.append((labels, v))
                _heap_up(heap, len(heap) - 1, less)
        elif op == "quantile":
            group.heap.append((labels, v))
    out: Vector = []
    for group in order:
        if op == "avg":
            group.value = group.mean
        elif op in ("count", "count_values"):
            group.value = float(group.count)
        elif op == "stdvar":
            group.value = group.value / group.count
        elif op == "stddev":
            group.value = math.sqrt(group.value / group.count)
        elif op == "topk":
            out.extend(sorted(group.heap, key=lambda s: (s[1] != s[1], -s[1] if s[1] == s[1] else 0.0)))
            continue
        elif op == "bottomk":
            out.extend(sorted(group.heap, key=lambda s: (s[1] != s[1], s[1] if s[1] == s[1] else 0.0)))
            continue
        elif op == "quantile":
            group.value = quantile(param, [v for _, v in group.heap])
        out.append((group.labels, group.value))
    return _check_unique(out)


# Go's container/heap over Prometheus' vectorByValueHeap (topk) and vectorByReverseValueHeap
# (bottomk): which of several equal values topk keeps depends on these exact steps.


def _less_top(a: float, b: float) -> bool:
    return a != a or a < b


def _less_bottom(a: float, b: float) -> bool:
    return a != a or a > b


def _heap_up(heap: list[tuple[Labels, float]], j: int, less) -> None:  # type: ignore[no-untyped-def]
    while j > 0:
        i = (j - 1) // 2
        if not less(heap[j][1], heap[i][1]):
            break
        heap[i], heap[j] = heap[j], heap[i]
        j = i


def _heap_down(heap: list[tuple[Labels, float]], i: int, n: int, less) -> None:  # type: ignore[no-untyped-def]
    while True:
        j1 = 2 * i + 1
        if j1 >= n:
            break
        j = j1
        j2 = j1 + 1
        if j2 < n and less(heap[j2][1], heap[j1][1]):
            j = j2
        if not less(heap[j][1], heap[i][1]):
            break
        heap[i], heap[j] = heap[j], heap[i]
        i = j


def _heap_pop(heap: list[tuple[Labels, float]], less) -> None:  # type: ignore[no-untyped-def]
    n = len(heap) - 1
    heap[0], heap[n] = heap[n], heap[0]
    _heap_down(heap, 0, n, less)
    heap.pop()
