"""Throughput of the monitor daemon on one core, with blackbox_exporter as the reference.

For each scenario the daemon is started on a generated config of N identical HTTP checks
against bench/target.py, left to warm up, and then measured over a window bounded by two
``GET /metrics`` scrapes:

* probes/s           — delta of sum(monitor_check_runs_total) over the window
* scheduler lag      — p50/p99 of the bucket deltas of monitor_scheduler_lag_seconds,
                       interpolated like Prometheus' histogram_quantile()
* CPU s / 1000 probes — utime+stime of the daemon process from /proc/<pid>/stat
* peak RSS           — VmHWM from /proc/<pid>/status
* start jitter       — independent of the daemon's metrics: each check's URL carries
                       ``?check=NAME`` and the target time-stamps arrivals; a run's jitter is
                       how much later it arrived than the check's best-aligned run in the
                       window (arrival − k·interval, minus that check's minimum)

blackbox_exporter is then driven at the same probe rate (keep-alive GETs of /probe from an
in-process asyncio load generator) and its CPU per 1,000 probes measured the same way.

    python -m bench.throughput                      # both standard scenarios + blackbox
    python -m bench.throughput --checks 2000 --interval 2 --duration 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import re
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bench._common import (
    LOAD_CPU,
    MEASURED_CPU,
    Target,
    command_line,
    cpu_seconds,
    free_port,
    machine_info,
    md_table,
    pin_self,
    run_target,
    spawn,
    status_kib,
    stop,
    tail,
    target_arrivals,
    target_requests,
    update_results_section,
)

STANDARD_SCENARIOS = [(1000, 1.0), (10_000, 10.0)]  # both ≈ 1,000 probes/s
RUNS_METRIC = "monitor_check_runs_total"
SKIPPED_METRIC = "monitor_check_skipped_runs_total"
LAG_METRIC = "monitor_scheduler_lag_seconds"
BLACKBOX_BIN = "prometheus-blackbox-exporter"


# --------------------------------------------------------------------------- metrics


@dataclass
class Snapshot:
    """The parts of one /metrics scrape the benchmark needs."""

    runs_by_result: dict[str, float] = field(default_factory=dict)
    lag_buckets: dict[float, float] = field(default_factory=dict)  # le -> cumulative count
    lag_sum: float = 0.0
    lag_count: float = 0.0
    skipped: float = 0.0
    names: set[str] = field(default_factory=set)
    size_bytes: int = 0

    @property
    def runs(self) -> float:
        return sum(self.runs_by_result.values())


def parse_metrics(text: str) -> Snapshot:
    snap = Snapshot(size_bytes=len(text.encode()))
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            snap.names.add(sample.name)
            if sample.name == RUNS_METRIC:
                result = sample.labels.get("result", "?")
                snap.runs_by_result[result] = snap.runs_by_result.get(result, 0.0) + sample.value
            elif sample.name == LAG_METRIC + "_bucket":
                # Sum across any other labels: the benchmark wants the daemon-wide lag.
                le = float(sample.labels["le"])
                snap.lag_buckets[le] = snap.lag_buckets.get(le, 0.0) + sample.value
            elif sample.name == SKIPPED_METRIC:
                snap.skipped += sample.value
            elif sample.name == LAG_METRIC + "_sum":
                snap.lag_sum += sample.value
            elif sample.name == LAG_METRIC + "_count":
                snap.lag_count += sample.value
    return snap


def histogram_quantile(q: float, buckets: dict[float, float]) -> float:
    """Prometheus' histogram_quantile() on cumulative buckets {le: count}: find the bucket
    holding rank q*total and interpolate linearly inside it (lower bound 0 for the first
    bucket); a rank in the +Inf bucket returns the highest finite bound."""
    ordered = sorted(buckets.items())
    if not ordered or not math.isinf(ordered[-1][0]):
        return math.nan
    total = ordered[-1][1]
    if total <= 0:
        return math.nan
    rank = q * total
    prev_le, prev_count = 0.0, 0.0
    for le, count in ordered:
        if count >= rank:
            if math.isinf(le):
                return prev_le
            if count == prev_count:
                return le
            return prev_le + (le - prev_le) * (rank - prev_count) / (count - prev_count)
        prev_le, prev_count = le, count
    return ordered[-2][0] if len(ordered) > 1 else math.nan


def bucket_delta(before: Snapshot, after: Snapshot) -> dict[float, float]:
    return {le: count - before.lag_buckets.get(le, 0.0) for le, count in after.lag_buckets.items()}


def http_get(url: str, timeout: float) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


# --------------------------------------------------------------------------- daemon


@dataclass
class DaemonResult:
    checks: int
    interval: float
    startup_s: float = math.nan
    window_s: float = math.nan
    probes_per_s: float = math.nan
    target_req_per_s: float = math.nan
    target_cpu_fraction: float = math.nan
    lag_p50: float = math.nan
    lag_p99: float = math.nan
    lag_mean: float = math.nan
    jitter_p50: float = math.nan
    jitter_p99: float = math.nan
    jitter_max: float = math.nan
    skipped_runs: float = math.nan
    cpu_fraction: float = math.nan  # of one core
    cpu_per_1000: float = math.nan
    peak_rss_mib: float = math.nan
    results: dict[str, float] = field(default_factory=dict)
    scrape_ms: float = math.nan
    scrape_kib: float = math.nan
    scrape_cpu_s: float = math.nan
    per_second_min: int = -1  # probes arriving at the target per whole second of the window
    per_second_max: int = -1
    error: str | None = None

    @property
    def expected_per_s(self) -> float:
        return self.checks / self.interval


def write_config(directory: Path, checks: int, interval: float, target: Target, listen_port: int, tagged: bool) -> Path:
    """The two-file layout the daemon expects; YAML written by hand so the benchmark has
    no dependency on PyYAML's formatting choices."""
    timeout = min(interval, 5.0)
    main = directory / "monitor.yaml"
    main.write_text(
        "global:\n"
        f"  listen: 127.0.0.1:{listen_port}\n"
        f"  state: sqlite:///{directory}/monitor.db\n"
        "check_files: [checks.yaml]\n"
        "rule_files: []\n"
    )
    lines = ["checks:"]
    lines += [
        f"  - {{name: {name}, kind: http, url: '{target.check_url(name) if tagged else target.health_url}', "
        f"interval: {interval:g}s, timeout: {timeout:g}s}}"
        for name in (f"bench_{i:04d}" for i in range(1, checks + 1))
    ]
    (directory / "checks.yaml").write_text("\n".join(lines) + "\n")
    return main


def wait_ready(proc: subprocess.Popen[bytes], base: str, timeout: float) -> float:
    """Seconds until GET /readyz answers 200; raises if the daemon dies or never gets there."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited with status {proc.returncode} before /readyz")
        with contextlib.suppress(OSError):
            if http_get(base + "/readyz", timeout=2)[0] == 200:
                return time.monotonic() - started
        time.sleep(0.1)
    raise RuntimeError(f"/readyz not 200 after {timeout:.0f}s")


def sleep_watching(proc: subprocess.Popen[bytes], seconds: float, what: str) -> None:
    """Sleep in short steps so a crash is noticed (and reported) at once."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} during the run")
        time.sleep(min(left, 0.5))


def measure_daemon(monitor_bin: str, target: Target, checks: int, interval: float, warmup: float,
                   duration: float, workdir: Path, tagged: bool) -> DaemonResult:
    result = DaemonResult(checks, interval)
    scenario_dir = workdir / f"daemon-{checks}x{interval:g}s"
    scenario_dir.mkdir()
    port = free_port()
    config = write_config(scenario_dir, checks, interval, target, port, tagged)
    base = f"http://127.0.0.1:{port}"
    log = scenario_dir / "daemon.log"
    print(f"[daemon] {checks} checks @ {interval:g}s (expect {checks / interval:.0f} probes/s); log {log}", flush=True)
    proc = spawn([monitor_bin, "run", "-c", str(config)], MEASURED_CPU, log)
    try:
        result.startup_s = wait_ready(proc, base, timeout=30 + checks / 200)
        sleep_watching(proc, warmup, "daemon")
        snap1, mid1, scrape1 = scrape(base)
        target_arrivals(target.port)  # discard: only arrivals inside the window count
        cpu1, tc1, treq1, tcpu1 = cpu_seconds(proc.pid), time.monotonic(), target_requests(target.port), cpu_seconds(target.pid)
        sleep_watching(proc, duration, "daemon")
        cpu2, tc2, treq2, tcpu2 = cpu_seconds(proc.pid), time.monotonic(), target_requests(target.port), cpu_seconds(target.pid)
        result.target_cpu_fraction = (tcpu2 - tcpu1) / (tc2 - tc1)
        arrivals = target_arrivals(target.port)
        cpu_pre = cpu_seconds(proc.pid)
        snap2, mid2, scrape2 = scrape(base)
        # Daemon CPU while one scrape is served (probing goes on meanwhile, so this is an
        # upper bound on the scrape's own cost); kept out of the per-probe figure above.
        result.scrape_cpu_s = cpu_seconds(proc.pid) - cpu_pre
        if tagged:
            fill_jitter(result, start_jitter(arrivals, interval))
            result.per_second_min, result.per_second_max = per_second_extremes(arrivals)
        result.peak_rss_mib = status_kib(proc.pid, "VmHWM") / 1024
        fill_daemon_result(result, snap1, snap2, mid2 - mid1, (cpu2 - cpu1) / (tc2 - tc1), (treq2 - treq1) / (tc2 - tc1))
        result.scrape_ms = scrape2 * 1000  # the one whose CPU is measured
        result.scrape_kib = snap2.size_bytes / 1024
    except (RuntimeError, OSError, ValueError) as err:
        result.error = f"{type(err).__name__}: {err}"
        print(f"[daemon] FAILED: {result.error}\n--- daemon.log tail ---\n{tail(log)}", flush=True)
    finally:
        code = stop(proc)
        if code not in (0, -15, None) and result.error is None:
            result.error = f"daemon exited with status {code} on SIGTERM"
            print(f"[daemon] {result.error}\n{tail(log)}", flush=True)
    print(f"[daemon] {summary(result)}", flush=True)
    return result


def scrape(base: str) -> tuple[Snapshot, float, float]:
    """(snapshot, monotonic midpoint of the request, seconds it took): the counters were
    read somewhere inside the request, so its midpoint is the best timestamp we have."""
    started = time.monotonic()
    status, body = http_get(base + "/metrics", timeout=30)
    finished = time.monotonic()
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}")
    return parse_metrics(body), (started + finished) / 2, finished - started


def fill_daemon_result(result: DaemonResult, snap1: Snapshot, snap2: Snapshot, window: float,
                       cpu_fraction: float, target_rate: float) -> None:
    if RUNS_METRIC not in snap2.names:
        monitor_names = sorted(n for n in snap2.names if n.startswith("monitor_"))
        raise RuntimeError(f"{RUNS_METRIC} not exported; monitor_* samples: {monitor_names}")
    result.window_s = window
    result.probes_per_s = (snap2.runs - snap1.runs) / window
    result.results = {k: v - snap1.runs_by_result.get(k, 0.0) for k, v in snap2.runs_by_result.items()}
    result.target_req_per_s = target_rate
    deltas = bucket_delta(snap1, snap2)
    result.lag_p50 = histogram_quantile(0.5, deltas)
    result.lag_p99 = histogram_quantile(0.99, deltas)
    count = snap2.lag_count - snap1.lag_count
    result.lag_mean = (snap2.lag_sum - snap1.lag_sum) / count if count > 0 else math.nan
    result.skipped_runs = snap2.skipped - snap1.skipped
    result.cpu_fraction = cpu_fraction
    if result.probes_per_s > 0:
        result.cpu_per_1000 = cpu_fraction / result.probes_per_s * 1000


def start_jitter(arrivals: list[tuple[float, str]], interval: float) -> list[float]:
    """Per-run lateness relative to each check's own best-aligned run in the window.

    The daemon's planned times are not observable from outside, but a check that keeps up
    arrives at t0 + k·interval; subtracting k·interval and the check's minimum leaves how
    late each run started (connect time included).  A constant delay shared by every run
    of a check is invisible, and lateness over interval/2 is mis-attributed to the next
    slot, so this is a lower bound — but one that does not trust the daemon's own clock.
    """
    by_check: dict[str, list[float]] = defaultdict(list)
    for when, name in arrivals:
        by_check[name].append(when)
    samples: list[float] = []
    for times in by_check.values():
        if len(times) < 2:
            continue
        times.sort()
        offsets = [t - round((t - times[0]) / interval) * interval for t in times]
        base = min(offsets)
        samples += sorted(o - base for o in offsets)[1:]  # drop the reference run (0 by definition)
    return samples


def per_second_extremes(arrivals: list[tuple[float, str]]) -> tuple[int, int]:
    """Fewest / most probes that reached the target in any whole second of the window: a
    scheduler that spreads its checks keeps both near the average rate."""
    if not arrivals:
        return -1, -1
    start = min(t for t, _ in arrivals)
    bins = [0] * (int(max(t for t, _ in arrivals) - start))  # whole seconds only
    for when, _ in arrivals:
        index = int(when - start)
        if index < len(bins):
            bins[index] += 1
    return (min(bins), max(bins)) if bins else (-1, -1)


def fill_jitter(result: DaemonResult, samples: list[float]) -> None:
    if not samples:
        return
    samples.sort()
    def pick(q: float) -> float:  # nearest rank: exact samples, no bucket interpolation needed
        return samples[min(len(samples) - 1, int(q * len(samples)))]

    result.jitter_p50, result.jitter_p99, result.jitter_max = pick(0.5), pick(0.99), samples[-1]


def summary(r: DaemonResult) -> str:
    if r.error:
        return f"error: {r.error}"
    return (f"{r.probes_per_s:.0f}/{r.expected_per_s:.0f} probes/s, lag p50 {fmt_ms(r.lag_p50)} p99 {fmt_ms(r.lag_p99)} "
            f"(mean {fmt_ms(r.lag_mean)}), target-side start jitter p50 {fmt_ms(r.jitter_p50)} p99 {fmt_ms(r.jitter_p99)} "
            f"max {fmt_ms(r.jitter_max)}, probes/s per 1-s bin min {r.per_second_min} max {r.per_second_max}, "
            f"skipped runs {r.skipped_runs:.0f}, "
            f"CPU {r.cpu_fraction:.0%} of a core = {r.cpu_per_1000:.3f} s/1000 probes, peak RSS {r.peak_rss_mib:.0f} MiB, "
            f"results {fmt_results(r.results)}")


# --------------------------------------------------------------------------- blackbox


@dataclass
class LoadStats:
    sent: int = 0
    ok: int = 0
    failed: int = 0  # HTTP error or probe_success 0
    dropped: int = 0  # not sent because too many were already in flight (falling behind)


@dataclass
class BlackboxResult:
    rate: float
    version: str = ""
    window_s: float = math.nan
    probes_per_s: float = math.nan
    target_req_per_s: float = math.nan
    target_cpu_fraction: float = math.nan
    cpu_fraction: float = math.nan
    cpu_per_1000: float = math.nan
    loadgen_cpu_per_1000: float = math.nan
    peak_rss_mib: float = math.nan
    failed: int = 0
    dropped: int = 0
    error: str | None = None


BLACKBOX_CONFIG = """\
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      valid_status_codes: []  # empty = any 2xx, like the daemon's default
      preferred_ip_protocol: ip4
"""


async def paced_load(session: aiohttp.ClientSession, url: str, rate: float, stats: LoadStats,
                     stop_event: asyncio.Event, max_inflight: int) -> None:
    """Open-loop load: requests are due at a fixed rate whatever the latency, like a
    scheduler's probes; when the exporter cannot keep up they pile up (bounded) instead of
    silently slowing the offered rate."""
    inflight: set[asyncio.Task[None]] = set()

    async def one() -> None:
        try:
            async with session.get(url) as response:
                body = await response.read()
            if response.status == 200 and b"probe_success 1" in body:
                stats.ok += 1
            else:
                stats.failed += 1
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
            stats.failed += 1

    started = time.monotonic()
    while not stop_event.is_set():
        due = int((time.monotonic() - started) * rate) - stats.sent - stats.dropped
        for _ in range(max(due, 0)):
            if len(inflight) >= max_inflight:
                stats.dropped += 1
                continue
            stats.sent += 1
            task = asyncio.create_task(one())
            inflight.add(task)
            task.add_done_callback(inflight.discard)
        await asyncio.sleep(0.005)
    if inflight:
        await asyncio.wait(inflight, timeout=10)


def blackbox_version() -> str:
    out = subprocess.run([BLACKBOX_BIN, "--version"], capture_output=True, text=True, timeout=10)
    match = re.search(r"version (\S+)", out.stdout + out.stderr)
    return match.group(1) if match else "unknown"


async def drive_blackbox(pid: int, base: str, target: Target, rate: float, warmup: float,
                         duration: float, result: BlackboxResult) -> None:
    url = f"{base}/probe?module=http_2xx&target={urllib.parse.quote(target.health_url, safe='')}"
    stats = LoadStats()
    stop_event = asyncio.Event()
    # Keep-alive to the exporter: the reference should pay for probing, not for accepting
    # our connections.  Probes themselves are fresh connections to the target anyway.
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as session:
        load = asyncio.create_task(paced_load(session, url, rate, stats, stop_event, max_inflight=int(rate * 5)))
        try:
            await asyncio.sleep(warmup)
            done1, cpu1, self1, tc1, treq1 = stats.ok + stats.failed, cpu_seconds(pid), self_cpu(), time.monotonic(), target_requests(target.port)
            tcpu1 = cpu_seconds(target.pid)
            failed1, dropped1 = stats.failed, stats.dropped
            await asyncio.sleep(duration)
            done2, cpu2, self2, tc2, treq2 = stats.ok + stats.failed, cpu_seconds(pid), self_cpu(), time.monotonic(), target_requests(target.port)
            tcpu2 = cpu_seconds(target.pid)
        finally:
            stop_event.set()
            await asyncio.wait_for(load, timeout=15)
    window = tc2 - tc1
    result.window_s = window
    result.probes_per_s = (done2 - done1) / window
    result.target_req_per_s = (treq2 - treq1) / window
    result.cpu_fraction = (cpu2 - cpu1) / window
    result.target_cpu_fraction = (tcpu2 - tcpu1) / window
    result.failed = stats.failed - failed1
    result.dropped = stats.dropped - dropped1
    if done2 > done1:
        result.cpu_per_1000 = (cpu2 - cpu1) / (done2 - done1) * 1000
        result.loadgen_cpu_per_1000 = (self2 - self1) / (done2 - done1) * 1000


def self_cpu() -> float:
    """CPU of this driver process, i.e. the load generator (plus negligible bookkeeping)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure_blackbox(target: Target, rate: float, warmup: float, duration: float, workdir: Path) -> BlackboxResult:
    result = BlackboxResult(rate)
    if shutil.which(BLACKBOX_BIN) is None:
        result.error = f"{BLACKBOX_BIN} not installed (apt-get install prometheus-blackbox-exporter); skipped"
        print(f"[blackbox] {result.error}", flush=True)
        return result
    result.version = blackbox_version()
    bb_dir = workdir / f"blackbox-{rate:g}"
    bb_dir.mkdir()
    (bb_dir / "blackbox.yml").write_text(BLACKBOX_CONFIG)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = bb_dir / "blackbox.log"
    argv = [BLACKBOX_BIN, f"--config.file={bb_dir / 'blackbox.yml'}", f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    print(f"[blackbox] {result.version} at {rate:.0f} probes/s; log {log}", flush=True)
    proc = spawn(argv, MEASURED_CPU, log)
    try:
        wait_http_ok(proc, base + "/metrics", timeout=20)
        asyncio.run(drive_blackbox(proc.pid, base, target, rate, warmup, duration, result))
        result.peak_rss_mib = status_kib(proc.pid, "VmHWM") / 1024
        if proc.poll() is not None:
            raise RuntimeError(f"exporter exited with status {proc.returncode}")
    except (RuntimeError, OSError, ValueError, asyncio.TimeoutError) as err:
        result.error = f"{type(err).__name__}: {err}"
        print(f"[blackbox] FAILED: {result.error}\n{tail(log)}", flush=True)
    finally:
        stop(proc)
    if result.error is None:
        print(f"[blackbox] {result.probes_per_s:.0f}/{rate:.0f} probes/s, CPU {result.cpu_fraction:.0%} of a core = "
              f"{result.cpu_per_1000:.3f} s/1000 probes (load generator {result.loadgen_cpu_per_1000:.3f}), "
              f"peak RSS {result.peak_rss_mib:.0f} MiB, failed {result.failed}, dropped {result.dropped}", flush=True)
    return result


def wait_http_ok(proc: subprocess.Popen[bytes], url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with status {proc.returncode} at start-up")
        with contextlib.suppress(OSError):
            if http_get(url, timeout=2)[0] == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} not 200 after {timeout:.0f}s")


# --------------------------------------------------------------------------- report


def fmt_ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.1f} ms"


def fmt(value: float, spec: str) -> str:
    return "n/a" if math.isnan(value) else format(value, spec)


def fmt_results(results: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.0f}" for k, v in sorted(results.items())) or "none"


def report(daemons: list[DaemonResult], blackboxes: list[BlackboxResult], warmups: dict[float, float], duration: float) -> str:
    header = ["prober", "scenario", "expected probes/s", "achieved probes/s", "target req/s",
              "sched lag p50 / p99 (daemon metric)", "start jitter p50 / p99 / max (target-side)", "CPU (% of 1 core)", "CPU s / 1000 probes", "peak RSS MiB", "notes"]
    rows: list[list[str]] = []
    for d in daemons:
        if d.error:
            rows.append(["monitor", f"{d.checks} checks @ {d.interval:g}s", f"{d.expected_per_s:.0f}", "—", "—", "—", "—", "—", "—", "—", f"**{d.error}**"])
            continue
        notes = (f"ready after {d.startup_s:.1f}s; results {fmt_results(d.results)}; skipped runs {d.skipped_runs:.0f}; "
                 f"lag mean {fmt_ms(d.lag_mean)}; probes reaching the target per 1-s bin: min {d.per_second_min}, "
                 f"max {d.per_second_max}; one /metrics scrape: {d.scrape_kib:.0f} KiB in {d.scrape_ms:.0f} ms, "
                 f"daemon CPU meanwhile {d.scrape_cpu_s:.2f} s (excluded from CPU/1000)")
        rows.append(["monitor", f"{d.checks} checks @ {d.interval:g}s", f"{d.expected_per_s:.0f}",
                     f"{d.probes_per_s:.0f} ({d.probes_per_s / d.expected_per_s:.1%})",
                     f"{d.target_req_per_s:.0f} (target CPU {d.target_cpu_fraction:.0%})",
                     f"{fmt_ms(d.lag_p50)} / {fmt_ms(d.lag_p99)}",
                     f"{fmt_ms(d.jitter_p50)} / {fmt_ms(d.jitter_p99)} / {fmt_ms(d.jitter_max)}", f"{d.cpu_fraction:.0%}", fmt(d.cpu_per_1000, ".3f"),
                     fmt(d.peak_rss_mib, ".0f"), notes])
    for b in blackboxes:
        if b.error:
            rows.append(["blackbox_exporter", f"/probe @ {b.rate:.0f}/s", f"{b.rate:.0f}", "—", "—", "n/a", "n/a", "—", "—", "—", f"**{b.error}**"])
            continue
        notes = (f"v{b.version}; load generator (aiohttp, keep-alive) {b.loadgen_cpu_per_1000:.3f} CPU s/1000, not included; "
                 f"failed {b.failed}, dropped {b.dropped}")
        rows.append([f"blackbox_exporter", f"/probe @ {b.rate:.0f}/s", f"{b.rate:.0f}",
                     f"{b.probes_per_s:.0f} ({b.probes_per_s / b.rate:.1%})",
                     f"{b.target_req_per_s:.0f} (target CPU {b.target_cpu_fraction:.0%})", "n/a", "n/a",
                     f"{b.cpu_fraction:.0%}", fmt(b.cpu_per_1000, ".3f"), fmt(b.peak_rss_mib, ".0f"), notes])
    warm = ", ".join(f"{w:g}s (interval {i:g}s)" for i, w in warmups.items())
    return "\n".join([
        "## Daemon throughput (`bench/throughput.py`)",
        "",
        f"Command: `{command_line()}`",
        "",
        *machine_info(),
        f"- setup: measured process (daemon / exporter) pinned to CPU {MEASURED_CPU}; bench/target.py, the load "
        f"generator and the driver on CPU {LOAD_CPU}; warm-up {warm}; measurement window {duration:g}s between two "
        "`/metrics` scrapes; CPU = utime+stime from /proc/<pid>/stat; lag quantiles from bucket deltas of "
        f"`{LAG_METRIC}` interpolated like `histogram_quantile()`; start jitter from the target's arrival times "
        "of `/health?check=NAME` (per run: lateness vs the same check's best-aligned run in the window)",
        "",
        md_table(header, rows),
        "",
    ])


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Daemon probes/s, scheduler lag and CPU per 1,000 probes vs blackbox_exporter")
    parser.add_argument("--checks", type=int, help="run one scenario with N checks (default: 1000@1s and 10000@10s)")
    parser.add_argument("--interval", type=float, help="check interval in seconds for the single scenario")
    parser.add_argument("--duration", type=float, default=30.0, help="measurement window per scenario, seconds")
    parser.add_argument("--warmup", type=float, help="seconds between ready and the window (default: max(5, interval+2))")
    parser.add_argument("--monitor-bin", default=str(Path(sys.executable).parent / "monitor"))
    parser.add_argument("--skip-daemon", action="store_true", help="blackbox reference only")
    parser.add_argument("--skip-blackbox", action="store_true")
    parser.add_argument("--target-workers", type=int, default=1, help=">1 disables the target-side jitter measurement")
    parser.add_argument("--plain-url", action="store_true",
                        help="probe exactly /health (no ?check=NAME tag; disables the target-side jitter measurement)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.checks is None and args.interval is None:
        scenarios = STANDARD_SCENARIOS
    else:
        scenarios = [(args.checks or 1000, args.interval or 1.0)]
    warmups = {interval: args.warmup if args.warmup is not None else max(5.0, interval + 2) for _, interval in scenarios}
    pin_self(LOAD_CPU)  # the driver and load generator must not share the measured core
    daemons: list[DaemonResult] = []
    blackboxes: list[BlackboxResult] = []
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp, run_target(Path(tmp), args.target_workers) as target:
        workdir = Path(tmp)
        if not args.skip_daemon:
            if not os.access(args.monitor_bin, os.X_OK):
                print(f"monitor binary {args.monitor_bin} not found; use --monitor-bin", file=sys.stderr)
                return 2
            for checks, interval in scenarios:
                tagged = not args.plain_url and args.target_workers == 1
                daemons.append(measure_daemon(args.monitor_bin, target, checks, interval, warmups[interval],
                                              args.duration, workdir, tagged))
        if not args.skip_blackbox:
            for rate in sorted({checks / interval for checks, interval in scenarios}):
                blackboxes.append(measure_blackbox(target, rate, 5.0, args.duration, workdir))
    section = report(daemons, blackboxes, warmups, args.duration)
    print(section)
    if not args.no_write:
        update_results_section("throughput", section)
    return 0 if all(r.error is None for r in daemons) else 1


if __name__ == "__main__":
    raise SystemExit(main())
