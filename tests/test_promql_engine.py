"""The PromQL evaluator on fixed sample sets: the edge cases Prometheus is known for, with
values worked out from Prometheus 2.42's formulas (promql/functions.go, quantile.go) or taken
from its promql/testdata. Prometheus' own cases run in tests/test_promql_testdata.py."""

from __future__ import annotations

import math
from collections.abc import Iterable

import pytest

from monitor.promql import STALE_NAN, PromQLError, Sample, SeriesStore, compile_query, evaluate


def store_of(series: dict[str, Iterable[tuple[float, float]]]) -> SeriesStore:
    """``{'name{a="b"}': [(seconds, value), ...]}`` loaded as they are (no scrape staleness)."""
    store = SeriesStore([], retention=1e9, max_series=10_000)
    for text, points in series.items():
        name, _, rest = text.partition("{")
        labels = {"__name__": name}
        for pair in filter(None, rest.rstrip("}").split(",")):
            key, _, value = pair.partition("=")
            labels[key.strip()] = value.strip().strip('"')
        for t, v in points:
            store.load(labels, t, v)
    return store


def query(store: SeriesStore, text: str, at: float) -> float | dict[tuple[tuple[str, str], ...], float]:
    result = evaluate(compile_query(text), store, at)
    if isinstance(result, float):
        return result
    assert all(isinstance(s, Sample) for s in result)
    found = {tuple(sorted(s.labels.items())): s.value for s in result}
    assert len(found) == len(result)
    return found


def one(store: SeriesStore, text: str, at: float) -> float:
    result = query(store, text, at)
    assert isinstance(result, dict) and len(result) == 1, result
    return next(iter(result.values()))


# -- rate and friends ----------------------------------------------------------------------

def counter(start: float, first_t: float, last_t: float, step: float = 15, slope: float = 3) -> list[tuple[float, float]]:
    points = []
    t, v = first_t, start
    while t <= last_t:
        points.append((t, v))
        t += step
        v += slope
    return points


def test_rate_extrapolates_to_both_ends_of_the_window_when_samples_are_close_to_them() -> None:
    # Samples at 10s..295s every 15s, 100 + 3 per sample; the window at 300s is [0, 300]:
    # 10s to its start and 5s to its end are under 1.1 x 15s, so both are extrapolated.
    store = store_of({"c": counter(100, 10, 295)})
    assert one(store, "increase(c[5m])", 300) == pytest.approx(57 * 300 / 285)
    assert one(store, "rate(c[5m])", 300) == pytest.approx(0.2)
    assert one(store, "delta(c[5m])", 300) == pytest.approx(60)


def test_rate_extrapolates_half_an_interval_where_the_series_starts_late_in_the_window() -> None:
    # First sample at 100s: 100s from the start is over 1.1 x the 15s average, so only 7.5s.
    store = store_of({"c": counter(118, 100, 295)})
    assert one(store, "increase(c[5m])", 300) == pytest.approx(39 * (195 + 7.5 + 5) / 195)


def test_a_counter_is_not_extrapolated_below_zero() -> None:
    # From 1 rising 3 per 15s, the counter was zero 5s before its first sample (at 10s).
    store = store_of({"c": counter(1, 10, 295)})
    assert one(store, "increase(c[5m])", 300) == pytest.approx(57 * (285 + 5 + 5) / 285)
    # delta() is for gauges: no zero clamp, extrapolated the full 10s.
    assert one(store, "delta(c[5m])", 300) == pytest.approx(57 * 300 / 285)


def test_counter_resets_add_the_value_before_the_reset() -> None:
    store = store_of({"c": [(0, 10), (15, 20), (30, 30), (45, 5), (60, 15)]})
    assert one(store, "increase(c[1m])", 60) == pytest.approx(35)
    assert one(store, "rate(c[1m])", 60) == pytest.approx(35 / 60)
    assert one(store, "resets(c[1m])", 60) == 1
    assert one(store, "changes(c[1m])", 60) == 4
    assert one(store, "irate(c[1m])", 60) == pytest.approx(10 / 15)
    assert one(store, "idelta(c[1m])", 60) == 10
    assert one(store, "delta(c[1m])", 60) == 5
    # irate right after a reset takes the new value as the increase.
    assert one(store, "irate(c[1m])", 45) == pytest.approx(5 / 15)


def test_rate_needs_two_samples_and_drops_the_metric_name() -> None:
    store = store_of({'c{job="a"}': [(0, 1)], 'c{job="b"}': [(0, 1), (30, 4)]})
    # 30s to the window's start, but the counter (1, rising 3 in 30s) was zero 10s earlier.
    assert query(store, "rate(c[1m])", 30) == {(("job", "b"),): pytest.approx(3 * (30 + 10) / 30 / 60)}


def test_range_selector_includes_both_ends_as_prometheus_2_42() -> None:
    store = store_of({"g": [(0, 1), (30, 2), (60, 3)]})
    assert one(store, "count_over_time(g[1m])", 60) == 3
    assert one(store, "count_over_time(g[1m])", 60.001) == 2


def test_deriv_and_predict_linear() -> None:
    store = store_of({"g": [(0, 0), (60, 60), (120, 120)]})
    assert one(store, "deriv(g[5m])", 120) == pytest.approx(1.0)
    assert one(store, "predict_linear(g[5m], 60)", 120) == pytest.approx(180)


def test_over_time_functions() -> None:
    store = store_of({"g": [(0, 4), (10, 2), (20, 9), (30, 1)]})
    assert one(store, "avg_over_time(g[1m])", 30) == 4
    assert one(store, "sum_over_time(g[1m])", 30) == 16
    assert one(store, "min_over_time(g[1m])", 30) == 1
    assert one(store, "max_over_time(g[1m])", 30) == 9
    assert one(store, "count_over_time(g[1m])", 30) == 4
    assert one(store, "last_over_time(g[1m])", 30) == 1
    assert one(store, "stdvar_over_time(g[1m])", 30) == pytest.approx(9.5)
    assert one(store, "stddev_over_time(g[1m])", 30) == pytest.approx(math.sqrt(9.5))
    assert one(store, "quantile_over_time(0.5, g[1m])", 30) == 3
    assert one(store, "present_over_time(g[1m])", 30) == 1
    # last_over_time keeps the metric name, the others drop it.
    assert query(store, "last_over_time(g[1m])", 30) == {(("__name__", "g"),): 1}
    assert query(store, "max_over_time(g[1m])", 30) == {(): 9}


# -- staleness and lookback ----------------------------------------------------------------

def test_a_series_missing_from_a_scrape_ends_at_that_scrape() -> None:
    q = compile_query("up_ish")
    store = SeriesStore(q.selectors, q.retention, 100)
    for t in (0, 15, 30):
        store.append_scrape(t, [("up_ish", {"i": "1"}, 1.0, None), ("up_ish", {"i": "2"}, 2.0, None)])
    store.append_scrape(45, [("up_ish", {"i": "1"}, 1.0, None)])
    assert evaluate(q, store, 44) == [Sample({"__name__": "up_ish", "i": "1"}, 1.0), Sample({"__name__": "up_ish", "i": "2"}, 2.0)]
    assert evaluate(q, store, 45) == [Sample({"__name__": "up_ish", "i": "1"}, 1.0)]
    assert evaluate(q, store, 100) == [Sample({"__name__": "up_ish", "i": "1"}, 1.0)]
    # The stale marker is not a sample: range functions do not count it.
    assert evaluate(compile_query("count_over_time(up_ish[1m])"), store, 45) == [
        Sample({"i": "1"}, 4.0), Sample({"i": "2"}, 3.0)]


def test_a_failed_scrape_ends_every_series() -> None:
    q = compile_query("m")
    store = SeriesStore(q.selectors, q.retention, 100)
    store.append_scrape(0, [("m", {}, 1.0, None)])
    store.mark_scrape_failed(15)
    assert evaluate(q, store, 14) == [Sample({"__name__": "m"}, 1.0)]
    assert evaluate(q, store, 15) == []
    store.append_scrape(30, [("m", {}, 2.0, None)])
    assert evaluate(q, store, 30) == [Sample({"__name__": "m"}, 2.0)]


def test_lookback_is_five_minutes_inclusive() -> None:
    store = store_of({"g": [(100, 7)]})
    assert one(store, "g", 400) == 7
    assert query(store, "g", 400.001) == {}
    assert query(store, "g", 99) == {}


def test_an_explicit_stale_marker_hides_the_series() -> None:
    store = store_of({"g": [(0, 1), (10, STALE_NAN), (20, 3)]})
    assert one(store, "g", 5) == 1
    assert query(store, "g", 10) == {}
    assert one(store, "g", 20) == 3
    assert one(store, "count_over_time(g[1m])", 20) == 2


def test_offset_looks_back() -> None:
    store = store_of({"g": [(0, 1), (60, 2), (120, 3)]})
    assert one(store, "g offset 1m", 120) == 2
    assert one(store, "sum_over_time(g[1m] offset 1m)", 120) == 3
    assert one(store, "g @ end()", 120) == 3
    q = compile_query("rate(g[5m] offset 10m) + g offset 20m")
    assert q.retention == 1200 + 300  # longest range+offset plus the lookback


# -- histogram_quantile --------------------------------------------------------------------

def buckets(**counts: float) -> dict[str, list[tuple[float, float]]]:
    return {f'h_bucket{{le="{le.replace("_", ".")}"}}': [(0, v)] for le, v in counts.items()}


def test_histogram_quantile_interpolates_within_the_bucket() -> None:
    store = store_of(buckets(**{"0_1": 10, "0_5": 20, "1": 30, "+Inf": 40}))
    assert one(store, "histogram_quantile(0.25, h_bucket)", 0) == pytest.approx(0.1)
    assert one(store, "histogram_quantile(0.3, h_bucket)", 0) == pytest.approx(0.18)
    assert one(store, "histogram_quantile(0.5, h_bucket)", 0) == pytest.approx(0.5)
    # In the +Inf bucket: the highest finite bound.
    assert one(store, "histogram_quantile(0.9, h_bucket)", 0) == 1
    assert one(store, "histogram_quantile(-0.1, h_bucket)", 0) == -math.inf
    assert one(store, "histogram_quantile(1.1, h_bucket)", 0) == math.inf
    assert math.isnan(one(store, "histogram_quantile(NaN, h_bucket)", 0))
    assert query(store, "histogram_quantile(0.5, h_bucket)", 0) == {(): pytest.approx(0.5)}


def test_histogram_quantile_needs_the_inf_bucket_and_observations() -> None:
    assert math.isnan(one(store_of(buckets(**{"0_1": 10, "1": 30})), "histogram_quantile(0.5, h_bucket)", 0))
    assert math.isnan(one(store_of(buckets(**{"0_1": 0, "+Inf": 0})), "histogram_quantile(0.5, h_bucket)", 0))
    assert math.isnan(one(store_of(buckets(**{"+Inf": 5})), "histogram_quantile(0.5, h_bucket)", 0))


def test_histogram_quantile_fixes_non_monotonic_buckets_and_skips_bad_le() -> None:
    store = store_of({**buckets(**{"1": 10, "2": 5, "4": 20, "+Inf": 20}), 'h_bucket{le="x"}': [(0, 99)],
                      "h_bucket": [(0, 99)]})
    # le=2 is raised to 10 (the envelope), so rank 15 falls in (2, 4].
    assert one(store, "histogram_quantile(0.75, h_bucket)", 0) == pytest.approx(2 + 2 * (5 / 10))


def test_histogram_quantile_groups_by_the_other_labels() -> None:
    series = {}
    for job, scale in (("a", 1), ("b", 2)):
        for le, v in (("1", 5), ("+Inf", 10)):
            series[f'h_bucket{{job="{job}",le="{le}"}}'] = [(0, v * scale)]
    assert query(store_of(series), "histogram_quantile(0.5, h_bucket)", 0) == {
        (("job", "a"),): 1.0, (("job", "b"),): 1.0}


# -- empty vectors, scalars ----------------------------------------------------------------

def test_empty_vectors() -> None:
    store = store_of({"g": [(0, 1)]})
    assert query(store, "sum(nothing)", 0) == {}
    assert query(store, "nothing + 1", 0) == {}
    assert query(store, "g + nothing", 0) == {}
    assert query(store, "rate(nothing[5m])", 0) == {}
    assert math.isnan(query(store, "scalar(nothing)", 0))  # type: ignore[arg-type]
    assert query(store, 'absent(nothing{job="x", env=~"p.*"})', 0) == {(("job", "x"),): 1}
    assert query(store, "absent(g)", 0) == {}
    assert query(store, 'absent_over_time(nothing{job="x"}[5m])', 0) == {(("job", "x"),): 1}
    assert query(store, "g or nothing", 0) == {(("__name__", "g"),): 1}


def test_scalar_results_and_time() -> None:
    store = store_of({"g": [(0, 2)]})
    assert query(store, "1 + 2 * 3 ^ 2", 0) == 19
    assert query(store, "2 ^ 3 ^ 2", 0) == 512  # right-associative
    assert query(store, "scalar(g) * 2", 10) == 4
    assert query(store, "time()", 12.5) == 12.5
    assert query(store, "vector(3)", 0) == {(): 3}
    assert query(store, "-g", 0) == {(): -2}
    assert query(store, "timestamp(g)", 100) == {(): 0}


# -- arithmetic and comparisons ------------------------------------------------------------

def test_division_by_zero_and_nan_follow_ieee() -> None:
    store = store_of({'g{i="pos"}': [(0, 1)], 'g{i="zero"}': [(0, 0)], 'g{i="neg"}': [(0, -1)]})
    assert query(store, "g / 0", 0) == {(("i", "neg"),): -math.inf, (("i", "pos"),): math.inf,
                                        (("i", "zero"),): pytest.approx(math.nan, nan_ok=True)}
    assert math.isnan(query(store, "0 / 0", 0))  # type: ignore[arg-type]
    assert query(store, "1 % 0 != bool 1 % 0", 0) == 1  # NaN != NaN
    assert query(store, "NaN == bool NaN", 0) == 0
    assert query(store, "g > NaN", 0) == {}
    assert query(store, "-1 ^ 0.5 != bool 0", 0) == 1


def test_comparisons_filter_or_return_bool() -> None:
    store = store_of({'g{i="a"}': [(0, 1)], 'g{i="b"}': [(0, 5)]})
    assert query(store, "g > 2", 0) == {(("__name__", "g"), ("i", "b")): 5}
    assert query(store, "g > bool 2", 0) == {(("i", "a"),): 0, (("i", "b"),): 1}
    # A scalar on the left: the filter keeps the vector's value.
    assert query(store, "2 < g", 0) == {(("__name__", "g"), ("i", "b")): 5}
    assert query(store, "g + 1", 0) == {(("i", "a"),): 2, (("i", "b"),): 6}


def test_set_operators() -> None:
    store = store_of({'a{i="1"}': [(0, 1)], 'a{i="2"}': [(0, 2)], 'b{i="2"}': [(0, 20)], 'b{i="3"}': [(0, 30)]})
    assert query(store, "a and b", 0) == {(("__name__", "a"), ("i", "2")): 2}
    assert query(store, "a unless b", 0) == {(("__name__", "a"), ("i", "1")): 1}
    assert query(store, "a or b", 0) == {(("__name__", "a"), ("i", "1")): 1, (("__name__", "a"), ("i", "2")): 2,
                                         (("__name__", "b"), ("i", "3")): 30}
    assert query(store, "a and on() b", 0) == {(("__name__", "a"), ("i", "1")): 1, (("__name__", "a"), ("i", "2")): 2}


def test_vector_matching_one_to_one_and_group_left() -> None:
    store = store_of({
        'req{job="api",code="500"}': [(0, 5)], 'req{job="api",code="200"}': [(0, 95)],
        'total{job="api",team="x"}': [(0, 100)],
    })
    assert query(store, "req / on(job) group_left(team) total", 0) == {
        (("code", "200"), ("job", "api"), ("team", "x")): 0.95, (("code", "500"), ("job", "api"), ("team", "x")): 0.05}
    assert query(store, 'req{code="500"} / on(job) total', 0) == {(("job", "api"),): 0.05}
    # ignoring(code) leaves team on one side only: nothing matches.
    assert query(store, "req / ignoring(code) group_left(team) total", 0) == {}
    assert query(store, "total / on(job) group_right req", 0) == {
        (("code", "200"), ("job", "api")): pytest.approx(100 / 95), (("code", "500"), ("job", "api")): 20}


def test_many_to_many_without_group_left_is_an_error() -> None:
    store = store_of({'req{job="api",code="500"}': [(0, 5)], 'req{job="api",code="200"}': [(0, 95)],
                      'total{job="api"}': [(0, 100)]})
    with pytest.raises(PromQLError, match="multiple matches for labels: many-to-one matching must be explicit"):
        query(store, "req / on(job) total", 0)
    with pytest.raises(PromQLError, match=r"found duplicate series for the match group \{job=\"api\"\} on the right "
                                          r"hand-side of the operation.*many-to-many matching not allowed"):
        query(store, "total / on(job) req", 0)
    with pytest.raises(PromQLError, match="found duplicate series .* on the left hand-side"):
        query(store, "req / on(job) group_right total", 0)


def test_duplicate_label_sets_are_an_error() -> None:
    store = store_of({'c1{job="a"}': [(0, 1), (30, 2)], 'c2{job="a"}': [(0, 1), (30, 2)]})
    with pytest.raises(PromQLError, match="vector cannot contain metrics with the same labelset"):
        query(store, 'rate({__name__=~"c1|c2"}[1m])', 30)
    with pytest.raises(PromQLError, match="vector cannot contain metrics with the same labelset"):
        query(store, '{__name__=~"c1|c2"} * 2', 30)
    # Without a function the names keep the series apart.
    assert len(query(store, '{__name__=~"c1|c2"}', 30)) == 2  # type: ignore[arg-type]


# -- aggregations --------------------------------------------------------------------------

def test_aggregations_by_and_without() -> None:
    store = store_of({
        'm{job="a",i="1"}': [(0, 1)], 'm{job="a",i="2"}': [(0, 3)], 'm{job="b",i="1"}': [(0, 10)],
    })
    assert query(store, "sum(m)", 0) == {(): 14}
    assert query(store, "sum by (job) (m)", 0) == {(("job", "a"),): 4, (("job", "b"),): 10}
    assert query(store, "sum without (i) (m)", 0) == {(("job", "a"),): 4, (("job", "b"),): 10}
    assert query(store, "avg by (job) (m)", 0) == {(("job", "a"),): 2, (("job", "b"),): 10}
    assert query(store, "min(m)", 0) == {(): 1}
    assert query(store, "max(m)", 0) == {(): 10}
    assert query(store, "count(m)", 0) == {(): 3}
    assert query(store, "group by (job) (m)", 0) == {(("job", "a"),): 1, (("job", "b"),): 1}
    assert query(store, "stdvar by (job) (m)", 0) == {(("job", "a"),): 1, (("job", "b"),): 0}
    assert query(store, "stddev(m)", 0) == {(): pytest.approx(math.sqrt(((1 - 14 / 3) ** 2 + (3 - 14 / 3) ** 2 + (10 - 14 / 3) ** 2) / 3))}
    assert query(store, "quantile(0.5, m)", 0) == {(): 3}
    assert query(store, "topk(2, m)", 0) == {(("__name__", "m"), ("i", "1"), ("job", "b")): 10,
                                             (("__name__", "m"), ("i", "2"), ("job", "a")): 3}
    assert query(store, "bottomk by (job) (1, m)", 0) == {(("__name__", "m"), ("i", "1"), ("job", "a")): 1,
                                                          (("__name__", "m"), ("i", "1"), ("job", "b")): 10}
    assert query(store, 'count_values("v", m)', 0) == {(("v", "1"),): 1, (("v", "3"),): 1, (("v", "10"),): 1}
    assert query(store, "topk(0, m)", 0) == {}


def test_functions_on_instant_vectors() -> None:
    store = store_of({"g": [(0, -2.5)]})
    assert one(store, "abs(g)", 0) == 2.5
    assert one(store, "ceil(g)", 0) == -2
    assert one(store, "floor(g)", 0) == -3
    assert one(store, "round(g)", 0) == -2  # ties round up
    assert one(store, "round(g, 2)", 0) == -2
    assert one(store, "clamp(g, -1, 1)", 0) == -1
    assert one(store, "clamp_min(g, 0)", 0) == 0
    assert one(store, "clamp_max(g, -3)", 0) == -3
    assert query(store, "clamp(g, 1, -1)", 0) == {}
    assert math.isnan(one(store, "sqrt(g)", 0))
    assert math.isnan(one(store, "ln(g)", 0))
    assert one(store, "exp(abs(g) * 1000)", 0) == math.inf
    assert one(store, "log10(abs(g) * 4)", 0) == 1
    assert one(store, "log2(abs(g) * 0.8)", 0) == 1
    assert one(store, "sgn(g)", 0) == -1


# -- compile-time errors -------------------------------------------------------------------

@pytest.mark.parametrize(("text", "message"), [
    ('label_replace(up, "a", "b", "c", "d")', "unsupported function label_replace"),
    ('label_join(up, "a", ",", "b")', "unsupported function label_join"),
    ("holt_winters(up[5m], 0.5, 0.5)", "unsupported function holt_winters"),
    ("max_over_time(rate(up[1m])[5m:1m])", "unsupported construct subquery"),
    ("up @ 1700000000", "unsupported construct @ <timestamp>"),
    ("up offset -5m", "unsupported construct negative offset"),
    ("limitk(2, up)", "unsupported aggregation limitk"),
    ("up[5m]", "query must return an instant vector or scalar"),
    ('"text"', "query must return an instant vector or scalar"),
    ("sum(up", "parse error: "),
    ("rate(up)", "parse error: expected type matrix in call to function 'rate', got vector"),
    ("nosuchfunction(up)", "parse error: unknown function with name 'nosuchfunction'"),
    ('{job=""}', "vector selector must contain at least one non-empty matcher"),
    ("", "query is empty"),
    # Later Prometheus grammar the parser accepts and Prometheus 2.42 refuses.
    ("rate(up[5])", "bad duration '5'"),
    ("up offset 90", "bad duration '90' after offset"),
    ("up + 1m", "unsupported construct duration 1m used as a number"),
    ('{"service.up"}', "unsupported construct quoted metric name"),
    ('sum by ("a.b") (up)', "unsupported construct label name 'a.b'"),
    ("up + fill(0) down", "unsupported construct fill()"),
    ('up{a="1" or b="2"}', "unsupported construct 'or' between label matchers"),
    ("first_over_time(up[5m])", "unsupported function first_over_time"),
])
def test_compile_errors_name_the_construct(text: str, message: str) -> None:
    with pytest.raises(PromQLError) as raised:
        compile_query(text)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_regex_matchers_are_anchored_and_re2() -> None:
    store = store_of({'r{code="500"}': [(0, 1)], 'r{code="1500"}': [(0, 2)], 'r{code="200"}': [(0, 3)]})
    assert query(store, 'sum(r{code=~"5.."})', 0) == {(): 1}
    assert query(store, 'sum(r{code!~"5.."})', 0) == {(): 5}
    assert query(store, 'sum(r{code!="200"})', 0) == {(): 3}
    assert query(store, 'sum(r{missing=""})', 0) == {(): 6}  # an absent label matches ""
    q = compile_query('r{code=~"5.."}')
    assert q.selectors[0].matches({"__name__": "r", "code": "503"})
    assert not q.selectors[0].matches({"__name__": "r", "code": "5033"})
    assert q.selectors[0].name == "r"
