"""The `metrics` check kind beside Prometheus 2.42, in one run, on one target of ~5,000 series.

What runs:

- A target (a child process pinned to the load CPU) serving 4,933 series in the text format
  0.0.4 over HTTP, gzip when asked, the same function of time for every scraper: the 4,900
  series of bench/promql.py's generator (``http_requests_total`` by route/status/instance
  with a ``method`` label added, ``http_request_duration_seconds_bucket`` by route/le/
  instance; the histogram's ``_sum``/``_count`` are left out to stay near 5,000 and no query
  reads them), a DB pool's ``db_pool_connections_in_use``/``_idle``/``db_pool_size`` per
  instance and three process gauges. Counters are monotonic (a base rate with a slow
  wave), bucket counts follow a per-route log-normal latency.
- The queries: the ``kind: metrics`` queries of the shipped catalogs (checks/*.yaml) whose
  metric names the target serves; when there are none, issue 10's runbook queries (Echo AI's
  error ratio over 5 m and 10 m, p95 latency, DB-pool usage).
- The daemon side, in this process (pinned to the measured CPU): one ``metrics`` check per
  query, built with the kind's own model as a user would configure it (interval 15s,
  timeout 10s), each run through ``monitor.scheduling.runner.run_check`` with one shared
  ``ProbeEnv``; the checks of one round run one after another (as a scheduler spreading
  them over the interval would). CPU per run is ``time.process_time()`` around the awaited
  ``run_check`` — every thread of the process, so the worker thread that parses, stores and
  evaluates is counted; nothing else runs in the process during a round.
- The Prometheus side, in the same run: /usr/bin/prometheus on a free port in a temp dir,
  pinned to the measured CPU too (so GOMAXPROCS=1), scraping the same target at the same
  interval with the same queries as recording rules at the same evaluation interval.

Time: a round every ``--interval`` (1 s) of real time stands for the catalogs' 15 s. The
target's clock runs 15x fast, so each scrape sees 15 s worth of counter increase. The
daemon's checks get a ``ProbeEnv`` whose clock runs 15x fast as well: their samples are
15 s apart on that clock, the queries keep their ``[5m]``/``[10m]`` ranges, and the stores
hold what they would hold in production (range + the 5 m lookback = 40 or 60 samples a
series). Prometheus cannot be given a clock, so it scrapes every real second and its rules
have the ranges divided by 15 (``[5m]`` -> ``[20s]``): the same 20 samples per window, the
same answer. Its TSDB keeps every sample in the head block regardless (hours), so its
memory depends on how long it ran; this run is minutes, which favours it slightly.

What is measured, after a warm-up that fills the daemon's longest retention:

- Daemon CPU ms per check run (scrape + parse + store + evaluate + the runner), median and
  mean of the measured rounds; and the sum per round (all queries once).
- Prometheus CPU ms per scrape: utime+stime from /proc/<pid>/stat over the measured
  window divided by the scrapes it made (``prometheus_target_interval_length_seconds_count``
  delta); that covers the scrape, parse, TSDB append and WAL, every rule's evaluation and
  write, GC and housekeeping. Its idle CPU before it had a target is shown apart, and so is
  its CPU per scrape over 20 s after the window with the rules removed (the daemon's rounds
  go on, so the core is as busy): the difference is what the rules cost it.
- Daemon memory: the Python objects reachable from every check's kept state (its
  ``SeriesStore`` and its parser's label-set cache) after the warm-up, each object once,
  sized with ``sys.getsizeof`` (arrays and dicts with their buffers, GC headers included;
  allocator overhead is not), divided by the series kept over all checks' stores (two checks
  reading one metric keep a copy each). ``tracemalloc`` costs 10x CPU here, too much to keep
  1-s rounds, so it only cross-checks the walk afterwards: the largest check's state filled
  offline from rendered scrapes, traced bytes beside the walk's.
- Prometheus memory: RSS and ``go_memstats_heap_inuse_bytes`` at the end of the window,
  right after a forced GC (``/debug/pprof/heap?gc=1``), absolute and as the growth over the
  same process before it had a target or rules (read the same way), divided by
  ``prometheus_tsdb_head_series`` (the target's series, its 5 synthetic ones such as ``up``,
  and one per recording rule).
- Each query's last result on both sides, as a sanity check that both computed the same.

    python -m bench.metrics_vs_prometheus [--seconds 90] [--interval 1] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import gzip
import json
import math
import multiprocessing
import random
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
import tracemalloc
import types
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import yaml

from monitor.probes.base import ProbeEnv
from monitor.probes.metrics import MetricsCheck, Target, target_of
from monitor.promql import compile_query
from monitor.scheduling.runner import run_check

from bench._common import (
    BENCH_DIR, LOAD_CPU, MEASURED_CPU, command_line, cpu_seconds, free_port, machine_info, md_table, pin_self, spawn,
    status_kib, stop, tail, update_results_section,
)
from bench.promql import target_series

PROMETHEUS = "/usr/bin/prometheus"
BARE_SECONDS = 20.0  # Prometheus without its rules, to tell their share
NOMINAL_INTERVAL = 15.0  # what the catalogs' checks use, and what a round stands for
CHECKS_DIR = BENCH_DIR.parent / "checks"

# issue 10's runbook queries (Echo AI: error ratio critical over 5m and warning over 10m,
# p95 latency, db_pool), used when the catalogs hold no `kind: metrics` check yet.
DEFAULT_QUERIES = [
    ("error ratio 5m", 'sum(rate(http_requests_total{status=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))'),
    ("error ratio 10m", 'sum(rate(http_requests_total{status=~"5.."}[10m])) / sum(rate(http_requests_total[10m]))'),
    ("p95 latency", "histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))"),
    ("db pool in use", "max(db_pool_connections_in_use / db_pool_size)"),
]


# --- the target -------------------------------------------------------------------------------

@dataclass
class _Counter:
    prefix: str  # 'name{labels} '
    rate: float  # per (target-clock) second
    phase: float


@dataclass
class _Histogram:
    prefixes: list[tuple[str, float]]  # (bucket line prefix, fraction of requests at or below le)
    rate: float
    phase: float


@dataclass
class Exposition:
    """The target's series and their values as a function of the target's elapsed time."""

    counters: list[_Counter] = field(default_factory=list)
    histograms: list[_Histogram] = field(default_factory=list)
    instances: list[str] = field(default_factory=list)
    series: int = 0

    WAVE = 2 * math.pi / 1800  # a 30-minute wave on the target's clock (2 real minutes)
    BASE = 86_400.0  # counters as if the process had been up a day

    @classmethod
    def build(cls) -> Exposition:
        rng = random.Random(10)
        out = cls()
        by_route_instance: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for name, labels in target_series():
            if name == "http_requests_total":
                route_no = int(labels["route"][2:])
                labels = {**labels, "method": ("GET", "POST", "PUT")[route_no % 3]}
                error = labels["status"].startswith("5")
                rate = rng.uniform(0.2, 2.0) * (0.03 if error else 1.0)
                out.counters.append(_Counter(f"{name}{_labels(labels)} ", rate, rng.uniform(0, 2 * math.pi)))
                out.series += 1
            else:
                key = (labels["route"], labels["instance"])
                by_route_instance.setdefault(key, []).append((labels["le"], f"{name}{_labels(labels)} "))
        for (route, _instance), buckets in by_route_instance.items():
            median = 0.05 * (1 + int(route[2:]) % 7)  # 50 ms .. 350 ms by route
            prefixes = [(prefix, _lognormal_cdf(float(le), median, 0.8)) for le, prefix in buckets]
            out.histograms.append(_Histogram(prefixes, rng.uniform(0.5, 3.0), rng.uniform(0, 2 * math.pi)))
            out.series += len(prefixes)
        out.instances = sorted({labels["instance"] for _, labels in target_series()})
        out.series += 3 * len(out.instances) + 3
        return out

    def _count(self, rate: float, phase: float, elapsed: float) -> float:
        # rate * t plus a wave whose slope never exceeds the rate: monotonic, never reset.
        amp = 0.5 * rate / self.WAVE
        return rate * (self.BASE + elapsed) - amp * (math.cos(self.WAVE * elapsed + phase) - math.cos(phase))

    def render(self, elapsed: float) -> bytes:
        lines = ["# HELP http_requests_total Requests served.", "# TYPE http_requests_total counter"]
        for c in self.counters:
            lines.append(f"{c.prefix}{math.floor(self._count(c.rate, c.phase, elapsed))}")
        lines += ["# HELP http_request_duration_seconds Request latency.",
                  "# TYPE http_request_duration_seconds histogram"]
        for h in self.histograms:
            total = self._count(h.rate, h.phase, elapsed)
            lines.extend(f"{prefix}{math.floor(total * fraction)}" for prefix, fraction in h.prefixes)
        gauges: dict[str, list[str]] = {"db_pool_connections_in_use": [], "db_pool_connections_idle": [],
                                        "db_pool_size": []}
        for n, instance in enumerate(self.instances):
            in_use = round(10 + 8 * math.sin(self.WAVE * 3 * elapsed + n))
            gauges["db_pool_connections_in_use"].append(f'db_pool_connections_in_use{{instance="{instance}"}} {in_use}')
            gauges["db_pool_connections_idle"].append(f'db_pool_connections_idle{{instance="{instance}"}} {20 - in_use}')
            gauges["db_pool_size"].append(f'db_pool_size{{instance="{instance}"}} 20')
        for name, samples in gauges.items():
            lines += [f"# TYPE {name} gauge", *samples]
        lines += ["# TYPE process_resident_memory_bytes gauge", "process_resident_memory_bytes 1.2345e+08",
                  "# TYPE process_open_fds gauge", f"process_open_fds {40 + int(elapsed) % 7}",
                  "# TYPE process_start_time_seconds gauge", "process_start_time_seconds 1.7e+09"]
        return ("\n".join(lines) + "\n").encode()


def _labels(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def _lognormal_cdf(x: float, median: float, sigma: float) -> float:
    if math.isinf(x):
        return 1.0
    return 0.5 * (1 + math.erf(math.log(x / median) / (sigma * math.sqrt(2))))


def _serve_target(conn: Connection, t0: float, scale: float) -> None:
    """The target process: answers every path with the exposition at its (scaled) clock."""
    pin_self(LOAD_CPU)
    from aiohttp import web

    exposition = Exposition.build()

    async def metrics(request: web.Request) -> web.Response:
        body = exposition.render((time.time() - t0) * scale)
        headers = {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body, compresslevel=6)
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)

    async def serve() -> None:
        app = web.Application()
        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        conn.send((int(server.sockets[0].getsockname()[1]), exposition.series))  # type: ignore[attr-defined]
        await asyncio.Event().wait()

    asyncio.run(serve())


@contextlib.contextmanager
def running_target(t0: float, scale: float) -> Iterator[tuple[int, int]]:
    """(port, series) of the target child; stopped by its own pid afterwards."""
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    proc = ctx.Process(target=_serve_target, args=(theirs, t0, scale), daemon=True)
    proc.start()
    try:
        if not ours.poll(30):
            raise RuntimeError("the target did not start")
        port, series = ours.recv()
        yield int(port), int(series)
    finally:
        proc.terminate()
        proc.join(10)


# --- queries ----------------------------------------------------------------------------------

TARGET_NAMES = frozenset({"http_requests_total", "http_request_duration_seconds_bucket", "db_pool_connections_in_use",
                          "db_pool_connections_idle", "db_pool_size"})


def catalog_queries() -> tuple[list[tuple[str, str]], str]:
    """The catalogs' metrics queries the target can answer (else the defaults), and a note."""
    found: list[tuple[str, str]] = []
    skipped: list[str] = []
    for path in sorted(CHECKS_DIR.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text()) or {}
        for check in doc.get("checks") or []:
            if not isinstance(check, dict) or check.get("kind") != "metrics" or not isinstance(check.get("query"), str):
                continue
            text = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", check["query"].strip())  # ${VAR:-default}
            names = {s.name for s in compile_query(text).selectors}
            if names <= TARGET_NAMES and text not in (q for _, q in found):
                found.append((str(check.get("name", path.stem)), text))
            elif not names <= TARGET_NAMES:
                skipped.append(f"{path.name}:{check.get('name')}")
    if found:
        note = f"the {len(found)} distinct `kind: metrics` queries of checks/*.yaml"
        return found, note + (f" (skipped, metrics the target does not serve: {', '.join(skipped)})" if skipped else "")
    return DEFAULT_QUERIES, ("issue 10's runbook queries — the shipped catalogs (checks/*.yaml) hold no `kind: metrics`"
                             " check on this branch" + (f" the target can answer (skipped: {', '.join(skipped)})"
                                                        if skipped else ""))


_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31536000.0}
_RANGE = re.compile(r"\[(\d+)(ms|s|m|h|d|w|y)(?::(\d+)(ms|s|m|h|d|w|y))?\]")
_OFFSET = re.compile(r"\boffset\s+(\d+)(ms|s|m|h|d|w|y)\b")


def _duration(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def scaled(query: str, scale: float) -> str:
    """The query with its ranges (and offsets, subquery steps) divided by ``scale``."""
    def one(number: str, unit: str) -> str:
        return _duration(int(number) * _UNIT_S[unit] / scale)

    def ranges(m: re.Match[str]) -> str:
        step = f":{one(m.group(3), m.group(4))}" if m.group(3) else ""
        return f"[{one(m.group(1), m.group(2))}{step}]"

    text = _RANGE.sub(ranges, query)
    return _OFFSET.sub(lambda m: f"offset {one(m.group(1), m.group(2))}", text)


def slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")


# --- the daemon side --------------------------------------------------------------------------

class ScaledClock:
    """Wall time running ``scale`` times fast from ``t0`` (monotonic time is real: deadlines)."""

    def __init__(self, t0: float, scale: float) -> None:
        self.t0, self.scale = t0, scale

    def time(self) -> float:
        return self.t0 + (time.time() - self.t0) * self.scale

    def monotonic(self) -> float:
        return time.monotonic()


@dataclass
class DaemonRuns:
    cpu: list[list[float]]  # per check, seconds per run
    overruns: int = 0  # rounds that took longer than the interval
    last: list[Any] = field(default_factory=list)


async def run_rounds(checks: list[MetricsCheck], env: ProbeEnv, interval: float, seconds: float) -> DaemonRuns:
    loop = asyncio.get_running_loop()
    runs = DaemonRuns([[] for _ in checks], last=[None] * len(checks))
    next_at = loop.time()
    until = next_at + seconds
    while next_at < until:
        await asyncio.sleep(max(0.0, next_at - loop.time()))
        for n, check in enumerate(checks):
            started = time.process_time()
            result = await run_check(check, env)
            runs.cpu[n].append(time.process_time() - started)
            if not result.up:  # a failed run is no measurement
                raise SystemExit(f"check {check.name} failed: {result.error}")
            runs.last[n] = result
        next_at += interval
        if loop.time() > next_at:
            runs.overruns += 1
            next_at = loop.time()
    return runs


_NOT_DATA = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType,
             types.CodeType)


def deep_size(roots: list[Any], seen: set[int]) -> int:
    """Bytes of the Python objects reachable from ``roots`` (``sys.getsizeof``, which counts
    an array's or dict's buffer and the GC header), each object once across calls sharing
    ``seen``; classes, modules and functions are code, not data, and are not followed."""
    total = 0
    stack = list(roots)
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, _NOT_DATA):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return total


def traced_fill(check: MetricsCheck) -> tuple[int, int, int]:
    """One check's state filled offline under ``tracemalloc`` (scrapes rendered 15 s apart
    and passed to the probe's own ingest step): (traced bytes kept, the walk's bytes of the
    same state, series kept). Cross-checks ``deep_size``; too slow (10x) for the live run."""
    exposition = Exposition.build()
    rounds = int(check.compiled_query.retention / NOMINAL_INTERVAL) + 2
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    target = Target.for_check(check)
    for k in range(rounds):
        body = exposition.render(k * NOMINAL_INTERVAL)
        outcome = target.ingest(1.7e9 + k * NOMINAL_INTERVAL, body, "text/plain; version=0.0.4")
        assert not isinstance(outcome, str), outcome
    del body, outcome
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return traced, deep_size([target.store, target.cache], set()), target.store.series_count


# --- the Prometheus side ----------------------------------------------------------------------

class Prometheus:
    """One pinned /usr/bin/prometheus in a temp dir, started empty, then given its job."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.port = free_port()
        self.config = workdir / "prometheus.yml"
        self.config.write_text(json.dumps({"global": {}, "scrape_configs": []}))
        argv = [PROMETHEUS, f"--config.file={self.config}", f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"]
        self.proc = spawn(argv, MEASURED_CPU, workdir / "prometheus.log")
        deadline = time.monotonic() + 30
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"prometheus did not start: {tail(workdir / 'prometheus.log')}")
            time.sleep(0.1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                return int(response.status) == 200
        except OSError:
            return False

    def configure(self, target_port: int, interval: float, rules: list[tuple[str, str]]) -> None:
        """Scrape the target and evaluate ``rules`` (record name, expr) every ``interval``; reload."""
        every = _duration(interval)
        (self.dir / "rules.yml").write_text(json.dumps({"groups": [{
            "name": "bench", "interval": every, "rules": [{"record": name, "expr": expr} for name, expr in rules]}]}))
        self.config.write_text(json.dumps({
            "global": {"scrape_interval": every, "scrape_timeout": every, "evaluation_interval": every},
            "rule_files": [str(self.dir / "rules.yml")],
            "scrape_configs": [{"job_name": "app", "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}]}],
        }))
        self.proc.send_signal(signal.SIGHUP)  # our own child, by its pid
        deadline = time.monotonic() + 15
        while True:
            loaded = sum(len(group["rules"]) for group in self.api("rules")["groups"])
            if loaded == len(rules) and self.api("targets")["activeTargets"]:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"prometheus did not take its config: {tail(self.dir / 'prometheus.log')}")
            time.sleep(0.1)

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.url}/api/v1/{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def collect(self) -> None:
        """Run Go's GC (``/debug/pprof/heap?gc=1`` does before profiling), so the next heap
        reading is live memory, comparable with the daemon's walk after ``gc.collect()``."""
        with urllib.request.urlopen(f"{self.url}/debug/pprof/heap?gc=1", timeout=30) as response:
            response.read()

    def metrics(self) -> dict[str, float]:
        """Its own /metrics, summed by metric name (labels dropped)."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as response:
            text = response.read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            name = re.split(r"[{ ]", line, maxsplit=1)[0]
            with contextlib.suppress(ValueError):
                out[name] = out.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
        return out

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def rss(self) -> float:
        return status_kib(self.proc.pid, "VmRSS") * 1024.0

    def value(self, record: str) -> float | None:
        result = self.api("query", query=record)["result"]
        return float(result[0]["value"][1]) if len(result) == 1 else None


# --- the run ----------------------------------------------------------------------------------

def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def _bytes(n: float) -> str:
    return f"{n:,.0f}"


def _value(v: float | None) -> str:
    return "—" if v is None else f"{v:.4g}"


async def bench(args: argparse.Namespace) -> str:
    scale = NOMINAL_INTERVAL / args.interval
    queries, source = catalog_queries()
    records = [(f"bench:{slug(label)}", scaled(q, scale)) for label, q in queries]
    t0 = time.time()
    workdir = Path(tempfile.mkdtemp(prefix="bench-metrics-vs-prometheus-"))
    try:
        with running_target(t0, scale) as (port, target_series_count):
            url = f"http://127.0.0.1:{port}/metrics"
            checks = [MetricsCheck.model_validate({"name": f"bench_{slug(label)}", "kind": "metrics", "url": url, "query": q,
                                            "interval": f"{NOMINAL_INTERVAL:g}s", "timeout": "10s"})
                      for label, q in queries]
            retention = max(c.compiled_query.retention for c in checks)  # seconds on the checks' clock
            warmup = retention / scale + 3 * args.interval

            prom = Prometheus(workdir)
            try:
                # Prometheus alone, before it has a target: the baseline of its memory and idle CPU.
                time.sleep(2)
                prom.collect()
                base = prom.metrics()
                base_rss = prom.rss()
                idle_cpu0, idle_t0 = prom.cpu(), time.monotonic()
                time.sleep(8)
                idle_ms_per_s = (prom.cpu() - idle_cpu0) / (time.monotonic() - idle_t0) * 1000

                prom.configure(port, args.interval, records)

                # Warm-up: both scrape until the daemon's longest retention is full.
                env = ProbeEnv(clock=ScaledClock(t0, scale))
                try:
                    warm = await run_rounds(checks, env, args.interval, warmup)
                    targets = [target_of(c, env) for c in checks]
                    kept = [t.store.series_count for t in targets]
                    samples = sum(t.store.sample_count for t in targets)
                    seen: set[int] = set()
                    heap = sum(deep_size([t.store, t.cache], seen) for t in targets)
                    scraped = targets[0].scraped

                    # The measured window.
                    before = prom.metrics()
                    p_cpu0 = prom.cpu()
                    runs = await run_rounds(checks, env, args.interval, args.seconds)
                    p_cpu = prom.cpu() - p_cpu0
                    after = prom.metrics()
                    prom_values = [prom.value(name) for name, _ in records]
                    prom.collect()
                    memory = prom.metrics()
                    p_rss = prom.rss()

                    # Prometheus scraping without the rules, the daemon still running (same
                    # load on the core): the difference is what the rules cost it.
                    prom.configure(port, args.interval, [])
                    time.sleep(2 * args.interval)
                    bare0, bare_cpu0 = prom.metrics(), prom.cpu()
                    await run_rounds(checks, env, args.interval, BARE_SECONDS)
                    bare_cpu, bare1 = prom.cpu() - bare_cpu0, prom.metrics()
                finally:
                    await env.close()
                prom_log = tail(workdir / "prometheus.log", 5)
            finally:
                stop(prom.proc)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    # Cross-check of the walk, with nothing else running: the largest check's state under tracemalloc.
    probe_check = checks[kept.index(max(kept))]
    traced, walked, traced_series = traced_fill(probe_check)

    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    scrapes = delta("prometheus_target_interval_length_seconds_count")
    iterations = delta("prometheus_rule_group_iterations_total")
    missed = delta("prometheus_rule_group_iterations_missed_total")
    failed_rules = delta("prometheus_rule_evaluation_failures_total")
    appended = delta("prometheus_tsdb_head_samples_appended_total")
    head = after["prometheus_tsdb_head_series"]
    heap_inuse, heap_base = memory["go_memstats_heap_inuse_bytes"], base["go_memstats_heap_inuse_bytes"]
    bare_scrapes = (bare1["prometheus_target_interval_length_seconds_count"]
                    - bare0["prometheus_target_interval_length_seconds_count"])
    bare_per_scrape = bare_cpu / bare_scrapes if bare_scrapes else float("nan")
    samples_per_head_series = memory["prometheus_tsdb_head_samples_appended_total"] / head
    prom_per_scrape = p_cpu / scrapes if scrapes else float("nan")
    rounds = len(runs.cpu[0])

    rows = []
    per_round = [sum(run[i] for run in runs.cpu) for i in range(rounds)]
    for (label, q), (record, expr), times, store_series, result, pv in zip(
            queries, records, runs.cpu, kept, runs.last, prom_values):
        ours = result.value if result is not None else None
        rows.append([f"{label}: `{q}`", f"{store_series:,}", _ms(statistics.median(times)), _ms(statistics.fmean(times)),
                     f"{_value(ours)} / {_value(pv)}"])
    rows.append([f"**all {len(queries)} queries, one interval** (daemon: {len(queries)} scrapes; Prometheus: 1 scrape"
                 f" + {len(queries)} rules)", f"{sum(kept):,}", _ms(statistics.median(per_round)),
                 _ms(statistics.fmean(per_round)), ""])
    rows.append([f"**Prometheus 2.42**, per scrape (scrape + {len(queries)} recording rules, TSDB, GC; CPU"
                 f" {p_cpu:.2f} s / {scrapes:.0f} scrapes)", f"{head:,.0f} (head)", "—", _ms(prom_per_scrape), ""])
    rows.append([f"Prometheus 2.42, per scrape without the rules ({BARE_SECONDS:g} s after the window, the daemon"
                 f" still running; CPU {bare_cpu:.2f} s / {bare_scrapes:.0f} scrapes)", "", "—", _ms(bare_per_scrape),
                 ""])

    mem_rows = [
        ["daemon: Python objects of the checks' stores and parse caches (walk)",
         f"{sum(kept):,} (over {len(checks)} stores)", _bytes(heap), _bytes(heap / sum(kept))],
        ["daemon: of which sample arrays' payload (samples × 16 B)", f"{samples:,} samples", _bytes(samples * 16),
         _bytes(samples * 16 / sum(kept))],
        [f"cross-check, `{probe_check.name}` alone filled offline: `tracemalloc` / walk", f"{traced_series:,}",
         f"{_bytes(traced)} / {_bytes(walked)}", f"{_bytes(traced / traced_series)} / {_bytes(walked / traced_series)}"],
        ["Prometheus: RSS", f"{head:,.0f}", _bytes(p_rss), _bytes(p_rss / head)],
        ["Prometheus: RSS growth over its empty start", f"{head:,.0f}", _bytes(p_rss - base_rss),
         _bytes((p_rss - base_rss) / head)],
        ["Prometheus: `go_memstats_heap_inuse_bytes`", f"{head:,.0f}", _bytes(heap_inuse), _bytes(heap_inuse / head)],
        ["Prometheus: heap in use, growth over its empty start", f"{head:,.0f}", _bytes(heap_inuse - heap_base),
         _bytes((heap_inuse - heap_base) / head)],
    ]
    daemon_round = statistics.fmean(per_round)
    body = "\n".join([
        "## The `metrics` kind beside Prometheus 2.42 (`bench/metrics_vs_prometheus.py`)", "",
        f"Command: `{command_line()}`", "",
        *machine_info(),
        f"- Prometheus: `{PROMETHEUS}` ({_prometheus_version()}), pinned to CPU {MEASURED_CPU} (GOMAXPROCS=1) like"
        f" this process (the daemon side); the target on CPU {LOAD_CPU}", "",
        f"A target of {target_series_count:,} series ({scraped:,} samples a scrape; request counters by"
        f" route/status/method/instance, request-duration buckets, DB-pool and process gauges), gzip, scraped"
        f" by both sides at once. Queries: {source}. One interval here is {args.interval:g} s of real time standing"
        f" for {NOMINAL_INTERVAL:g} s: the target's clock and the daemon checks' clock run {scale:g}x fast, so the"
        f" checks keep their {NOMINAL_INTERVAL:g}s interval, `[5m]` ranges and production-sized stores"
        f" (retention = range + 5 m lookback); Prometheus scrapes and evaluates every {args.interval:g} s with"
        f" the ranges divided by {scale:g} (`{records[0][1]}`), i.e. the same {300 / NOMINAL_INTERVAL:.0f}"
        f" samples per 5-minute window. Warm-up {warmup:.0f} s ({len(warm.cpu[0])} rounds, the daemon's longest"
        f" retention of {retention / 60:g} min filled), then {args.seconds:g} s measured: {rounds} daemon rounds"
        f" ({runs.overruns} overran the interval), {scrapes:.0f} Prometheus scrapes and {iterations:.0f} rule-group"
        f" evaluations ({missed:.0f} missed, {failed_rules:.0f} rule failures, {appended:,.0f} samples appended).", "",
        "CPU ms per scrape + evaluation. Daemon: each check run through `run_check` (scrape, parse, keep the"
        " selected series, evaluate), `time.process_time()` of all threads; Prometheus: utime+stime from"
        f" /proc over the window ÷ its scrapes. Idle Prometheus (no target, no rules) used {idle_ms_per_s:.2f}"
        " ms of CPU per second (over 8 s, in 10-ms ticks), included in its number. Last value: daemon /"
        " Prometheus recording rule.", "",
        md_table(["query (one `metrics` check each)", "kept series", "daemon CPU ms (median)", "CPU ms (mean)",
                  "last value daemon / Prometheus"], rows),
        "",
        "Memory once the windows are full: the daemon's after the warm-up, Prometheus' at the end of the measured"
        f" window ({samples_per_head_series:.0f} samples a head series), each reading right after a forced GC"
        " (`gc.collect()`; Prometheus' `/debug/pprof/heap?gc=1`), its \"empty start\" before it had a target or"
        " rules.", "",
        md_table(["what", "series", "bytes", "bytes per series"], mem_rows),
        "",
        reading(queries, runs, kept, daemon_round=daemon_round, prom_scrape=prom_per_scrape,
                prom_bare=bare_per_scrape, heap=heap, rss_growth=p_rss - base_rss, heap_growth=heap_inuse - heap_base,
                head=head, head_samples=samples_per_head_series),
    ])
    if prom_log.strip():
        print("prometheus log tail:\n" + prom_log)
    return body


def reading(queries: list[tuple[str, str]], runs: DaemonRuns, kept: list[int], *, daemon_round: float,
            prom_scrape: float, prom_bare: float, heap: int, rss_growth: float, heap_growth: float, head: float,
            head_samples: float) -> str:
    """The interpretation, written from this run's numbers (so it cannot go stale)."""
    means = [statistics.fmean(times) for times in runs.cpu]
    cheapest = min(range(len(means)), key=lambda n: means[n])
    single = "less" if max(means) < prom_scrape else "not always less"
    fewest = next((k for k in range(1, len(means) + 1) if sum(sorted(means, reverse=True)[:k]) > prom_scrape), None)
    crossover = (f"from {fewest} such checks on one target the daemon spends more than Prometheus" if fewest
                 else "even all of them together cost less than Prometheus' one scrape")
    rules = prom_scrape - prom_bare
    rules_text = (f"Prometheus' {len(queries)} rules cost it about {_ms(rules)} ms per evaluation (its CPU per scrape"
                  f" with them minus without), the rest is the scrape, TSDB append, WAL and GC" if rules > 0 else
                  "Prometheus' CPU per scrape did not drop measurably without its rules, so nearly all of it is the"
                  " scrape, TSDB append, WAL and GC")
    kept_total = sum(kept)
    mine, theirs = heap / kept_total, heap_growth / head
    factor = max(mine, theirs) / min(mine, theirs)
    per_series = ("the same order" if factor < 2 else
                  f"{factor:.1f}x {'more' if mine > theirs else 'less'} for the daemon")
    return (
        f"Reading it: one `metrics` check costs {_ms(min(means))}–{_ms(max(means))} ms per run, {single} than"
        f" Prometheus' {_ms(prom_scrape)} ms per scrape for all {len(queries)} rules; but the daemon scrapes,"
        f" decompresses and parses the target once per check while Prometheus scrapes once for all its rules, so"
        f" the daemon's cost grows with the number of checks on one target: {crossover} (all {len(queries)}:"
        f" {_ms(daemon_round)} ms, {daemon_round / prom_scrape:.1f}x). The cheapest check, `{queries[cheapest][0]}`"
        f" ({kept[cheapest]:,} series kept), is about the fixed cost of fetching and checking every line of the"
        f" target; the ones keeping thousands of series add storing and evaluating them. {rules_text}."
        f" Memory: the daemon's checks hold {heap / 1e6:.1f} MB of Python objects for {kept_total:,} kept series"
        f" (a copy per check, for range + 5 m lookback), Prometheus grew by {heap_growth / 1e6:.1f} MB of Go heap"
        f" in use ({rss_growth / 1e6:.1f} MB RSS) for {head:,.0f} head series (every series of the target):"
        f" {_bytes(mine)} against {_bytes(theirs)} bytes per series, {per_series}. Its head had"
        f" {head_samples:.0f} samples a series ({head_samples * NOMINAL_INTERVAL / 60:.0f} min at"
        f" {NOMINAL_INTERVAL:g} s); in production it keeps 2–3 h in the head (full chunks memory-mapped from"
        " disk), the daemon never more than its retention. Not counted on the daemon side: what it does with a"
        " result afterwards (history, rules, alerting); on the Prometheus side: Alertmanager, which alerting on"
        " these rules would add."
    )


def _prometheus_version() -> str:
    import subprocess

    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run([PROMETHEUS, "--version"], capture_output=True, text=True, timeout=10)
        match = re.search(r"version (\S+)", out.stdout + out.stderr)
        if match:
            return match.group(1)
    return "version unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--seconds", type=float, default=90.0, help="measured window after the warm-up (s)")
    parser.add_argument("--interval", type=float, default=1.0,
                        help=f"real seconds per round, standing for {NOMINAL_INTERVAL:g} s (default 1)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    if not Path(PROMETHEUS).exists():
        raise SystemExit(f"{PROMETHEUS} is missing: `make test` or `apt-get install -y prometheus` installs it")
    pin_self(MEASURED_CPU)
    body = asyncio.run(bench(args))
    print(body)
    if not args.no_write:
        update_results_section("metrics_vs_prometheus", body)


if __name__ == "__main__":
    main()
