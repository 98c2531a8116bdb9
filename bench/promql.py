"""The PromQL engine (monitor/promql/): parse and compile cost, and scrape ingestion plus
evaluation over a target of 5,000 series.

- Parse: µs per query of ``promql_parser.parse`` (the Rust parser behind a Python binding)
  and of ``compile_query`` (parse + conversion to the engine's tree + selector regexes), for
  queries of the kind runbooks give; the first-import cost of the binding (a fresh
  interpreter). Compilation happens once per config load, so the reference beside it is one
  evaluation of the same query over 5,000 series, which happens every scrape.
- Store and evaluation: a synthetic target of 5,000 series (request counters by route,
  status and instance, and request-duration histograms), scraped every 15 s with moving
  values; CPU ms per ``append_scrape`` and per ``evaluate`` of each query once the 5-minute
  windows are full, and bytes of Python heap per kept series (``tracemalloc``).

    python -m bench.promql [--rounds 5] [--no-write]
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import time
import timeit
import tracemalloc
from importlib.metadata import version

from bench._common import command_line, machine_info, md_table, update_results_section

QUERIES = [
    'sum(rate(http_requests_total{status=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))',
    "histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
    "sum by (route) (rate(http_requests_total[5m]))",
    'topk(3, sum by (route) (increase(http_requests_total{status!~"2.."}[10m])))',
    'max_over_time(http_requests_total{route="/r1"}[5m]) - min_over_time(http_requests_total{route="/r1"}[5m])',
]
INTERVAL = 15.0


def target_series() -> list[tuple[str, dict[str, str]]]:
    series = []
    for route in range(50):
        for status in ("200", "201", "404", "500", "503"):
            for instance in range(10):
                series.append(("http_requests_total", {"route": f"/r{route}", "status": status, "instance": f"i{instance}"}))
    for route in range(25):
        for le in ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"):
            for instance in range(8):
                series.append(("http_request_duration_seconds_bucket", {"route": f"/r{route}", "le": le, "instance": f"i{instance}"}))
    return series


def import_ms() -> float:
    code = "import time; t = time.perf_counter(); import promql_parser; print((time.perf_counter() - t) * 1000)"
    runs = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
            for _ in range(5)]
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()

    import promql_parser

    from monitor.promql import SeriesStore, compile_query, evaluate

    compiled = [compile_query(q) for q in QUERIES]
    selectors = [s for q in compiled for s in q.selectors]
    retention = max(q.retention for q in compiled)
    series = target_series()
    rng = random.Random(1)
    values = [0.0] * len(series)
    tracemalloc.start()
    heap_before = tracemalloc.get_traced_memory()[0]
    store = SeriesStore(selectors, retention, 20_000)
    ingest: list[float] = []
    per_query: list[list[float]] = [[] for _ in compiled]
    scrapes = int(retention / INTERVAL) + 1 + args.rounds * 4
    for k in range(scrapes):
        at = 1_700_000_000 + k * INTERVAL
        for i in range(len(values)):
            values[i] += rng.random() * 10
        batch = [(name, labels, values[i], None) for i, (name, labels) in enumerate(series)]
        if k == int(retention / INTERVAL):
            tracemalloc.stop()  # the windows are full: measure CPU from here on without tracing
        started = time.process_time()
        store.append_scrape(at, batch)
        ingest.append(time.process_time() - started)
        for n, q in enumerate(compiled):
            started = time.process_time()
            evaluate(q, store, at)
            per_query[n].append(time.process_time() - started)
        if k == int(retention / INTERVAL) - 1:
            heap_full = tracemalloc.get_traced_memory()[0]
    steady = int(retention / INTERVAL) + 1
    ingest_ms = statistics.median(ingest[steady:]) * 1000
    eval_ms = [statistics.median(times[steady:]) * 1000 for times in per_query]
    bytes_per_series = (heap_full - heap_before) / store.series_count
    samples_per_series = store.sample_count / store.series_count

    parse_rows = []
    for text, q, ms in zip(QUERIES, compiled, eval_ms):
        number = 2000
        parse_us = min(timeit.repeat(lambda: promql_parser.parse(text), number=number, repeat=args.rounds)) / number * 1e6
        compile_us = min(timeit.repeat(lambda: compile_query(text), number=number // 4, repeat=args.rounds)) / (number // 4) * 1e6
        parse_rows.append([f"`{text}`", f"{parse_us:.1f}", f"{compile_us:.1f}", f"{ms * 1000:.0f}"])

    eval_rows = [[f"`{text}`", f"{ms:.1f}"] for text, ms in zip(QUERIES, eval_ms)]
    body = "\n".join([
        "## PromQL engine (`bench/promql.py`)", "",
        f"Command: `{command_line()}`", "",
        *machine_info(),
        f"- versions: promql-parser {version('promql-parser')}", "",
        f"Parsing and compiling, µs per query (best of {args.rounds} rounds of `timeit`); reference: one"
        f" evaluation of the same query over the {len(series):,}-series target below, µs (median)."
        f" First `import promql_parser` in a fresh interpreter: {import_ms():.1f} ms (median of 5).", "",
        md_table(["query", "promql_parser.parse µs", "compile_query µs", f"evaluate over {len(series):,} series µs (reference)"], parse_rows),
        "",
        f"A target of {len(series):,} series (request counters by route/status/instance, request-duration"
        f" buckets) scraped every {INTERVAL:g} s; all {len(QUERIES)} queries' selectors on one store, which keeps"
        f" {store.series_count:,} series and {samples_per_series:.0f} samples each (retention {retention:g} s)."
        f" CPU ms, median of the {scrapes - steady} scrapes after the windows filled.", "",
        md_table(["step", "CPU ms"], [[f"`append_scrape` ({len(series):,} samples)", f"{ingest_ms:.1f}"], *eval_rows,
                                     ["all queries, one scrape + evaluation", f"{ingest_ms + sum(eval_ms):.1f}"]]),
        "",
        f"Memory: {bytes_per_series:,.0f} bytes of Python heap per kept series with full windows"
        f" ({bytes_per_series / samples_per_series:.0f} bytes per sample, including labels and indexes;"
        " `tracemalloc`).",
    ])
    print(body)
    if not args.no_write:
        update_results_section("promql", body)


if __name__ == "__main__":
    main()
