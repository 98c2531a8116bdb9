"""SeriesStore: which series it keeps, for how long, staleness per scrape, and the series limit."""

from __future__ import annotations

import pytest

from monitor.promql import PromQLError, Sample, SeriesLimitError, SeriesStore, compile_query, evaluate


def scrape(*samples: tuple[str, dict[str, str], float]) -> list[tuple[str, dict[str, str], float, float | None]]:
    return [(name, labels, value, None) for name, labels, value in samples]


def test_only_series_a_selector_matches_are_kept() -> None:
    q = compile_query('sum(rate(http_requests_total{code=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))')
    store = SeriesStore(q.selectors, q.retention, 100)
    for t in range(0, 300, 15):
        store.append_scrape(t, scrape(
            ("http_requests_total", {"code": "500"}, t / 15, ),
            ("http_requests_total", {"code": "200"}, t, ),
            ("process_cpu_seconds_total", {}, 1.0),
            ("go_goroutines", {"job": "x"}, 5.0),
        ))
    assert store.series_count == 2
    assert store.sample_count == 40
    result = evaluate(q, store, 285)
    assert isinstance(result, list) and len(result) == 1
    assert result[0].value == pytest.approx(1 / 16)


def test_samples_older_than_the_retention_are_dropped() -> None:
    q = compile_query("rate(c[1m])")
    assert q.retention == 360
    store = SeriesStore(q.selectors, q.retention, 10)
    for t in range(0, 1000, 10):
        store.append_scrape(t, scrape(("c", {}, float(t))))
    assert store.sample_count == 37  # 630..990 inclusive
    assert evaluate(q, store, 990) == [Sample({}, pytest.approx(1.0))]


def test_a_series_gone_for_longer_than_the_retention_is_forgotten() -> None:
    q = compile_query("g")
    store = SeriesStore(q.selectors, q.retention, 10)
    store.append_scrape(0, scrape(("g", {"i": "1"}, 1.0), ("g", {"i": "2"}, 2.0)))
    store.append_scrape(15, scrape(("g", {"i": "1"}, 1.0)))
    assert store.series_count == 2  # i=2 ends with a stale marker at 15
    store.append_scrape(400, scrape(("g", {"i": "1"}, 1.0)))
    assert store.series_count == 1
    assert evaluate(q, store, 400) == [Sample({"__name__": "g", "i": "1"}, 1.0)]


def test_the_series_limit_is_a_clear_error_and_keeps_what_was_stored() -> None:
    q = compile_query("m")
    store = SeriesStore(q.selectors, q.retention, 3)
    store.append_scrape(0, scrape(*(("m", {"i": str(i)}, float(i)) for i in range(3))))
    with pytest.raises(SeriesLimitError, match="series limit exceeded: 5 series match the query's selectors, over the limit of 3"):
        store.append_scrape(15, scrape(*(("m", {"i": str(i)}, float(i)) for i in range(5))))
    assert isinstance(SeriesLimitError("x"), PromQLError)
    assert store.series_count == 3
    # As Prometheus does for a scrape over its sample limit, the target's series went stale.
    assert evaluate(q, store, 14) != []
    assert evaluate(q, store, 15) == []
    store.append_scrape(30, scrape(("m", {"i": "0"}, 7.0)))
    assert evaluate(q, store, 30) == [Sample({"__name__": "m", "i": "0"}, 7.0)]


def test_many_unmatched_series_cost_no_storage() -> None:
    q = compile_query('m{job="a"}')
    store = SeriesStore(q.selectors, q.retention, 10)
    for t in (0, 15):
        store.append_scrape(t, scrape(*(("m", {"job": "b", "i": str(i)}, 1.0) for i in range(5000)), ("m", {"job": "a"}, 2.0)))
    assert store.series_count == 1
    assert store.sample_count == 2


def test_explicit_timestamps_are_used_and_not_tracked_for_staleness() -> None:
    q = compile_query("t")
    store = SeriesStore(q.selectors, q.retention, 10)
    store.append_scrape(100, [("t", {}, 1.0, 90.0)])
    store.append_scrape(115, [])
    # Not marked stale (Prometheus does not track series with their own timestamps) and
    # timestamp() gives the sample's own time.
    assert evaluate(compile_query("timestamp(t)"), store, 115) == [Sample({}, 90.0)]
    # An older or equal timestamp is dropped, as out of order.
    store.append_scrape(130, [("t", {}, 5.0, 80.0)])
    assert evaluate(q, store, 130) == [Sample({"__name__": "t"}, 1.0)]


def test_a_duplicate_sample_in_one_scrape_keeps_the_first() -> None:
    q = compile_query("d")
    store = SeriesStore(q.selectors, q.retention, 10)
    store.append_scrape(0, scrape(("d", {"a": "1"}, 1.0), ("d", {"a": "1"}, 2.0)))
    assert evaluate(q, store, 0) == [Sample({"__name__": "d", "a": "1"}, 1.0)]


def test_empty_label_values_are_no_label() -> None:
    q = compile_query('e{a=""}')
    store = SeriesStore(q.selectors, q.retention, 10)
    store.append_scrape(0, scrape(("e", {"a": ""}, 1.0)))
    assert evaluate(q, store, 0) == [Sample({"__name__": "e"}, 1.0)]


def test_a_compiled_query_is_reusable_across_stores_and_times() -> None:
    q = compile_query("sum(rate(c[1m]))")
    stores = [SeriesStore(q.selectors, q.retention, 10) for _ in range(2)]
    for slope, store in enumerate(stores, start=1):
        for t in range(0, 120, 10):
            store.append_scrape(t, scrape(("c", {}, float(t * slope))))
    assert [evaluate(q, s, 110) for s in stores] == [[Sample({}, pytest.approx(1.0))], [Sample({}, pytest.approx(2.0))]]
