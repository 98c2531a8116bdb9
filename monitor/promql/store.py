"""Scraped samples of the series a query can select, for as long as the query looks back.

Each series keeps two arrays, timestamps in integer milliseconds (Prometheus' resolution)
and float64 values, 16 bytes a sample, appended in time order and trimmed from the front.
Which series a query's selectors match is decided once per new label set and remembered,
so a scrape of thousands of series costs a dict lookup per sample.

Staleness follows Prometheus' scrape loop: a series scraped last time and missing from this
scrape, and every series of a failed scrape, gets a staleness marker (a NaN with a special bit
pattern) at the scrape's time; an instant selector does not see a series past its marker.
Samples that carry their own timestamp are not tracked for staleness, as in Prometheus.
"""

from __future__ import annotations

import struct
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence

from . import labels as lbl
from .errors import SeriesLimitError
from .labels import Labels
from .selector import Selector

STALE_NAN: float = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
_STALE_BYTES = struct.pack("<d", STALE_NAN)

# Label sets that no selector matches are remembered too (a target exposes many series the
# query does not read); past this many the memory is cleared and verdicts are taken anew.
_MAX_REJECTED = 100_000


def is_stale(value: float) -> bool:
    return value != value and struct.pack("<d", value) == _STALE_BYTES


def to_ms(seconds: float) -> int:
    return int(round(seconds * 1000))


class Series:
    __slots__ = ("labels", "unnamed", "ts", "values", "has_stale", "last_ts")

    def __init__(self, labels: Labels) -> None:
        self.labels = labels  # with __name__
        self.unnamed = lbl.drop_name(labels)  # what most functions return, computed once
        self.ts = array("q")
        self.values = array("d")
        self.has_stale = False
        self.last_ts = -(2**62)

    def append(self, t: int, value: float) -> bool:
        if t <= self.last_ts:  # out of order or a duplicate timestamp: Prometheus drops it
            return False
        self.ts.append(t)
        self.values.append(value)
        self.last_ts = t
        return True

    def mark_stale(self, t: int) -> None:
        if self.append(t, STALE_NAN):
            self.has_stale = True

    def trim(self, before: int) -> None:
        cut = bisect_left(self.ts, before)
        if cut:
            del self.ts[:cut]
            del self.values[:cut]


_Key = tuple[str, tuple[tuple[str, str], ...]]


class SeriesStore:
    """Samples per matched series, bounded by ``retention`` seconds and ``max_series`` series."""

    def __init__(self, selectors: Sequence[Selector], retention: float, max_series: int) -> None:
        self.selectors = tuple(dict.fromkeys(selectors))
        self.retention_ms = to_ms(retention)
        self.max_series = max_series
        self._series: dict[Labels, Series] = {}
        self._by_selector: dict[Selector, dict[Labels, Series]] = {s: {} for s in self.selectors}
        self._sorted: dict[Selector, list[Series]] = {}
        # (metric name, label pairs as the scrape gave them) -> series, or None for no match.
        self._lookup: dict[_Key, Series | None] = {}
        self._rejected = 0
        self._scraped: set[Labels] = set()  # series of the previous scrape, for staleness
        self.latest_ms: int | None = None

    # -- writing -----------------------------------------------------------------------

    def append_scrape(self, at: float, samples: Iterable[tuple[str, Mapping[str, str], float, float | None]]) -> None:
        """Add one scrape taken at ``at`` (seconds); explicit timestamps are seconds too."""
        now = to_ms(at)
        resolved: list[tuple[Series | Labels, int, float, bool]] = []
        new: dict[Labels, list[_Key]] = {}
        for name, pairs, value, stamp in samples:
            key = (name, tuple(pairs.items()))
            found = self._lookup.get(key, False)
            if found is None:
                continue
            t = now if stamp is None else to_ms(stamp)
            if found is False:
                labels = lbl.with_label(lbl.make(pairs), lbl.NAME, name)
                existing = self._series.get(labels)
                if existing is not None:
                    self._lookup[key] = existing
                    resolved.append((existing, t, value, stamp is None))
                elif labels in new:
                    new[labels].append(key)
                    resolved.append((labels, t, value, stamp is None))
                elif any(s.matches_pairs(labels) for s in self.selectors):
                    new[labels] = [key]
                    resolved.append((labels, t, value, stamp is None))
                else:
                    self._remember_rejected(key)
                continue
            assert isinstance(found, Series)
            resolved.append((found, t, value, stamp is None))
        total = len(self._series) + len(new)
        if total > self.max_series:
            # Prometheus fails a scrape over its sample_limit and marks the target's series
            # stale; the samples kept so far stay.
            self.mark_scrape_failed(at)
            raise SeriesLimitError(
                f"series limit exceeded: {total} series match the query's selectors, over the limit of {self.max_series}")
        for labels, keys in new.items():
            series = self._add_series(labels)
            for key in keys:
                self._lookup[key] = series
        seen: set[Labels] = set()
        for target, t, value, tracked in resolved:
            series = self._series[target] if isinstance(target, tuple) else target
            series.append(t, value)
            if tracked:
                seen.add(series.labels)
        for gone in self._scraped - seen:
            old = self._series.get(gone)
            if old is not None:
                old.mark_stale(now)
        self._scraped = seen
        self._advance(now)

    def mark_scrape_failed(self, at: float) -> None:
        """A failed scrape: every series of the previous scrape ends with a staleness marker."""
        now = to_ms(at)
        for gone in self._scraped:
            series = self._series.get(gone)
            if series is not None:
                series.mark_stale(now)
        self._scraped = set()
        self._advance(now)

    def load(self, labels: Mapping[str, str], t: float, value: float) -> None:
        """Add one sample outside any scrape (tests and replays); ``labels`` include __name__."""
        key_labels = lbl.make(labels)
        series = self._series.get(key_labels)
        if series is None:
            if len(self._series) >= self.max_series:
                raise SeriesLimitError(f"series limit exceeded: over the limit of {self.max_series}")
            series = self._add_series(key_labels)
        if is_stale(value):
            series.mark_stale(to_ms(t))
        else:
            series.append(to_ms(t), value)
        if self.latest_ms is None or to_ms(t) > self.latest_ms:
            self.latest_ms = to_ms(t)

    # -- reading -----------------------------------------------------------------------

    @property
    def series_count(self) -> int:
        return len(self._series)

    @property
    def sample_count(self) -> int:
        return sum(len(s.ts) for s in self._series.values())

    def series_for(self, selector: Selector) -> list[Series]:
        """The stored series ``selector`` matches, in Prometheus' order (sorted by labels)."""
        cached = self._sorted.get(selector)
        if cached is not None:
            return cached
        members = self._by_selector.get(selector)
        if members is None:  # a selector the store was not built for: filter everything
            found = [s for s in self._series.values() if selector.matches_pairs(s.labels)]
            found.sort(key=lambda s: s.labels)
            return found
        found = sorted(members.values(), key=lambda s: s.labels)
        self._sorted[selector] = found
        return found

    def all_series(self) -> list[Series]:
        return sorted(self._series.values(), key=lambda s: s.labels)

    # -- internals ---------------------------------------------------------------------

    def _add_series(self, labels: Labels) -> Series:
        series = Series(labels)
        self._series[labels] = series
        for selector, members in self._by_selector.items():
            if selector.matches_pairs(labels):
                members[labels] = series
                self._sorted.pop(selector, None)
        return series

    def _remember_rejected(self, key: _Key) -> None:
        if self._rejected >= _MAX_REJECTED:
            self._lookup = {k: v for k, v in self._lookup.items() if v is not None}
            self._rejected = 0
        self._lookup[key] = None
        self._rejected += 1

    def _advance(self, now: int) -> None:
        if self.latest_ms is None or now > self.latest_ms:
            self.latest_ms = now
        horizon = now - self.retention_ms
        dead: list[Labels] = []
        for labels, series in self._series.items():
            ts = series.ts
            if ts and ts[0] < horizon:
                series.trim(horizon)
            if not ts or (len(ts) == 1 and is_stale(series.values[0])):
                dead.append(labels)
        if dead:
            self._forget(dead)

    def _forget(self, dead: list[Labels]) -> None:
        gone = set()
        for labels in dead:
            series = self._series.pop(labels)
            gone.add(id(series))
            for selector, members in self._by_selector.items():
                if members.pop(labels, None) is not None:
                    self._sorted.pop(selector, None)
            self._scraped.discard(labels)
        self._lookup = {k: v for k, v in self._lookup.items() if v is None or id(v) not in gone}
