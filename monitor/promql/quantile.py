"""quantile (aggregation and _over_time) and histogram_quantile over classic buckets,
as Prometheus 2.42's promql/quantile.go computes them."""

from __future__ import annotations

import math

from .gomath import INF, NAN


def _value_order(v: float) -> tuple[bool, float]:
    # Prometheus sorts NaN before every number (vectorByValueHeap.Less).
    return (v == v, v if v == v else 0.0)


def quantile(q: float, values: list[float]) -> float:
    if not values or q != q:
        return NAN
    if q < 0:
        return -INF
    if q > 1:
        return INF
    values.sort(key=_value_order)
    n = float(len(values))
    rank = q * (n - 1)
    lower = max(0.0, math.floor(rank))
    upper = min(n - 1, lower + 1)
    weight = rank - math.floor(rank)
    return values[int(lower)] * (1 - weight) + values[int(upper)] * weight


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """``buckets``: (upper bound, cumulative count) pairs in any order."""
    if q != q:
        return NAN
    if q < 0:
        return -INF
    if q > 1:
        return INF
    buckets.sort(key=lambda b: b[0])
    if not (math.isinf(buckets[-1][0]) and buckets[-1][0] > 0):
        return NAN
    bounds: list[float] = []
    counts: list[float] = []
    for bound, count in buckets:  # coalesce equal upper bounds
        if bounds and bounds[-1] == bound:
            counts[-1] += count
        else:
            bounds.append(bound)
            counts.append(count)
    # Make counts monotonic: a rate over partly updated buckets can dip.
    highest = counts[0]
    for i in range(1, len(counts)):
        if counts[i] > highest:
            highest = counts[i]
        elif counts[i] < highest:
            counts[i] = highest
    if len(bounds) < 2:
        return NAN
    observations = counts[-1]
    if observations == 0:
        return NAN
    rank = q * observations
    # sort.Search over all but the last bucket: the first bucket holding the rank.
    b = len(bounds) - 1
    lo, hi = 0, len(bounds) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if not counts[mid] >= rank:
            lo = mid + 1
        else:
            hi = mid
    b = lo
    if b == len(bounds) - 1:
        return bounds[-2]
    if b == 0 and bounds[0] <= 0:
        return bounds[0]
    start = 0.0
    end = bounds[b]
    count = counts[b]
    if b > 0:
        start = bounds[b - 1]
        count -= counts[b - 1]
        rank -= counts[b - 1]
    return start + (end - start) * (rank / count)
