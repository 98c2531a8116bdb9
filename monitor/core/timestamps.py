"""RFC 3339 timestamps, the one spelling of time in every payload and API we serve.

Two printed forms exist because the formats we speak use both: Alertmanager's API prints
silences with exactly three fraction digits (``12:00:00.000Z``), while Prometheus and
Alertmanager's webhook payloads use Go's RFC3339Nano, which drops trailing zeros
(``12:00:00Z``, ``12:00:00.5Z``). Both are millisecond precision, in UTC with a ``Z``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone


def rfc3339(ts: float, *, fixed_millis: bool = False) -> str:
    """Unix seconds as RFC 3339 UTC; trailing fraction zeros dropped unless ``fixed_millis``."""
    text = datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").removesuffix("+00:00")
    if not fixed_millis and "." in text:
        text = text.rstrip("0").rstrip(".")
    return text + "Z"


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)


def parse_rfc3339(text: str) -> float:
    """Unix seconds from an RFC 3339 timestamp; a zone is required (no guessing local time)."""
    found = _RFC3339.fullmatch(text)
    if found is None:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in found.groups()[:6])
    fraction, zulu, sign, off_h, off_m = found.groups()[6:]
    if zulu:
        tz = UTC
    else:
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        tz = timezone(-offset if sign == "-" else offset)
    try:
        base = datetime(year, month, day, hour, minute, second, tzinfo=tz)
    except ValueError:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}") from None
    # Fractions handled apart: Go clients send nanoseconds, beyond datetime's microseconds.
    return base.timestamp() + (float(fraction) if fraction else 0.0)
