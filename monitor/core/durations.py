"""Durations written the Prometheus way: ``500ms``, ``15s``, ``5m``, ``1h30m``, ``30d``."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31536000.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")


def parse_duration(text: str) -> float:
    """Seconds in ``text``; raises ValueError with a message fit for a config error."""
    text = text.strip()
    pos = 0
    total = 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {text!r} (expected e.g. 500ms, 15s, 5m, 1h30m, 7d)")
    return total


def format_duration(seconds: float) -> str:
    """The shortest exact Prometheus-style spelling of ``seconds`` (for messages and APIs)."""
    if seconds == 0:
        return "0s"
    ms = round(seconds * 1000)
    out = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, ms = divmod(ms, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)


def to_seconds(value: Any) -> Any:
    # A bare number means seconds, as in most YAML configs people already have.
    if isinstance(value, bool):
        raise ValueError("a duration must be a string like 15s, not a boolean")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError(f"a duration must be a string like 15s, not {type(value).__name__}")


# Seconds as a float inside the program; the human spelling on the way out.
Duration = Annotated[float, BeforeValidator(to_seconds), PlainSerializer(format_duration, return_type=str)]
