"""The scrape parser (monitor/promql/exposition.py): the text format 0.0.4 and OpenMetrics 1.0
as Prometheus 2.42 ingests them, cross-checked against prometheus_client's parser."""

from __future__ import annotations

import math
import random

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from monitor.promql.exposition import ExpositionError, ParseCache, parse

OM = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def samples(text: str, content_type: str = "text/plain", **options: object) -> list[tuple[str, dict[str, str], float, float | None]]:
    return parse(text, content_type, **options).samples  # type: ignore[arg-type]


def test_escapes_special_values_and_timestamps() -> None:
    text = ('# HELP a Some "help" with \\\\ and \\n.\n# TYPE a gauge\n'
            'a{path="/x\\"y\\\\z\\nw",empty=""} +Inf 1700000000123\n'
            'b NaN\nc -Inf\nd 1.5e3\n  e{x="1",} 2  \n# a free comment\n\n')
    got = samples(text)
    assert got[0] == ("a", {"path": '/x"y\\z\nw'}, math.inf, 1700000000.123)
    assert math.isnan(got[1][2]) and got[2][2] == -math.inf and got[3][2] == 1500.0
    assert got[4] == ("e", {"x": "1"}, 2.0, None)


def test_openmetrics_names_eof_exemplars_and_seconds() -> None:
    text = ("# TYPE req counter\n# UNIT req seconds\n# HELP req Requests.\n"
            'req_total{code="200"} 10 1700000000.5 # {trace_id="abc}"} 1 1700000000.1\n'
            'req_created{code="200"} 1.6e9\n# TYPE i info\ni_info{v="1"} 1\n'
            '# TYPE s stateset\ns{s="a"} 1\n# EOF\n')
    got = samples(text, OM)
    assert [(n, v, t) for n, _, v, t in got] == [("req_total", 10.0, 1700000000.5), ("req_created", 1.6e9, None),
                                                 ("i_info", 1.0, None), ("s", 1.0, None)]
    with pytest.raises(ExpositionError, match="does not end with # EOF"):
        parse("a_total 1\n", OM)
    with pytest.raises(ExpositionError, match="line 2: unexpected data after # EOF"):
        parse("a 1\n# EOF\nb 2\n# EOF\n", OM)
    with pytest.raises(ExpositionError, match="line 2: empty line"):
        parse("a 1\n\nb 2\n# EOF\n", OM)
    with pytest.raises(ExpositionError, match="line 1: invalid comment"):
        parse("# hello\n# EOF\n", OM)
    with pytest.raises(ExpositionError, match="line 1: "):  # no exemplars in the classic format
        parse("a 1 # not an exemplar\n", "text/plain")
    with pytest.raises(ExpositionError, match="line 1: unexpected text after the value"):
        parse("a 1 # {x=1} 1\n# EOF\n", OM)


@pytest.mark.parametrize("line", [
    "1abc 1", "a{1x=\"1\"} 1", "a{x=1} 1", "a{x=\"1\"", "a 1 2 3", "a", "a 0x1p-2", "a 1_000", "a 1 1.5",
    "a{x=\"1\"} 1 2 # {} 1", "a{__name__=\"b\"} 1", "<html>",
])
def test_invalid_lines_are_rejected_with_their_number(line: str) -> None:
    with pytest.raises(ExpositionError, match="^invalid exposition at line 2: "):
        parse(f"ok 1\n{line}\n")


def test_duplicates_count_label_order_and_empty_values_as_the_same_series() -> None:
    with pytest.raises(ExpositionError, match="line 2: duplicate series"):
        parse('a{x="1",y="2"} 1\na{y="2",x="1"} 2\n')
    with pytest.raises(ExpositionError, match="line 2: duplicate series"):
        parse('a{x="1"} 1\na{x="1",y=""} 2\n')
    with pytest.raises(ExpositionError, match="line 3: duplicate series"):  # also among unread names
        parse('b 1\na{x="1"} 1\na{x="1"} 2\n', names=frozenset({"b"}))


def test_only_asked_names_are_returned_but_every_line_is_checked() -> None:
    scrape = parse('a{x="1"} 1\nb 2\nc{y="3"} 3\n', names=frozenset({"b"}))
    assert scrape.samples == [("b", {}, 2.0, None)] and scrape.count == 3
    with pytest.raises(ExpositionError, match="line 2: invalid label set"):
        parse('b 1\nc{y=3} 3\n', names=frozenset({"b"}))


def test_cache_is_reused_and_bounded() -> None:
    cache: ParseCache = {}
    first = parse('a{x="1"} 1\na{x="2"} 2\n', cache=cache)
    second = parse('a{x="1"} 5\n', cache=cache)
    assert first.samples[0][1] is second.samples[0][1]  # parsed once
    parse("".join(f'a{{x="{i}"}} 1\n' for i in range(50)), cache=cache, cache_limit=10)
    parse('a{x="1"} 1\n', cache=cache, cache_limit=10)
    assert len(cache) == 1  # over the limit: cleared before the next scrape


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    rng = random.Random(7)
    counter = Counter("http_requests", "Requests.", ["path", "code"], registry=registry)
    gauge = Gauge("queue_depth", "Depth \"quoted\" \\ help.", ["queue"], registry=registry)
    histogram = Histogram("latency_seconds", "Latency.", ["path"], registry=registry)
    summary = Summary("size_bytes", "Sizes.", registry=registry)
    for i in range(40):
        path = f'/api/{i}/"x"\\y\n'
        counter.labels(path, str(200 + i % 3)).inc(rng.random() * 100)
        histogram.labels(path).observe(rng.random())
        gauge.labels(f"q{i}").set(rng.choice([rng.random(), math.inf, -math.inf]))
        summary.observe(rng.random() * 1000)
    return registry


@pytest.mark.parametrize("openmetrics", [False, True])
def test_agrees_with_prometheus_client(openmetrics: bool) -> None:
    registry = _registry()
    text = (generate_openmetrics if openmetrics else generate_latest)(registry).decode()
    ours = {(n, tuple(sorted(labels.items()))): v for n, labels, v, _ in samples(text, OM if openmetrics else "text/plain")}
    if openmetrics:
        from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_families
        theirs_families = list(om_families(text))
    else:
        theirs_families = list(text_string_to_metric_families(text))
    theirs = {(s.name, tuple(sorted((k, v) for k, v in s.labels.items() if v != ""))): s.value
              for family in theirs_families for s in family.samples}
    assert ours.keys() == theirs.keys()
    assert all(ours[k] == theirs[k] or (math.isnan(ours[k]) and math.isnan(theirs[k])) for k in ours)
    assert len(ours) > 300
