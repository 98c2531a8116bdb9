"""Functions over a range vector, one series' samples at a time, as Prometheus 2.42 computes them.

``ts`` are integer milliseconds, ``vs`` the float values (staleness markers already removed);
each returns the function's value for the series, or None where Prometheus drops the series
(fewer than two samples for a rate, say). Float operations follow Go's order so results agree
to the last bit where Go's and C's math libraries do.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .gomath import NAN, kahan_inc
from .quantile import quantile


def extrapolated_rate(ts: Sequence[int], vs: Sequence[float], range_start: int, range_end: int,
                      range_seconds: float, is_counter: bool, is_rate: bool) -> float | None:
    n = len(ts)
    if n < 2:
        return None
    first = vs[0]
    result = vs[-1] - first
    if is_counter:
        prev = first
        for v in vs:  # the first compares with itself: never a reset
            if v < prev:  # a counter reset: the counter went on from zero
                result += prev
            prev = v
    duration_to_start = (ts[0] - range_start) / 1000
    duration_to_end = (range_end - ts[-1]) / 1000
    sampled = (ts[-1] - ts[0]) / 1000
    average = sampled / (n - 1)
    if is_counter and result > 0 and first >= 0:
        # A counter cannot go below zero: extrapolate no further back than where it would
        # have been zero.
        duration_to_zero = sampled * (first / result)
        if duration_to_zero < duration_to_start:
            duration_to_start = duration_to_zero
    threshold = average * 1.1
    extrapolate_to = sampled
    extrapolate_to += duration_to_start if duration_to_start < threshold else average / 2
    extrapolate_to += duration_to_end if duration_to_end < threshold else average / 2
    factor = extrapolate_to / sampled
    if is_rate:
        factor /= range_seconds
    return result * factor


def instant_value(ts: Sequence[int], vs: Sequence[float], is_rate: bool) -> float | None:
    if len(ts) < 2:
        return None
    last, previous = vs[-1], vs[-2]
    if is_rate and last < previous:
        result = last
    else:
        result = last - previous
    interval = ts[-1] - ts[-2]
    if interval == 0:
        return None
    if is_rate:
        result /= interval / 1000
    return result


def linear_regression(ts: Sequence[int], vs: Sequence[float], intercept_time: int) -> tuple[float, float]:
    n = 0.0
    sum_x = c_x = sum_y = c_y = sum_xy = c_xy = sum_x2 = c_x2 = 0.0
    init_y = vs[0]
    const_y = True
    for i, (t, v) in enumerate(zip(ts, vs)):
        if const_y and i > 0 and v != init_y:
            const_y = False
        n += 1.0
        x = (t - intercept_time) / 1e3
        sum_x, c_x = kahan_inc(x, sum_x, c_x)
        sum_y, c_y = kahan_inc(v, sum_y, c_y)
        sum_xy, c_xy = kahan_inc(x * v, sum_xy, c_xy)
        sum_x2, c_x2 = kahan_inc(x * x, sum_x2, c_x2)
    if const_y:
        if math.isinf(init_y):
            return NAN, NAN
        return 0.0, init_y
    sum_x += c_x
    sum_y += c_y
    sum_xy += c_xy
    sum_x2 += c_x2
    cov_xy = sum_xy - sum_x * sum_y / n
    var_x = sum_x2 - sum_x * sum_x / n
    slope = cov_xy / var_x if var_x != 0 else (NAN if cov_xy == 0 else math.copysign(math.inf, cov_xy))
    intercept = sum_y / n - slope * sum_x / n
    return slope, intercept


def avg_over_time(vs: Sequence[float]) -> float:
    mean = count = c = 0.0
    for v in vs:
        count += 1
        if math.isinf(mean):
            if math.isinf(v) and (mean > 0) == (v > 0):
                continue
            if not math.isinf(v) and v == v:
                continue
        mean, c = kahan_inc(v / count - mean / count, mean, c)
    if math.isinf(mean):
        return mean
    return mean + c


def sum_over_time(vs: Sequence[float]) -> float:
    total = c = 0.0
    for v in vs:
        total, c = kahan_inc(v, total, c)
    if math.isinf(total):
        return total
    return total + c


def max_over_time(vs: Sequence[float]) -> float:
    best = vs[0]
    for v in vs:
        if v > best or best != best:
            best = v
    return best


def min_over_time(vs: Sequence[float]) -> float:
    best = vs[0]
    for v in vs:
        if v < best or best != best:
            best = v
    return best


def stdvar_over_time(vs: Sequence[float]) -> float:
    count = mean = c_mean = aux = c_aux = 0.0
    for v in vs:
        count += 1
        delta = v - (mean + c_mean)
        mean, c_mean = kahan_inc(delta / count, mean, c_mean)
        aux, c_aux = kahan_inc(delta * (v - (mean + c_mean)), aux, c_aux)
    return (aux + c_aux) / count


def stddev_over_time(vs: Sequence[float]) -> float:
    return math.sqrt(stdvar_over_time(vs))


def changes(vs: Sequence[float]) -> float:
    count = 0
    prev = vs[0]
    for v in vs[1:]:
        if v != prev and not (v != v and prev != prev):
            count += 1
        prev = v
    return float(count)


def resets(vs: Sequence[float]) -> float:
    count = 0
    prev = vs[0]
    for v in vs[1:]:
        if v < prev:
            count += 1
        prev = v
    return float(count)


def quantile_over_time(q: float, vs: Sequence[float]) -> float:
    return quantile(q, list(vs))
