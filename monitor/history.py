"""Each check's recent results, in a bounded ring buffer the rule engine reads.

Samples live in preallocated typed arrays, not as Python objects: 10,000 checks with an
hour of history each would otherwise be millions of tuples that the cyclic garbage
collector walks on every full collection (seconds of stalled probes). Memory is fixed
when the check is configured, so it stays flat however long the daemon runs.
"""

from __future__ import annotations

import math
from array import array
from typing import TypeVar

from monitor.core.results import Outcome, Result


_Column = TypeVar("_Column", array, bytearray)  # type: ignore[type-arg]


class History:
    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._at = array("d", bytes(8 * capacity))
        self._value = array("d", bytes(8 * capacity))  # NaN stands for "no value"
        self._latency = array("d", bytes(8 * capacity))  # NaN for a timed-out run (see add)
        self._up = bytearray(capacity)
        self._next = 0  # slot the next sample goes into
        self._size = 0

    @staticmethod
    def capacity_for(interval: float, window: float, cap: int) -> int:
        """Enough samples to cover ``window`` at ``interval``, plus slack, never above ``cap``."""
        return max(16, min(cap, math.ceil(window / interval) + 2))

    @property
    def capacity(self) -> int:
        return self._capacity

    def add(self, result: Result) -> None:
        i = self._next
        self._at[i] = result.at
        self._value[i] = math.nan if result.value is None else result.value
        # A timed-out run's latency is the timeout, not a measurement: kept as one it would
        # make p95 latency read the timeout during an outage and for a window after it (every
        # window function skips NaN). docs/configuration.md, "Rules".
        self._latency[i] = math.nan if result.outcome is Outcome.TIMEOUT else result.latency
        self._up[i] = result.up
        self._next = (i + 1) % self._capacity
        self._size = min(self._size + 1, self._capacity)

    def __len__(self) -> int:
        return self._size

    def _first_at_or_after(self, since: float) -> int:
        """How many of the newest samples were taken at or after ``since`` (binary search:
        samples are appended in time order)."""
        low, high = 0, self._size  # answer in [low, high]; count k means the newest k
        oldest = self._next - self._size
        while low < high:
            k = (low + high + 1) // 2
            if self._at[(oldest + self._size - k) % self._capacity] >= since:
                low = k
            else:
                high = k - 1
        return low

    def floats(self, name: str, since: float) -> array[float]:
        """One column ("at", "value" or "latency") of the window, oldest first, copied with
        C-level slicing: window functions over an hour of 1 s samples stay cheap."""
        source = {"at": self._at, "value": self._value, "latency": self._latency}[name]
        return self._tail(source, self._first_at_or_after(since))

    def ups(self, since: float) -> bytearray:
        """The window's up flags (1/0), oldest first."""
        return self._tail(self._up, self._first_at_or_after(since))

    def _tail(self, source: _Column, count: int) -> _Column:
        start = (self._next - count) % self._capacity
        if start + count <= self._capacity:
            return source[start:start + count]
        return source[start:] + source[: start + count - self._capacity]
