"""Alert latency: from the moment a target starts failing to the moment the receiver gets
the page, for the monitor daemon and for Prometheus + blackbox_exporter + Alertmanager.

One process hosts both ends of the measurement, so both timestamps come from the same
monotonic clock and nothing depends on the clocks or self-reporting of the stacks under test:

* the target: ``GET /lane/<lane>/health`` answers 200 until the driver flips that lane to
  failing (500) at a recorded instant ``t_fail``;
* the sink: ``POST /hook/<stack>`` receives Alertmanager's webhook payload (version 4) and
  time-stamps its arrival; the page for a trial is the first POST after ``t_fail`` holding
  a *firing* alert whose ``lane`` label is that lane: latency = ``t_page - t_fail``.

Stacks, measured one after the other in the same run:

* ``ours``    — ``monitor run``: one http check per lane every 5 s, one rule ``!up`` with
               ``for: 0``, route ``group_wait: 0s`` to a ``webhook_configs`` receiver;
* ``tuned``   — Prometheus (15 s scrape and evaluation) scraping blackbox_exporter's
               ``/probe`` for each lane, rule ``probe_success == 0`` with ``for: 0``,
               Alertmanager ``group_wait: 0s``, webhook receiver;
* ``default`` — the same with Prometheus' and Alertmanager's built-in defaults: 1 m scrape
               and evaluation, ``group_wait`` 30 s, ``group_interval`` 5 m.

Several independent lanes (target path, check / scrape target, alert group) run at once,
each doing its trials in turn: wait a random fraction of the stack's period (so the
failure lands at a uniformly random phase of the check / scrape / evaluation cycles),
fail, wait for the page, recover (at a random moment again), wait for the resolved
notification (and, for Alertmanager, until the emptied group is garbage-collected, so the
next trial opens a fresh group as a new incident would). Quantiles are nearest-rank over
all trials of a stack; a trial with no page within the timeout counts as infinitely late.

    python -m bench.latency                                  # all three stacks, ~10 min
    python -m bench.latency --stacks ours --trials 100
    python -m bench.latency --stacks tuned,default --trials tuned=20,default=10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as _dt
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench._common import command_line, free_port, machine_info, md_table, stop, tail, update_results_section

PROMETHEUS_BIN = "prometheus"
ALERTMANAGER_BIN = "prometheus-alertmanager"  # Debian's name for the alertmanager binary
BLACKBOX_BIN = "prometheus-blackbox-exporter"
# Alertmanager's dispatcher deletes emptied aggregation groups on a fixed 30 s ticker
# (dispatch.go); until then a new alert with the same group labels joins the old group and
# waits for its group_interval instead of group_wait. A real outage rarely follows the last
# one of the same target within seconds, so between trials we let the group go.
ALERTMANAGER_GROUP_GC = 30.0
ALL_STACKS = ("ours", "tuned", "default")


# --------------------------------------------------------------------------- stacks


@dataclass(frozen=True)
class StackSpec:
    name: str
    title: str
    settings: str  # the knobs that set the latency, for the report
    period: float  # failure moments are drawn uniformly over this many seconds
    bound: float | None  # the latency the design promises at most (None: none stated)
    trials: int
    lanes: int
    page_timeout: float  # a trial with no page by then is a miss
    resolve_timeout: float
    settle: float  # extra wait after the resolved notification before the next trial


OURS_INTERVAL = 5.0
OURS_GROUP_INTERVAL = 5.0
TUNED_INTERVAL = 15.0
TUNED_GROUP_INTERVAL = 5.0
DEFAULT_INTERVAL = 60.0  # Prometheus' built-in scrape_interval and evaluation_interval
DEFAULT_GROUP_WAIT = 30.0  # Alertmanager's built-ins
DEFAULT_GROUP_INTERVAL = 300.0


def stack_specs(trials: dict[str, int], lanes: dict[str, int]) -> dict[str, StackSpec]:
    """The three stacks with the trial counts asked for. Lanes default to spreading the trials
    so that each stack takes a few minutes: ours cycles in ~10 s, so a few lanes do many
    trials each; the default stack needs up to ~8 min to resolve and forget an alert, so
    there every lane does a single trial (independent random failure moments, same thing)."""
    def lane_count(name: str, default: int) -> int:
        return max(1, min(lanes.get(name, default), trials[name]))

    return {
        "ours": StackSpec(
            "ours", "monitor (ours)",
            f"check interval {OURS_INTERVAL:g}s, `for: 0`, group_wait 0s, group_interval {OURS_GROUP_INTERVAL:g}s",
            period=OURS_INTERVAL, bound=OURS_INTERVAL + 0 + 1.0,  # the goal: interval + for + 1 s
            trials=trials["ours"],
            lanes=lane_count("ours", 10), page_timeout=30.0, resolve_timeout=30.0, settle=0.0),
        "tuned": StackSpec(
            "tuned", "Prometheus + blackbox + Alertmanager, tuned",
            f"scrape/eval {TUNED_INTERVAL:g}s, `for: 0`, group_wait 0s, group_interval {TUNED_GROUP_INTERVAL:g}s",
            period=TUNED_INTERVAL, bound=None, trials=trials["tuned"],
            lanes=lane_count("tuned", 20), page_timeout=120.0, resolve_timeout=120.0,
            settle=ALERTMANAGER_GROUP_GC + 3.0),
        "default": StackSpec(
            "default", "Prometheus + blackbox + Alertmanager, defaults",
            f"scrape/eval {DEFAULT_INTERVAL:g}s (built-in), `for: 0`, group_wait {DEFAULT_GROUP_WAIT:g}s, "
            f"group_interval {DEFAULT_GROUP_INTERVAL:g}s (built-in)",
            period=DEFAULT_INTERVAL, bound=None, trials=trials["default"],
            lanes=lane_count("default", trials["default"]), page_timeout=360.0,
            resolve_timeout=2 * DEFAULT_INTERVAL + DEFAULT_GROUP_INTERVAL + 60.0,
            settle=ALERTMANAGER_GROUP_GC + 3.0),
    }


DEFAULT_TRIALS = {"ours": 100, "tuned": 40, "default": 20}


# --------------------------------------------------------------------------- records


@dataclass
class Trial:
    stack: str
    lane: str
    index: int
    fail_mono: float
    fail_wall: float
    first_bad_probe_mono: float | None = None  # the first request the target failed
    page_mono: float | None = None
    starts_at_wall: float | None = None  # the alert's startsAt, as the stack stated it
    page_wall: float | None = None
    recover_mono: float | None = None
    resolved_mono: float | None = None

    @property
    def latency(self) -> float:
        """fail → page; +inf for a missed page, so misses rank last in the quantiles."""
        return math.inf if self.page_mono is None else self.page_mono - self.fail_mono


@dataclass(frozen=True)
class AlertSeen:
    lane: str
    status: str
    starts_at: float | None


@dataclass(frozen=True)
class Delivery:
    """One webhook POST as the sink saw it."""

    mono: float
    wall: float
    stack: str
    status: str  # the notification's status: "firing" or "resolved"
    alerts: tuple[AlertSeen, ...]


@dataclass
class StackResult:
    spec: StackSpec
    trials: list[Trial] = field(default_factory=list)
    versions: str = ""
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    deliveries: int = 0
    wall_s: float = math.nan


# --------------------------------------------------------------------------- target + sink


class Rig:
    """The in-process target and webhook sink. Lanes are independent: a lane's failure is
    only visible at its own path, and its alerts carry its own ``lane`` label."""

    def __init__(self) -> None:
        self.failing: dict[str, Trial] = {}
        self.probes: Counter[str] = Counter()
        self.deliveries: list[Delivery] = []
        self.malformed = 0
        self.payload_problems: Counter[tuple[str, str]] = Counter()  # (stack, problem)
        self.changed = asyncio.Condition()
        self.target_port = 0
        self.sink_port = 0
        self._runners: list[web.AppRunner] = []

    def health_url(self, lane: str) -> str:
        return f"http://127.0.0.1:{self.target_port}/lane/{lane}/health"

    def hook_url(self, stack: str) -> str:
        return f"http://127.0.0.1:{self.sink_port}/hook/{stack}"

    async def start(self) -> None:
        target = web.Application()
        target.router.add_get("/lane/{lane}/health", self._health)
        sink = web.Application()
        sink.router.add_post("/hook/{stack}", self._hook)
        # Two listeners so a stack's prober and its notifier never share a connection pool
        # or a port with each other's traffic.
        self.target_port = await self._serve(target)
        self.sink_port = await self._serve(sink)

    async def _serve(self, app: web.Application) -> int:
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port, reuse_address=True).start()
        self._runners.append(runner)
        return port

    async def close(self) -> None:
        for runner in self._runners:
            await runner.cleanup()

    def fail(self, stack: str, lane: str, index: int) -> Trial:
        trial = Trial(stack, lane, index, time.monotonic(), time.time())
        self.failing[lane] = trial  # from this instant on, the lane answers 500
        return trial

    def recover(self, lane: str) -> float:
        self.failing.pop(lane, None)
        return time.monotonic()

    async def _health(self, request: web.Request) -> web.Response:
        now = time.monotonic()
        lane = request.match_info["lane"]
        self.probes[lane] += 1
        trial = self.failing.get(lane)
        if trial is None:
            return web.json_response({"status": "healthy"})
        if trial.first_bad_probe_mono is None:
            trial.first_bad_probe_mono = now
        return web.json_response({"status": "failing"}, status=500)

    async def _hook(self, request: web.Request) -> web.Response:
        # Time-stamp on arrival, before reading the body: the page has arrived when its
        # request has, whatever our JSON parsing costs.
        mono, wall = time.monotonic(), time.time()
        try:
            payload = await request.json()
            alerts = tuple(
                AlertSeen(str(a.get("labels", {}).get("lane", "")), str(a.get("status", "")),
                          parse_rfc3339(a.get("startsAt")))
                for a in payload.get("alerts", [])
            )
            delivery = Delivery(mono, wall, request.match_info["stack"], str(payload.get("status", "")), alerts)
            for problem in v4_problems(payload):
                self.payload_problems[(delivery.stack, problem)] += 1
        except (ValueError, AttributeError, TypeError):
            self.malformed += 1
            return web.Response(status=400, text="not an Alertmanager webhook payload")
        self.deliveries.append(delivery)
        async with self.changed:
            self.changed.notify_all()
        return web.Response(text="ok")

    async def wait_for(self, stack: str, lane: str, status: str, after: float, timeout: float,
                       alive: Callable[[], str | None]) -> Delivery | None:
        """The first delivery to ``stack`` after ``after`` (monotonic) with an alert of this
        lane in this state; None on timeout or when a stack process died (``alive``)."""
        deadline = time.monotonic() + timeout
        seen = 0
        async with self.changed:
            while True:
                for delivery in self.deliveries[seen:]:
                    if delivery.stack == stack and delivery.mono >= after and any(
                        a.lane == lane and a.status == status for a in delivery.alerts
                    ):
                        return delivery
                seen = len(self.deliveries)
                left = deadline - time.monotonic()
                if left <= 0 or alive() is not None:
                    return None
                # Wake at least every second to notice a dead stack process.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), min(left, 1.0))


V4_KEYS = ("version", "groupKey", "status", "receiver", "groupLabels", "commonLabels", "commonAnnotations",
           "externalURL", "alerts")
V4_ALERT_KEYS = ("status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint")


def v4_problems(payload: dict[str, Any]) -> list[str]:
    """What an Alertmanager webhook consumer would miss in this POST (CONTRACT §5: version 4)."""
    problems = [f"no `{key}`" for key in V4_KEYS if key not in payload]
    if payload.get("version") != "4":
        problems.append(f"version {payload.get('version')!r}, not '4'")
    if payload.get("status") not in ("firing", "resolved"):
        problems.append(f"status {payload.get('status')!r}")
    for alert in payload.get("alerts", []):
        problems += [f"an alert without `{key}`" for key in V4_ALERT_KEYS if key not in alert]
        if alert.get("status") == "firing" and parse_rfc3339(alert.get("startsAt")) is None:
            problems.append("a firing alert without a parseable startsAt")
    return problems


def parse_rfc3339(text: Any) -> float | None:
    """Unix seconds of an RFC 3339 time (Go writes up to 9 fractional digits, which Python's
    parser does not take: cut to microseconds)."""
    if not isinstance(text, str) or text.startswith("0001-"):
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", text.replace("Z", "+00:00"))
    with contextlib.suppress(ValueError):
        return _dt.datetime.fromisoformat(text).timestamp()
    return None


# --------------------------------------------------------------------------- processes


class Processes:
    """The stack's child processes: started with logs in the work dir, stopped by pid."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - the child owns it
        # Not pinned to a CPU (unlike bench/throughput.py): latency, not CPU, is measured
        # here, and confining Go's runtime to one core would change how it schedules.
        proc = subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
        self.procs[name] = proc
        return proc

    def dead(self) -> str | None:
        """Which child exited unexpectedly, if any (with its log's tail)."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                return f"{name} exited with status {proc.returncode}:\n{tail(self.workdir / f'{name}.log')}"
        return None

    async def stop_all(self) -> list[str]:
        problems = []
        for name, proc in reversed(list(self.procs.items())):
            # In a thread: the daemon finishes in-flight deliveries on SIGTERM, and those
            # go to our sink, which needs this event loop to keep running meanwhile.
            code = await asyncio.to_thread(stop, proc)
            if code not in (0, -15, None):
                problems.append(f"{name} exited with status {code} on SIGTERM")
        return problems


async def http_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as response:
        if response.status != 200:
            raise RuntimeError(f"{url} answered {response.status}")
        return await response.json(content_type=None)


async def wait_until(what: str, probe: Callable[[], Any], timeout: float, procs: Processes) -> None:
    """Poll an async predicate until true; fail early if a child died."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        if (dead := procs.dead()) is not None:
            raise RuntimeError(dead)
        try:
            if await probe():
                return
        except (aiohttp.ClientError, OSError, RuntimeError, asyncio.TimeoutError, ValueError, KeyError) as err:
            last_error = f" (last error: {type(err).__name__}: {err})"
        await asyncio.sleep(0.25)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}{last_error}")


def tool_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    match = re.search(r"version (\S+)", out.stdout + out.stderr)
    return match.group(1) if match else "unknown"


def lane_names(count: int) -> list[str]:
    return [f"l{i:02d}" for i in range(1, count + 1)]


# --------------------------------------------------------------------------- ours


def write_ours_config(directory: Path, rig: Rig, lanes: list[str], listen_port: int) -> Path:
    """Main file, one check file, one rule file: the layout CONTRACT §2 describes."""
    main = directory / "monitor.yaml"
    main.write_text(
        "global:\n"
        f"  listen: 127.0.0.1:{listen_port}\n"
        f"  state: sqlite:///{directory}/monitor.db\n"
        f"  external_url: http://127.0.0.1:{listen_port}\n"
        "  log_format: json\n"
        "check_files: [checks.yaml]\n"
        "rule_files: [rules.yaml]\n"
        "receivers:\n"
        "  - name: sink\n"
        "    webhook_configs:\n"
        f"      - url: {rig.hook_url('ours')}\n"
        "route:\n"
        "  receiver: sink\n"
        # One group per lane: each lane is its own incident, as in the Prometheus stacks.
        "  group_by: [alertname, lane]\n"
        "  group_wait: 0s\n"
        f"  group_interval: {OURS_GROUP_INTERVAL:g}s\n"
        "  repeat_interval: 1h\n"
    )
    checks = ["checks:"]
    for lane in lanes:
        checks += [
            f"  - name: latency_{lane}",
            "    kind: http",
            f"    url: {rig.health_url(lane)}",
            f"    interval: {OURS_INTERVAL:g}s",
            "    timeout: 2s",
            f"    labels: {{bench: latency, lane: {lane}}}",
        ]
    (directory / "checks.yaml").write_text("\n".join(checks) + "\n")
    (directory / "rules.yaml").write_text(
        "groups:\n"
        "  - name: latency\n"
        "    rules:\n"
        "      - alert: TargetDown\n"
        "        check: {bench: latency}\n"
        "        expr: '!up'\n"
        "        for: 0s\n"
        "        labels: {severity: critical}\n"
    )
    return main


def monitor_version(monitor_bin: str) -> str:
    out = subprocess.run([monitor_bin, "--version"], capture_output=True, text=True, timeout=30)
    version = (out.stdout.strip() or out.stderr.strip()).split()[-1] if (out.stdout or out.stderr) else "?"
    repo = Path(__file__).resolve().parent.parent
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=repo, timeout=10).stdout.strip()
    # The venv installs the package in editable mode: what runs is the work tree, so say
    # when it differs from the commit named.
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "monitor"], capture_output=True, text=True,
                           cwd=repo, timeout=10).stdout.strip()
    return f"monitor {version} (commit {commit or '?'}{' + uncommitted changes in monitor/' if dirty else ''})"


@contextlib.asynccontextmanager
async def ours_stack(spec: StackSpec, rig: Rig, workdir: Path, lanes: list[str], monitor_bin: str,
                     result: StackResult) -> AsyncIterator[Processes]:
    directory = workdir / "ours"
    directory.mkdir()
    port = free_port()
    config = write_ours_config(directory, rig, lanes, port)
    validate = await asyncio.to_thread(subprocess.run, [monitor_bin, "validate", "-c", str(config)],
                                       capture_output=True, text=True, timeout=60)
    if validate.returncode != 0:
        raise RuntimeError(f"monitor validate failed ({validate.returncode}):\n{validate.stdout}{validate.stderr}")
    # "file: ok (...)" is the normal answer; anything about warnings is worth reporting.
    for line in (validate.stdout + validate.stderr).splitlines():
        if "warning" in line.lower():
            result.notes.append(f"monitor validate: {line.strip()[:200]}")
    result.versions = await asyncio.to_thread(monitor_version, monitor_bin)
    procs = Processes(directory)
    procs.start("monitor", [monitor_bin, "run", "-c", str(config)])
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            async def ready() -> bool:
                async with session.get(base + "/readyz", timeout=aiohttp.ClientTimeout(total=2)) as response:
                    return response.status == 200

            async def all_up() -> bool:
                # Every lane has a first healthy result: the failure is a change from "up".
                checks = await http_json(session, base + "/api/v1/checks")
                ups = {c["labels"].get("lane"): (c.get("last") or {}).get("up") for c in checks}
                return all(ups.get(lane) is True for lane in lanes)

            await wait_until("monitor /readyz", ready, 30, procs)
            await wait_until("a healthy first result on every lane", all_up, spec.period * 2 + 10, procs)
        yield procs
    finally:
        result.notes += await procs.stop_all()


# --------------------------------------------------------------------------- prometheus


def write_prometheus_configs(directory: Path, spec: StackSpec, rig: Rig, lanes: list[str],
                             ports: dict[str, int]) -> None:
    tuned = spec.name == "tuned"
    (directory / "blackbox.yml").write_text(
        "modules:\n"
        "  http_2xx:\n"
        "    prober: http\n"
        "    timeout: 5s\n"
        "    http:\n"
        "      preferred_ip_protocol: ip4\n"  # valid_status_codes unset: any 2xx, as ours
    )
    # The default stack writes no `global:` at all, so Prometheus' built-ins apply (1m each;
    # Debian's sample /etc/prometheus/prometheus.yml would set 15s, i.e. the tuned stack).
    global_block = (f"global:\n  scrape_interval: {TUNED_INTERVAL:g}s\n  evaluation_interval: {TUNED_INTERVAL:g}s\n"
                    if tuned else "")
    targets = "".join(
        f"      - targets: ['{rig.health_url(lane)}']\n        labels: {{lane: {lane}}}\n" for lane in lanes
    )
    (directory / "prometheus.yml").write_text(
        f"{global_block}"
        "rule_files: [rules.yml]\n"
        "alerting:\n"
        "  alertmanagers:\n"
        f"    - static_configs: [{{targets: ['127.0.0.1:{ports['alertmanager']}']}}]\n"
        "scrape_configs:\n"
        "  - job_name: blackbox\n"
        "    metrics_path: /probe\n"
        "    params: {module: [http_2xx]}\n"
        "    static_configs:\n"
        f"{targets}"
        # The usual blackbox relabelling: the listed URL becomes ?target=, the exporter the address.
        "    relabel_configs:\n"
        "      - {source_labels: [__address__], target_label: __param_target}\n"
        "      - {source_labels: [__param_target], target_label: instance}\n"
        f"      - {{target_label: __address__, replacement: '127.0.0.1:{ports['blackbox']}'}}\n"
    )
    (directory / "rules.yml").write_text(
        "groups:\n"
        "  - name: latency\n"
        "    rules:\n"
        "      - alert: TargetDown\n"
        "        expr: probe_success == 0\n"
        "        for: 0s\n"
        "        labels: {severity: critical}\n"
    )
    timers = (f"  group_wait: 0s\n  group_interval: {TUNED_GROUP_INTERVAL:g}s\n  repeat_interval: 1h\n"
              if tuned else "")  # default: Alertmanager's built-ins (30s / 5m / 4h)
    (directory / "alertmanager.yml").write_text(
        "route:\n"
        "  receiver: sink\n"
        # One group per lane, as independent incidents; Debian's sample groups by
        # [alertname, cluster, service], which here would lump all lanes into one group.
        "  group_by: [alertname, lane]\n"
        f"{timers}"
        "receivers:\n"
        "  - name: sink\n"
        "    webhook_configs:\n"
        f"      - url: {rig.hook_url(spec.name)}\n"
        "        send_resolved: true\n"
    )


@contextlib.asynccontextmanager
async def prometheus_stack(spec: StackSpec, rig: Rig, workdir: Path, lanes: list[str],
                           result: StackResult) -> AsyncIterator[Processes]:
    missing = [b for b in (PROMETHEUS_BIN, ALERTMANAGER_BIN, BLACKBOX_BIN) if shutil.which(b) is None]
    if missing:
        raise RuntimeError(f"{', '.join(missing)} not installed (apt-get install -y prometheus "
                           "prometheus-alertmanager prometheus-blackbox-exporter)")
    directory = workdir / spec.name
    directory.mkdir()
    ports = {name: free_port() for name in ("prometheus", "alertmanager", "blackbox")}
    write_prometheus_configs(directory, spec, rig, lanes, ports)
    tools = (("prometheus", PROMETHEUS_BIN), ("alertmanager", ALERTMANAGER_BIN), ("blackbox_exporter", BLACKBOX_BIN))
    versions = [f"{name} {await asyncio.to_thread(tool_version, binary)}" for name, binary in tools]
    result.versions = ", ".join(versions) + " (Debian packages)"
    procs = Processes(directory)
    (directory / "am-data").mkdir()
    (directory / "tsdb").mkdir()
    procs.start("alertmanager", [
        ALERTMANAGER_BIN, f"--config.file={directory / 'alertmanager.yml'}",
        f"--storage.path={directory / 'am-data'}", f"--web.listen-address=127.0.0.1:{ports['alertmanager']}",
        # No cluster: a lone peer would otherwise wait for gossip to settle before its
        # first notification, and probe the network for peers.
        "--cluster.listen-address=", "--log.level=warn"])
    procs.start("blackbox", [
        BLACKBOX_BIN, f"--config.file={directory / 'blackbox.yml'}",
        f"--web.listen-address=127.0.0.1:{ports['blackbox']}", "--log.level=warn"])
    procs.start("prometheus", [
        PROMETHEUS_BIN, f"--config.file={directory / 'prometheus.yml'}",
        f"--storage.tsdb.path={directory / 'tsdb'}", f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
        "--log.level=warn"])
    prom = f"http://127.0.0.1:{ports['prometheus']}"
    try:
        async with aiohttp.ClientSession() as session:
            async def ok(url: str) -> bool:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                    return response.status == 200

            async def alertmanager_known() -> bool:
                data = await http_json(session, prom + "/api/v1/alertmanagers")
                return bool(data["data"]["activeAlertmanagers"])

            async def all_up() -> bool:
                # Every lane scraped healthy at least once: the failure is a change from 1.
                data = await http_json(session, prom + "/api/v1/query?query=probe_success")
                ups = {s["metric"].get("lane"): s["value"][1] for s in data["data"]["result"]}
                return all(ups.get(lane) == "1" for lane in lanes)

            await wait_until("alertmanager /-/ready", lambda: ok(f"http://127.0.0.1:{ports['alertmanager']}/-/ready"), 30, procs)
            await wait_until("blackbox_exporter /metrics", lambda: ok(f"http://127.0.0.1:{ports['blackbox']}/metrics"), 30, procs)
            await wait_until("prometheus /-/ready", lambda: ok(prom + "/-/ready"), 60, procs)
            await wait_until("prometheus to discover alertmanager", alertmanager_known, 30, procs)
            # Scrape offsets are spread over the interval: allow two intervals for the first round.
            await wait_until("a healthy first scrape of every lane", all_up, spec.period * 2 + 15, procs)
        yield procs
    finally:
        result.notes += await procs.stop_all()


# --------------------------------------------------------------------------- trials


class Abort(Exception):
    pass


async def run_lane(spec: StackSpec, rig: Rig, lane: str, count: int, rng: random.Random,
                   procs: Processes, trials: list[Trial], abort: asyncio.Event, notes: list[str]) -> None:
    for index in range(count):
        # A uniformly random moment within one period: the stacks' timers (check schedule,
        # scrape offset, evaluation tick) sit at a fixed phase, so this samples all phases.
        await asyncio.sleep(rng.uniform(0.0, spec.period))
        if abort.is_set():
            return
        trial = rig.fail(spec.name, lane, index)
        trials.append(trial)
        page = await rig.wait_for(spec.name, lane, "firing", trial.fail_mono, spec.page_timeout, procs.dead)
        if page is not None and index + 1 < count:
            # Recover at a random phase too, so the resolve figure is not tied to the moment
            # right after a check/scrape that the page itself is tied to.
            await asyncio.sleep(rng.uniform(0.0, spec.period))
        trial.recover_mono = rig.recover(lane)
        if page is None:
            if (dead := procs.dead()) is not None:
                notes.append(dead)
                abort.set()
                return
            if not any(d.stack == spec.name for d in rig.deliveries):
                # Not one notification has reached the sink: the delivery path is not there
                # (or not configured); more trials would only add timeouts.
                notes.append(f"lane {lane}: no page within {spec.page_timeout:g}s and no webhook POST at all "
                             "from this stack; stopped")
                abort.set()
                return
            notes.append(f"lane {lane} trial {index}: no page within {spec.page_timeout:g}s")
        else:
            trial.page_mono, trial.page_wall = page.mono, page.wall
            trial.starts_at_wall = next((a.starts_at for a in page.alerts if a.lane == lane and a.status == "firing"), None)
        if index + 1 < count:
            # Back to healthy, and to a clean slate: the receiver has heard the resolve.
            resolved = await rig.wait_for(spec.name, lane, "resolved", trial.recover_mono, spec.resolve_timeout, procs.dead)
            if resolved is None:
                notes.append(f"lane {lane} trial {index}: no resolved notification within {spec.resolve_timeout:g}s")
            else:
                trial.resolved_mono = resolved.mono
            await asyncio.sleep(spec.settle)


async def run_stack(spec: StackSpec, rig: Rig, workdir: Path, seed: int, monitor_bin: str) -> StackResult:
    result = StackResult(spec)
    lanes = lane_names(spec.lanes)
    # Spread the trials over the lanes as evenly as possible.
    counts = [spec.trials // spec.lanes + (1 if i < spec.trials % spec.lanes else 0) for i in range(spec.lanes)]
    started = time.monotonic()
    print(f"[{spec.name}] {spec.trials} trials on {spec.lanes} lanes; {spec.settings}", flush=True)
    stack: contextlib.AbstractAsyncContextManager[Processes]
    if spec.name == "ours":
        stack = ours_stack(spec, rig, workdir, lanes, monitor_bin, result)
    else:
        stack = prometheus_stack(spec, rig, workdir, lanes, result)
    try:
        async with stack as procs:
            print(f"[{spec.name}] ready after {time.monotonic() - started:.0f}s ({result.versions}); failing lanes now",
                  flush=True)
            abort = asyncio.Event()
            await asyncio.gather(*(
                run_lane(spec, rig, lane, count, random.Random(f"{seed}-{spec.name}-{lane}"), procs,
                         result.trials, abort, result.notes)
                for lane, count in zip(lanes, counts)
            ))
            for lane in lanes:
                rig.recover(lane)
    except RuntimeError as err:
        result.error = str(err).splitlines()[0]
        result.notes.append(str(err))
        print(f"[{spec.name}] FAILED: {err}", flush=True)
    result.deliveries = sum(1 for d in rig.deliveries if d.stack == spec.name)
    result.wall_s = time.monotonic() - started
    print(f"[{spec.name}] {summary(result)}", flush=True)
    return result


# --------------------------------------------------------------------------- report


def nearest_rank(values: Sequence[float], q: float) -> float:
    """The q-quantile as an actual sample (rank ceil(q·n)): with 30 trials p99 is the maximum,
    which is what it honestly is for so few samples."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def fmt_s(seconds: float, timeout: float | None = None) -> str:
    if math.isnan(seconds):
        return "n/a"
    if math.isinf(seconds):
        return f"> {timeout:g} s (missed)" if timeout else "missed"
    # Milliseconds below a second: the pipeline after detection is that short for ours.
    return f"{seconds * 1000:.0f} ms" if abs(seconds) < 1 else f"{seconds:.2f} s"


def median_of(values: list[float]) -> float:
    return nearest_rank(values, 0.5) if values else math.nan


def summary(r: StackResult) -> str:
    latencies = [t.latency for t in r.trials]
    if not latencies:
        return f"no trials ({r.error or 'nothing ran'})"
    t = r.spec.page_timeout
    return (f"{len(latencies)} trials: p50 {fmt_s(nearest_rank(latencies, .5), t)}, p90 {fmt_s(nearest_rank(latencies, .9), t)}, "
            f"p99 {fmt_s(nearest_rank(latencies, .99), t)}, max {fmt_s(max(latencies), t)}; "
            f"{sum(math.isinf(x) for x in latencies)} missed; {r.deliveries} webhook POSTs in {r.wall_s:.0f}s")


def breakdown(r: StackResult) -> tuple[float, float, float, float]:
    """Medians of: fail → first failing probe (waiting for the schedule), first failing probe
    → page (the pipeline after detection), fail → the alert's startsAt (stack's own clock,
    same machine), and recovery → resolved notification."""
    paged = [t for t in r.trials if t.page_mono is not None]
    to_probe = [t.first_bad_probe_mono - t.fail_mono for t in paged if t.first_bad_probe_mono is not None]
    after_probe = [t.page_mono - t.first_bad_probe_mono for t in paged
                   if t.first_bad_probe_mono is not None and t.page_mono is not None]
    to_starts = [t.starts_at_wall - t.fail_wall for t in paged if t.starts_at_wall is not None]
    resolve = [t.resolved_mono - t.recover_mono for t in r.trials
               if t.resolved_mono is not None and t.recover_mono is not None]
    return median_of(to_probe), median_of(after_probe), median_of(to_starts), median_of(resolve)


def report(results: list[StackResult], seed: int) -> str:
    header = ["stack", "settings", "trials (lanes)", "p50", "p90", "p99", "max", "missed",
              "fail → first failing probe (p50)", "first failing probe → page (p50)", "fail → alert startsAt (p50)",
              "recovery → resolved notification (p50)", "bound"]
    rows: list[list[str]] = []
    for r in results:
        s = r.spec
        lat = [t.latency for t in r.trials]
        if r.error and not lat:
            rows.append([s.title, s.settings, f"0 ({s.lanes})", "—", "—", "—", "—", "—", "—", "—", "—", "—",
                         f"**{r.error}**"])
            continue
        probe, pipeline, starts, resolve = breakdown(r)
        p99 = nearest_rank(lat, 0.99)
        bound = "—" if s.bound is None else (
            f"≤ {s.bound:g} s at p99: **{'met' if p99 <= s.bound else 'NOT met'}**")
        rows.append([s.title, s.settings, f"{len(lat)} ({s.lanes})",
                     *(fmt_s(nearest_rank(lat, q), s.page_timeout) for q in (0.5, 0.9, 0.99)),
                     fmt_s(max(lat), s.page_timeout), str(sum(math.isinf(x) for x in lat)),
                     fmt_s(probe), fmt_s(pipeline), fmt_s(starts), fmt_s(resolve), bound])
    lines = [
        "## Alert latency (`bench/latency.py`)",
        "",
        f"Command: `{command_line()}`",
        "",
        *machine_info(),
        f"- versions: {'; '.join(sorted({r.versions for r in results if r.versions}))}",
        "- setup: target and webhook sink in the driver process (one monotonic clock for both ends); a trial "
        "flips one lane's `/health` from 200 to 500 at a uniformly random moment within the stack's period, "
        "and its latency is the arrival of the first webhook POST holding that lane's alert as firing, minus "
        "the flip; then (between trials) the lane recovers at another random moment within the period, the "
        "resolved notification is awaited, plus "
        f"{ALERTMANAGER_GROUP_GC:g}+3 s for Alertmanager to drop the emptied group. Independent lanes (own "
        "path, check / scrape target, alert group via `group_by: [alertname, lane]`) run concurrently. "
        f"Quantiles are nearest-rank over all trials (p99 of ≤ 100 trials is the maximum); seed {seed}",
        "- what the settings predict (failure → first failing probe or scrape, then → evaluation, then "
        f"group_wait): ours U(0, {OURS_INTERVAL:g}) + pipeline; tuned U(0, {TUNED_INTERVAL:g}) + U(0, {TUNED_INTERVAL:g}) "
        f"+ 0, at most ~{2 * TUNED_INTERVAL:g} s; default U(0, {DEFAULT_INTERVAL:g}) + U(0, {DEFAULT_INTERVAL:g}) + "
        f"{DEFAULT_GROUP_WAIT:g}, between {DEFAULT_GROUP_WAIT:g} and ~{2 * DEFAULT_INTERVAL + DEFAULT_GROUP_WAIT:g} s",
        "- fewer trials for the slow stacks: the default stack takes up to ~2.5 min per page and ~7 min to "
        "resolve and forget an alert, so each of its lanes does one trial",
        "",
        md_table(header, rows),
        "",
    ]
    ours = next((r for r in results if r.spec.name == "ours" and r.trials and not r.error), None)
    for other in (r for r in results if r.spec.name != "ours" and r.trials):
        if ours is not None:
            ratio = nearest_rank([t.latency for t in other.trials], 0.5) / nearest_rank([t.latency for t in ours.trials], 0.5)
            ratio99 = nearest_rank([t.latency for t in other.trials], 0.99) / nearest_rank([t.latency for t in ours.trials], 0.99)
            lines.append(f"- {other.spec.title} vs ours: {ratio:.1f}× slower at p50, {ratio99:.1f}× at p99")
    for r in results:
        sample = ", ".join(f"{x:.1f}" if not math.isinf(x) else "miss" for x in sorted(t.latency for t in r.trials))
        if sample:
            lines.append(f"- {r.spec.name} latencies (s, sorted): {sample}")
        for note in dict.fromkeys(r.notes):  # keep order, drop repeats
            lines.append(f"- {r.spec.name}: {note.splitlines()[0][:300]}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def per_stack(text: str | None, what: str) -> dict[str, int]:
    """``N`` (every stack) or ``stack=N,stack=N``."""
    if not text:
        return {}
    if text.isdigit() and int(text) > 0:
        return {name: int(text) for name in ALL_STACKS}
    out: dict[str, int] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        if not sep or name.strip() not in ALL_STACKS or not value.strip().isdigit() or int(value) < 1:
            raise argparse.ArgumentTypeError(f"--{what}: expected N or stack=N[,stack=N] with stacks {', '.join(ALL_STACKS)}")
        out[name.strip()] = int(value)
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Alert latency (failure → page) of monitor vs Prometheus + Alertmanager")
    parser.add_argument("--stacks", default=",".join(ALL_STACKS), help="comma-separated subset of: ours,tuned,default")
    parser.add_argument("--trials", help=f"N for every stack, or stack=N,... (default {DEFAULT_TRIALS})")
    parser.add_argument("--lanes", help="concurrent independent targets: N or stack=N,... (default ours=10, "
                                        "tuned=20, default=one per trial)")
    parser.add_argument("--seed", type=int, default=None, help="random seed for the failure moments")
    parser.add_argument("--monitor-bin", default=str(Path(sys.executable).parent / "monitor"))
    parser.add_argument("--keep", action="store_true",
                        help="keep the work dir (configs, logs, TSDB, trials.jsonl, deliveries.jsonl)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args(argv)
    stacks = [s.strip() for s in args.stacks.split(",") if s.strip()]
    if not stacks or any(s not in ALL_STACKS for s in stacks):
        parser.error(f"--stacks: choose from {', '.join(ALL_STACKS)}")
    args.stack_list = stacks
    try:
        args.trial_counts = {**DEFAULT_TRIALS, **per_stack(args.trials, "trials")}
        args.lane_counts = per_stack(args.lanes, "lanes")
    except argparse.ArgumentTypeError as err:
        parser.error(str(err))
    return args


async def run(args: argparse.Namespace, workdir: Path, seed: int) -> list[StackResult]:
    specs = stack_specs(args.trial_counts, args.lane_counts)
    rig = Rig()
    await rig.start()
    try:
        results = []
        for name in args.stack_list:
            results.append(await run_stack(specs[name], rig, workdir, seed, args.monitor_bin))
        if rig.malformed:
            results[-1].notes.append(f"{rig.malformed} webhook POSTs were not Alertmanager payloads")
        for result in results:
            for (stack, problem), times in sorted(rig.payload_problems.items()):
                if stack == result.spec.name:
                    result.notes.append(f"webhook payload: {problem} ({times} POSTs)")
        if args.keep:
            # The raw material behind the table, for when a number looks odd.
            with open(workdir / "trials.jsonl", "w") as out:
                out.writelines(json.dumps(dataclasses.asdict(t)) + "\n" for r in results for t in r.trials)
            with open(workdir / "deliveries.jsonl", "w") as out:
                out.writelines(json.dumps(dataclasses.asdict(d)) + "\n" for d in rig.deliveries)
        return results
    finally:
        await rig.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if "ours" in args.stack_list and not os.access(args.monitor_bin, os.X_OK):
        print(f"monitor binary {args.monitor_bin} not found; use --monitor-bin", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 30)
    workdir = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    try:
        results = asyncio.run(run(args, workdir, seed))
    finally:
        if args.keep:
            print(f"work dir kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    section = report(results, seed)
    print(section)
    if not args.no_write:
        update_results_section("latency", section)
    return 0 if all(r.error is None and r.trials and all(t.page_mono is not None for t in r.trials)
                    for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
