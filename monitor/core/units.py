"""Units of the numbers a check or a rule produces, and how they read to a person.

Each kind's ``value`` has one unit (the table beside ``PROBES`` in monitor/probes/__init__.py,
overridable per check with ``unit:``); a rule's compared value has the unit of what it
compared (``latency`` is seconds whatever the kind). The status page, annotation templates
(``$check.valueText``, ``$valueText``) and notifications all format through ``format_quantity``,
so "3.2 s" or "12 days" reads the same everywhere (docs/configuration.md, "Units").
"""

from __future__ import annotations

import math
from typing import Literal, get_args

Unit = Literal["", "seconds", "bytes", "percent", "ratio", "days", "count", "status"]
UNITS: tuple[str, ...] = get_args(Unit)


def format_quantity(value: float | None, unit: str = "") -> str:
    """``value`` as a person reads it in ``unit``: "3.2 s", "12 days", "1.5 MiB", "87.5%",
    "HTTP 503"; "" when there is no value; NaN and infinities spelled as Prometheus does."""
    if value is None:
        return ""
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else "+Inf" if value > 0 else "-Inf"
    if unit == "seconds":
        return format_seconds(value)
    if unit == "bytes":
        return _bytes(value)
    if unit == "percent":
        return f"{value:.4g}%"
    if unit == "ratio":
        return f"{value * 100:.4g}%"
    if unit == "days":
        return f"{value:.3g} day" if abs(value) == 1 else f"{value:.3g} days"
    if unit == "status":
        return f"HTTP {value:.0f}" if value.is_integer() and 100 <= value <= 999 else f"{value:g}"
    return f"{value:.4g}"  # count and unitless: Prometheus' %.4g


def format_seconds(seconds: float) -> str:
    """"320 ms", "3.2 s", "12m 30s", "2h 5m", "3d 4h": two units at most past a minute."""
    if not math.isfinite(seconds):
        return format_quantity(seconds)
    sign, s = ("-" if seconds < 0 else ""), abs(seconds)
    if s == 0:
        return "0 s"
    if s < 1:
        return f"{sign}{s * 1000:.3g} ms"
    if s < 60:
        return f"{sign}{s:.3g} s"
    whole = round(s)
    days, hours, minutes, secs = whole // 86400, whole // 3600 % 24, whole // 60 % 60, whole % 60
    if days:
        return f"{sign}{days}d {hours}h" if hours else f"{sign}{days}d"
    if hours:
        return f"{sign}{hours}h {minutes}m" if minutes else f"{sign}{hours}h"
    return f"{sign}{minutes}m {secs}s" if secs else f"{sign}{minutes}m"


def _bytes(value: float) -> str:
    size, sign = abs(value), "-" if value < 0 else ""
    for prefix in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024 or prefix == "PiB":
            return f"{sign}{size:.4g} {prefix}" if prefix != "B" else f"{sign}{size:.0f} B"
        size /= 1024
    raise AssertionError("unreachable")
