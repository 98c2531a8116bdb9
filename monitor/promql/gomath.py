"""Float arithmetic with Go's (IEEE 754) results where Python raises instead.

Prometheus computes in Go: ``1/0`` is ``+Inf``, ``0/0`` and ``math.Mod(x, 0)`` are ``NaN``,
``math.Log(0)`` is ``-Inf``, overflow gives ``±Inf``. Python raises ZeroDivisionError,
ValueError or OverflowError for the same inputs, so every operator and function of the
engine goes through these.
"""

from __future__ import annotations

import math
from decimal import Decimal

INF = math.inf
NAN = math.nan


def div(a: float, b: float) -> float:
    try:
        return a / b
    except ZeroDivisionError:
        if a != a or a == 0:
            return NAN
        return math.copysign(INF, a) * math.copysign(1.0, b)


def mod(a: float, b: float) -> float:
    try:
        return math.fmod(a, b)
    except ValueError:  # b == 0 or a infinite
        return NAN


def _odd_integer(y: float) -> bool:
    return math.isfinite(y) and y == math.floor(y) and math.fmod(y, 2.0) != 0.0


def power(x: float, y: float) -> float:
    try:
        return math.pow(x, y)
    except ValueError:
        if x == 0 and y < 0:  # Go: ±Inf for odd negative integers, +Inf otherwise
            return math.copysign(INF, x) if _odd_integer(y) else INF
        return NAN  # finite x < 0 with a non-integer y
    except OverflowError:
        return -INF if x < 0 and _odd_integer(y) else INF


def exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return INF


def _log(fn: object, x: float) -> float:
    if x == 0:
        return -INF
    if x < 0 or x != x:
        return NAN
    return fn(x)  # type: ignore[operator,no-any-return]


def ln(x: float) -> float:
    return _log(math.log, x)


def log2(x: float) -> float:
    return _log(math.log2, x)


def log10(x: float) -> float:
    return _log(math.log10, x)


def sqrt(x: float) -> float:
    if x < 0:
        return NAN
    return math.sqrt(x)


def floor(x: float) -> float:
    if not math.isfinite(x):
        return x
    return math.copysign(float(math.floor(x)), x) if x == 0 else float(math.floor(x))


def ceil(x: float) -> float:
    if not math.isfinite(x):
        return x
    result = float(math.ceil(x))
    return math.copysign(result, x) if result == 0 else result  # Go's Ceil(-0.5) is -0


def safe(fn: object, x: float) -> float:
    """A math function with Go's NaN for a domain error and ±Inf for an overflow."""
    try:
        return fn(x)  # type: ignore[operator,no-any-return]
    except ValueError:
        return NAN
    except OverflowError:
        return math.copysign(INF, x)


def sgn(x: float) -> float:
    if x < 0:
        return -1.0
    if x > 0:
        return 1.0
    return x


def kahan_inc(inc: float, total: float, c: float) -> tuple[float, float]:
    """One step of the Neumaier-compensated sum Prometheus uses in the *_over_time functions."""
    t = total + inc
    if abs(total) >= abs(inc):
        c += (total - t) + inc
    else:
        c += (inc - t) + total
    return t, c


def format_float(v: float) -> str:
    """Go's ``strconv.FormatFloat(v, 'f', -1, 64)``: shortest digits, never an exponent."""
    if v != v:
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    text = repr(v)
    if "e" in text:
        text = format(Decimal(text), "f")
    if text.endswith(".0"):
        text = text[:-2]
    return text


def parse_go_float(text: str) -> float | None:
    """Go's ``strconv.ParseFloat(text, 64)``, or None where Go refuses the text."""
    stripped = text.strip()
    if stripped != text or not text or "_" in text:
        return None
    lowered = text.lower().lstrip("+-")
    if lowered.startswith("0x"):
        try:
            return float.fromhex(text)
        except ValueError:
            return None
    if lowered in ("inf", "infinity", "nan"):
        return float(text)
    if not all(ch in "0123456789.eE+-" for ch in text):
        return None
    try:
        return float(text)
    except ValueError:
        return None
