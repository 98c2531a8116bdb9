"""Which PromQL functions and aggregations the engine supports, with their types."""

from __future__ import annotations

from .nodes import MATRIX, SCALAR, STRING, VECTOR

# Functions that take one instant vector, apply a float function to each value and drop the
# metric name (Prometheus' simpleFunc).
SIMPLE = frozenset({
    "abs", "ceil", "floor", "exp", "ln", "log2", "log10", "sqrt", "sgn",
    "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh",
    "deg", "rad",
})

OVER_TIME = frozenset({
    "avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time",
    "last_over_time", "stddev_over_time", "stdvar_over_time", "present_over_time",
    "changes", "resets", "rate", "irate", "increase", "delta", "idelta", "deriv",
})

DATE = frozenset({"days_in_month", "day_of_month", "day_of_week", "day_of_year", "hour", "minute", "month", "year"})

# name -> return type; argument types are checked by the parser.
RETURNS: dict[str, str] = {
    **{name: VECTOR for name in SIMPLE | OVER_TIME | DATE},
    "quantile_over_time": VECTOR,
    "absent_over_time": VECTOR,
    "predict_linear": VECTOR,
    "absent": VECTOR,
    "clamp": VECTOR,
    "clamp_min": VECTOR,
    "clamp_max": VECTOR,
    "round": VECTOR,
    "histogram_quantile": VECTOR,
    "timestamp": VECTOR,
    "sort": VECTOR,
    "sort_desc": VECTOR,
    "vector": VECTOR,
    "scalar": SCALAR,
    "time": SCALAR,
    "pi": SCALAR,
}

AGGREGATIONS = frozenset({
    "sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values",
})

__all__ = ["AGGREGATIONS", "DATE", "MATRIX", "OVER_TIME", "RETURNS", "SCALAR", "SIMPLE", "STRING", "VECTOR"]
