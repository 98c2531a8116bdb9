"""Go's ``time.Time`` and ``time.Duration`` for templates: ``.StartsAt``, ``date``, ``tz``,
``since``, and Go's reference-time layouts (``"2006-01-02 15:04:05"``)."""

from __future__ import annotations

import time
import zoneinfo
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, ClassVar

from monitor.alerting.templating.values import ExecError, GoStruct

_NANOS = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ZERO = datetime(1, 1, 1, tzinfo=UTC)
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")  # Python's order


class Month(int):
    """``time.Month``: an int that prints as its name."""

    METHODS: ClassVar[dict[str, Any]] = {"String": lambda m: _MONTHS[m - 1]}


class Weekday(int):
    """``time.Weekday`` (Sunday = 0, as Go): an int that prints as its name."""

    METHODS: ClassVar[dict[str, Any]] = {"String": lambda d: _DAYS[(d - 1) % 7]}


class GoDuration(int):
    """``time.Duration``: nanoseconds; prints as ``1h2m3.5s``."""

    GO_TYPE = "time.Duration"
    METHODS: ClassVar[dict[str, Any]] = {}


class GoTime(GoStruct):
    """``time.Time`` at nanosecond precision in a zone."""

    GO_TYPE = "time.Time"

    def __init__(self, seconds: int, nanos: int = 0, zone: tzinfo = UTC) -> None:
        self.seconds = seconds  # since the Unix epoch
        self.nanos = nanos  # 0..999,999,999
        self.zone = zone

    @classmethod
    def from_unix(cls, value: float, zone: tzinfo = UTC) -> GoTime:
        whole = int(value // 1)
        return cls(whole, int(round((value - whole) * _NANOS)) % _NANOS, zone)

    @classmethod
    def zero(cls) -> GoTime:
        return cls(int((_ZERO - _EPOCH).total_seconds()))

    def datetime(self) -> datetime:
        return (_EPOCH + timedelta(seconds=self.seconds)).astimezone(self.zone)

    def in_zone(self, zone: tzinfo) -> GoTime:
        return GoTime(self.seconds, self.nanos, zone)

    def total_nanos(self) -> int:
        return self.seconds * _NANOS + self.nanos

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GoTime) and self.total_nanos() == other.total_nanos()

    def __hash__(self) -> int:
        return hash(self.total_nanos())


def format_time(t: GoTime, layout: str) -> str:
    """``t.Format(layout)``: Go's reference time ``Mon Jan 2 15:04:05 MST 2006``."""
    dt = t.datetime()
    out: list[str] = []
    i = 0
    n = len(layout)
    while i < n:
        chunk, size = _chunk(layout, i)
        if chunk is None:
            out.append(layout[i])
            i += 1
            continue
        out.append(_render(chunk, dt, t.nanos))
        i += size
    return "".join(out)


_FIXED = (
    ("January", "long_month"), ("Jan", "month_abbr"), ("Monday", "long_day"), ("Mon", "day_abbr"),
    ("MST", "zone"), ("2006", "year"), ("002", "yday0"), ("__2", "yday_"), ("01", "month0"),
    ("02", "day0"), ("03", "hour12_0"), ("04", "minute0"), ("05", "second0"), ("06", "year2"),
    ("15", "hour"), ("_2", "day_"), ("PM", "PM"), ("pm", "pm"),
    ("-07:00:00", "tz-::"), ("-070000", "tz-6"), ("-07:00", "tz-:"), ("-0700", "tz-4"), ("-07", "tz-2"),
    ("Z07:00:00", "tzZ::"), ("Z070000", "tzZ6"), ("Z07:00", "tzZ:"), ("Z0700", "tzZ4"), ("Z07", "tzZ2"),
    ("1", "month"), ("2", "day"), ("3", "hour12"), ("4", "minute"), ("5", "second"),
)


def _chunk(layout: str, i: int) -> tuple[str | None, int]:
    if layout[i] in ".," and i + 1 < len(layout) and layout[i + 1] in "09":
        digit = layout[i + 1]
        j = i + 1
        while j < len(layout) and layout[j] == digit:
            j += 1
        if not (j < len(layout) and layout[j].isdigit()):
            return f"frac{digit}{j - i - 1}{layout[i]}", j - i
    if layout.startswith("_2006", i):
        return None, 1  # a literal "_" before the year
    for text, name in _FIXED:
        if layout.startswith(text, i):
            if name in ("day_abbr", "long_day") and layout.startswith("Month", i):
                continue
            return name, len(text)
    return None, 1


def _offset(dt: datetime) -> int:
    delta = dt.utcoffset()
    return int(delta.total_seconds()) if delta is not None else 0


def _render(chunk: str, dt: datetime, nanos: int) -> str:
    hour12 = dt.hour % 12 or 12
    simple = {
        "long_month": _MONTHS[dt.month - 1], "month_abbr": _MONTHS[dt.month - 1][:3],
        "long_day": _DAYS[dt.weekday()], "day_abbr": _DAYS[dt.weekday()][:3],
        "year": f"{dt.year:04d}", "year2": f"{dt.year % 100:02d}", "month0": f"{dt.month:02d}",
        "month": str(dt.month), "day0": f"{dt.day:02d}", "day": str(dt.day), "day_": f"{dt.day:2d}",
        "yday0": f"{dt.timetuple().tm_yday:03d}", "yday_": f"{dt.timetuple().tm_yday:3d}",
        "hour": f"{dt.hour:02d}", "hour12_0": f"{hour12:02d}", "hour12": str(hour12),
        "minute0": f"{dt.minute:02d}", "minute": str(dt.minute), "second0": f"{dt.second:02d}",
        "second": str(dt.second), "PM": "PM" if dt.hour >= 12 else "AM", "pm": "pm" if dt.hour >= 12 else "am",
    }
    if chunk in simple:
        return simple[chunk]
    if chunk == "zone":
        # Go prints the zone's abbreviation, or the offset when the zone has none.
        return dt.tzname() or _zone_text(_offset(dt), "", False)
    if chunk.startswith("tz"):
        offset = _offset(dt)
        style = chunk[2:]
        if style.startswith("Z"):
            if offset == 0:
                return "Z"
            style = style[1:]
        else:
            style = style[1:]
        colon = ":" in style
        seconds = style in ("::", "6")
        hours_only = style == "2"
        return _zone_text(offset, ":" if colon else "", seconds, hours_only)
    if chunk.startswith("frac"):
        digit, count, sep = chunk[4], int(chunk[5:-1]), chunk[-1]
        digits = f"{nanos:09d}"[:count]
        if digit == "9":
            digits = digits.rstrip("0")
            return sep + digits if digits else ""
        return sep + digits
    return ""


def _zone_text(offset: int, colon: str, seconds: bool, hours_only: bool = False) -> str:
    sign = "-" if offset < 0 else "+"
    offset = abs(offset)
    hours, rest = divmod(offset, 3600)
    minutes, secs = divmod(rest, 60)
    if hours_only:
        return f"{sign}{hours:02d}"
    text = f"{sign}{hours:02d}{colon}{minutes:02d}"
    return text + f"{colon}{secs:02d}" if seconds else text


def time_string(t: GoTime) -> str:
    """``t.String()``: ``2006-01-02 15:04:05.999999999 -0700 MST``."""
    return format_time(t, "2006-01-02 15:04:05.999999999 -0700 MST")


def duration_string(value: int) -> str:
    """``d.String()``: ``1h2m3.5s``, ``1.5ms``, ``0s``."""
    if value == 0:
        return "0s"
    sign = "-" if value < 0 else ""
    u = abs(value)
    if u < _NANOS:
        if u < 1000:
            return f"{sign}{u}ns"
        if u < 1_000_000:
            return f"{sign}{_fraction(u, 3)}µs"
        return f"{sign}{_fraction(u, 6)}ms"
    seconds, frac = divmod(u, _NANOS)
    text = f"{_fraction(seconds % 60 * _NANOS + frac, 9)}s"
    minutes = seconds // 60
    if minutes:
        text = f"{minutes % 60}m{text}"
        hours = minutes // 60
        if hours:
            text = f"{hours}h{text}"
    return sign + text


def _fraction(value: int, digits: int) -> str:
    whole, frac = divmod(value, 10**digits)
    tail = f"{frac:0{digits}d}".rstrip("0")
    return f"{whole}.{tail}" if tail else str(whole)


def load_zone(name: str) -> tzinfo:
    """``time.LoadLocation``: "" and "UTC" are UTC, "Local" the machine's zone, else IANA."""
    if name in ("", "UTC"):
        return UTC
    if name == "Local":
        return local_zone()
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ExecError(f"unknown time zone {name}") from None


def local_zone() -> tzinfo:
    zone = datetime.now().astimezone().tzinfo
    return zone if zone is not None else UTC


def now() -> GoTime:
    return GoTime.from_unix(time.time(), local_zone())


def _time_arg(value: Any, what: str) -> GoTime:  # noqa: ARG001 - what: for the reader
    if not isinstance(value, GoTime):
        raise ExecError(f"wrong type for value; expected time.Time; got {type(value).__name__}")
    return value


def _duration_arg(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    raise ExecError("wrong type for value; expected time.Duration")


GoTime.METHODS = {
    "String": time_string,
    "Format": lambda t, layout: format_time(t, _str(layout)),
    "Unix": lambda t: t.seconds,
    "UnixMilli": lambda t: t.total_nanos() // 1_000_000,
    "UnixNano": lambda t: t.total_nanos(),
    "UTC": lambda t: t.in_zone(UTC),
    "Local": lambda t: t.in_zone(local_zone()),
    "IsZero": lambda t: t == GoTime.zero(),
    "Year": lambda t: t.datetime().year,
    "Month": lambda t: Month(t.datetime().month),
    "Day": lambda t: t.datetime().day,
    "Hour": lambda t: t.datetime().hour,
    "Minute": lambda t: t.datetime().minute,
    "Second": lambda t: t.datetime().second,
    "Nanosecond": lambda t: t.nanos,
    "YearDay": lambda t: t.datetime().timetuple().tm_yday,
    "Weekday": lambda t: Weekday((t.datetime().weekday() + 1) % 7),
    "Add": lambda t, d: _add(t, _duration_arg(d)),
    "Sub": lambda t, u: GoDuration(t.total_nanos() - _time_arg(u, "Sub").total_nanos()),
    "Before": lambda t, u: t.total_nanos() < _time_arg(u, "Before").total_nanos(),
    "After": lambda t, u: t.total_nanos() > _time_arg(u, "After").total_nanos(),
    "Equal": lambda t, u: t.total_nanos() == _time_arg(u, "Equal").total_nanos(),
}

GoDuration.METHODS = {
    "String": lambda d: duration_string(int(d)),
    "Seconds": lambda d: int(d) / _NANOS,
    "Minutes": lambda d: int(d) / (60 * _NANOS),
    "Hours": lambda d: int(d) / (3600 * _NANOS),
    "Milliseconds": lambda d: int(d) // 1_000_000,
    "Microseconds": lambda d: int(d) // 1000,
    "Nanoseconds": lambda d: int(d),
    "Round": lambda d, m: GoDuration(_round(int(d), _duration_arg(m))),
    "Truncate": lambda d, m: GoDuration(int(d) if _duration_arg(m) <= 0 else int(d) - int(d) % int(m)),
}


def _add(t: GoTime, nanos: int) -> GoTime:
    total = t.total_nanos() + nanos
    return GoTime(total // _NANOS, total % _NANOS, t.zone)


def _round(value: int, multiple: int) -> int:
    if multiple <= 0:
        return value
    remainder = abs(value) % multiple
    magnitude = abs(value) - remainder + (multiple if remainder + remainder >= multiple else 0)
    return -magnitude if value < 0 else magnitude


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ExecError("wrong type for value; expected string")
    return value
