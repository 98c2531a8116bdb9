"""Each check's recent results, in a bounded ring buffer the rule engine reads.

Samples are small tuples, and the buffer's capacity is fixed when the check is configured,
so memory stays flat however long the daemon runs.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from typing import NamedTuple

from monitor.results import Result


class Sample(NamedTuple):
    at: float  # wall-clock seconds
    up: bool
    value: float | None
    latency: float


class History:
    def __init__(self, capacity: int) -> None:
        self._samples: deque[Sample] = deque(maxlen=capacity)

    @staticmethod
    def capacity_for(interval: float, window: float, cap: int) -> int:
        """Enough samples to cover ``window`` at ``interval``, plus slack, never above ``cap``."""
        return max(16, min(cap, math.ceil(window / interval) + 2))

    @property
    def capacity(self) -> int:
        return self._samples.maxlen or 0

    def add(self, result: Result) -> None:
        self._samples.append(Sample(result.at, result.up, result.value, result.latency))

    def __len__(self) -> int:
        return len(self._samples)

    def latest(self) -> Sample | None:
        return self._samples[-1] if self._samples else None

    def window(self, since: float) -> Iterator[Sample]:
        """Samples taken at or after ``since``, oldest first."""
        # Walk from the newest end: windows are usually a small tail of the buffer.
        tail: list[Sample] = []
        for sample in reversed(self._samples):
            if sample.at < since:
                break
            tail.append(sample)
        return reversed(tail)
