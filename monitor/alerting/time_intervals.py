"""Alertmanager ``time_intervals``: named recurring windows that routes mute or activate on.

```yaml
time_intervals:
  - name: sunday-maintenance
    time_intervals:
      - weekdays: [sunday]
        times: [{start_time: "02:00", end_time: "04:00"}]
        location: UTC
```

Semantics follow Alertmanager: within one entry every given field must hold (a field left
out holds always); a named interval is active when any of its entries is. Ranges such as
``monday:friday`` are inclusive; ``end_time`` is exclusive and may be ``24:00``. Everything is
evaluated on the wall clock of the entry's ``location`` (default UTC), so "09:00-17:00
Europe/Berlin" follows the clocks across daylight-saving changes.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BeforeValidator, Field, PrivateAttr, field_validator, model_validator

from monitor.core.model import Model

# Alertmanager numbers weekdays from Sunday = 0, so `sunday:saturday` is the whole week and
# `saturday:sunday` is an error - kept identical so configs mean the same in both.
WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
MONTHS = (
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
)  # fmt: skip

_TIME = re.compile(r"^(\d{2}):(\d{2})$")

Span = tuple[int, int]


def _as_text(value: Any) -> Any:
    # YAML reads `years: [2026]` and `days_of_month: [1]` as integers; they mean the same thing.
    if isinstance(value, list):
        return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
    return value


RangeList = Annotated[list[str], BeforeValidator(_as_text)]


def parse_clock(text: str, *, allow_24: bool) -> int:
    """Minutes since midnight for ``HH:MM``; ``24:00`` only where an end is meant."""
    found = _TIME.match(text.strip())
    if not found:
        raise ValueError(f"invalid time {text!r} (expected HH:MM, e.g. 02:00)")
    hours, minutes = int(found.group(1)), int(found.group(2))
    if minutes > 59 or hours > 24 or (hours == 24 and (minutes or not allow_24)):
        raise ValueError(f"invalid time {text!r} (00:00 to 23:59, or 24:00 as an end time)")
    return hours * 60 + minutes


def _split(text: str) -> tuple[str, str]:
    begin, sep, end = text.strip().partition(":")
    return (begin.strip(), end.strip()) if sep else (begin.strip(), begin.strip())


def _named(text: str, names: tuple[str, ...], kind: str, first: int) -> int:
    word = text.lower()
    if word in names:
        return names.index(word) + first
    if word.isdigit() and kind == "month" and 1 <= int(word) <= 12:
        return int(word)
    raise ValueError(f"invalid {kind} {text!r} (one of {', '.join(names)})")


def parse_weekdays(items: list[str]) -> list[Span]:
    spans = []
    for item in items:
        begin, end = (_named(part, WEEKDAYS, "weekday", 0) for part in _split(item))
        if begin > end:
            raise ValueError(f"weekday range {item!r}: start day cannot be after end day (weeks start on sunday)")
        spans.append((begin, end))
    return spans


def parse_months(items: list[str]) -> list[Span]:
    spans = []
    for item in items:
        begin, end = (_named(part, MONTHS, "month", 1) for part in _split(item))
        if begin > end:
            raise ValueError(f"month range {item!r}: start month cannot be after end month")
        spans.append((begin, end))
    return spans


def _integer(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"invalid {what} {text!r} (expected a whole number)") from None


def parse_days_of_month(items: list[str]) -> list[Span]:
    spans = []
    for item in items:
        begin_text, end_text = _split(item)
        begin, end = _integer(begin_text, "day of month"), _integer(end_text, "day of month")
        for day in (begin, end):
            if day == 0 or not -31 <= day <= 31:
                raise ValueError(
                    f"day of month {day} in {item!r} is out of range (1 to 31, or -31 to -1 counting from the end)"
                )
        # Compare as positions in a 31-day month so "-3:-1" and "25:-1" are valid, "-1:25" is not.
        if (begin if begin > 0 else 32 + begin) > (end if end > 0 else 32 + end):
            raise ValueError(f"day-of-month range {item!r}: start day cannot be after end day")
        spans.append((begin, end))
    return spans


def parse_years(items: list[str]) -> list[Span]:
    spans = []
    for item in items:
        begin_text, end_text = _split(item)
        begin, end = _integer(begin_text, "year"), _integer(end_text, "year")
        if begin <= 0 or end <= 0:
            raise ValueError(f"year range {item!r}: years must be positive")
        if begin > end:
            raise ValueError(f"year range {item!r}: start year cannot be after end year")
        spans.append((begin, end))
    return spans


def load_location(name: str | None) -> tzinfo | None:
    """The zone for ``name``; None means the machine's local zone (Alertmanager's ``Local``)."""
    if name is None or name == "UTC":
        return timezone.utc
    if name == "Local":
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin, or UTC)") from None


def _in(value: int, spans: list[Span]) -> bool:
    return any(begin <= value <= end for begin, end in spans)


class TimeRange(Model):
    """``{start_time: "02:00", end_time: "04:00"}``: start inclusive, end exclusive."""

    start_time: str
    end_time: str

    @field_validator("start_time")
    @classmethod
    def _start(cls, text: str) -> str:
        parse_clock(text, allow_24=False)
        return text

    @field_validator("end_time")
    @classmethod
    def _end(cls, text: str) -> str:
        parse_clock(text, allow_24=True)
        return text

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        if self.start_minute >= self.end_minute:
            # A window across midnight is two ranges in Alertmanager too ("22:00-24:00", "00:00-02:00").
            raise ValueError(
                f"start_time {self.start_time} must be before end_time {self.end_time} "
                "(split a window across midnight into two ranges)"
            )
        return self

    @property
    def start_minute(self) -> int:
        return parse_clock(self.start_time, allow_24=False)

    @property
    def end_minute(self) -> int:
        return parse_clock(self.end_time, allow_24=True)


class TimeIntervalSpec(Model):
    """One entry of a named interval: all given fields must hold at once."""

    times: list[TimeRange] | None = None
    weekdays: RangeList | None = None
    days_of_month: RangeList | None = None
    months: RangeList | None = None
    years: RangeList | None = None
    location: str | None = None

    # Parsed once at load; `active()` runs on every group flush.
    _weekdays: list[Span] | None = PrivateAttr(default=None)
    _days: list[Span] | None = PrivateAttr(default=None)
    _months: list[Span] | None = PrivateAttr(default=None)
    _years: list[Span] | None = PrivateAttr(default=None)
    _zone: tzinfo | None = PrivateAttr(default=None)

    @field_validator("weekdays")
    @classmethod
    def _check_weekdays(cls, items: list[str] | None) -> list[str] | None:
        if items is not None:
            parse_weekdays(items)
        return items

    @field_validator("days_of_month")
    @classmethod
    def _check_days(cls, items: list[str] | None) -> list[str] | None:
        if items is not None:
            parse_days_of_month(items)
        return items

    @field_validator("months")
    @classmethod
    def _check_months(cls, items: list[str] | None) -> list[str] | None:
        if items is not None:
            parse_months(items)
        return items

    @field_validator("years")
    @classmethod
    def _check_years(cls, items: list[str] | None) -> list[str] | None:
        if items is not None:
            parse_years(items)
        return items

    @field_validator("location")
    @classmethod
    def _check_location(cls, name: str | None) -> str | None:
        load_location(name)
        return name

    def model_post_init(self, context: Any, /) -> None:
        self._weekdays = parse_weekdays(self.weekdays) if self.weekdays is not None else None
        self._days = parse_days_of_month(self.days_of_month) if self.days_of_month is not None else None
        self._months = parse_months(self.months) if self.months is not None else None
        self._years = parse_years(self.years) if self.years is not None else None
        self._zone = load_location(self.location)

    def local_time(self, at_unix: float) -> datetime:
        """``at_unix`` on this entry's wall clock."""
        if self._zone is None:
            return datetime.fromtimestamp(at_unix).astimezone()  # the OS applies its own DST rules
        return datetime.fromtimestamp(at_unix, tz=self._zone)

    def active(self, at_unix: float) -> bool:
        now = self.local_time(at_unix)
        if self.times is not None:
            minute = now.hour * 60 + now.minute
            if not any(r.start_minute <= minute < r.end_minute for r in self.times):
                return False
        if self._weekdays is not None and not _in((now.weekday() + 1) % 7, self._weekdays):
            return False
        if self._days is not None and not self._day_of_month_matches(now):
            return False
        if self._months is not None and not _in(now.month, self._months):
            return False
        if self._years is not None and not _in(now.year, self._years):
            return False
        return True

    def _day_of_month_matches(self, now: datetime) -> bool:
        assert self._days is not None
        length = calendar.monthrange(now.year, now.month)[1]
        for begin, end in self._days:
            # Negative days count back from the month's last day: -1 is the 31st in January
            # and the 28th or 29th in February.
            first = begin if begin > 0 else length + begin + 1
            last = end if end > 0 else length + end + 1
            if first > length:
                continue  # "30:31" simply never holds in February; it must not spill into March
            if max(first, 1) <= now.day <= min(last, length):
                return True
        return False


class TimeInterval(Model):
    """A named interval that routes refer to in ``mute_time_intervals`` / ``active_time_intervals``."""

    name: str = Field(min_length=1)
    time_intervals: list[TimeIntervalSpec] = Field(default_factory=list)

    def active(self, at_unix: float) -> bool:
        """Whether ``at_unix`` (unix seconds) falls inside any of the entries."""
        return any(spec.active(at_unix) for spec in self.time_intervals)


@dataclass(frozen=True)
class IntervalMuter:
    """A route's time intervals, resolved: a :class:`monitor.alerting.muting.Muter` for the
    route's groups (Alertmanager's TimeMuteStage and TimeActiveStage).

    It mutes inside any ``mute`` interval, and outside all ``active`` intervals when there are
    some. Labels play no part: time intervals hold back a whole route.
    """

    mute: tuple[TimeInterval, ...] = ()
    active: tuple[TimeInterval, ...] = ()

    def mutes(self, labels: Mapping[str, str], now: float) -> bool:
        if any(interval.active(now) for interval in self.mute):
            return True
        return bool(self.active) and not any(interval.active(now) for interval in self.active)
