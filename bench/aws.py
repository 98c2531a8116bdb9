"""AWS checks beside HTTP checks: does a daemon making 20 AWS API calls a second (200 checks
at 10 s against moto in server mode) still keep 1,000 HTTP checks at 1 s on time, and what
does one AWS call cost it in CPU?

Four scenarios, each a fresh daemon on the measured core, in the same run and against the
same target and moto server (both on the load core):

* ``http``      — 1,000 HTTP checks at 1 s (bench/target.py), the reference;
* ``http+aws``  — the same plus 200 AWS checks at 10 s: 40 each of ``sqs``, ``s3``,
                  ``secretsmanager``, ``ecs`` and ``cloudwatch``, every one answered by moto;
* ``aws``       — the 200 AWS checks alone;
* ``http+extra`` — the control (not run by default): the 1,000 HTTP checks plus 200 more HTTP
                  checks at 10 s instead of the AWS checks, i.e. what any 20 more runs a second
                  cost the event loop (recording results, metrics, history).

Measured as bench/throughput.py measures (its functions are reused): runs per second from
``monitor_check_runs_total`` (split into HTTP and AWS by check name), scheduler lag p50/p99
from the bucket deltas of ``monitor_scheduler_lag_seconds`` (daemon-wide: ≥ 98 % of the runs
are HTTP), the HTTP checks' start jitter from the target's arrival times (HTTP only), daemon
CPU from /proc over the window and peak RSS, both of the daemon and its AWS worker process together. CPU per AWS call is the ``aws`` scenario's CPU over
its AWS calls; HTTP CPU per 1,000 probes beside AWS is ``http+aws`` CPU less the ``aws``
scenario's, over the HTTP probes. Every AWS run must succeed (moto answers each), or the
scenario is reported failed.

    python -m bench.aws                        # the three scenarios, about 4 minutes
    python -m bench.aws --duration 60 --aws-checks 400
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import os
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bench._common import (
    LOAD_CPU,
    MEASURED_CPU,
    Target,
    command_line,
    free_port,
    machine_info,
    md_table,
    pin_self,
    run_target,
    spawn,
    stop,
    tail,
    tree_cpu_seconds,
    tree_status_kib,
    target_arrivals,
    update_results_section,
)
from bench.throughput import (
    LAG_METRIC,
    bucket_delta,
    fill_jitter,
    fmt_ms,
    histogram_quantile,
    http_get,
    parse_metrics,
    sleep_watching,
    start_jitter,
    wait_ready,
)

REGION = "us-east-1"
AWS_KINDS = ("sqs", "s3", "secretsmanager", "ecs", "cloudwatch")
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": REGION,
    "AWS_CONFIG_FILE": "/nonexistent/aws-config", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}
CLEARED_ENV = ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_ENDPOINT_URL",
               "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
               "AWS_CONTAINER_CREDENTIALS_FULL_URI")


def aws_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLEARED_ENV and not k.startswith("MONITOR_")}
    return {**env, **FAKE_AWS_ENV}


# --------------------------------------------------------------------------- moto


@contextmanager
def run_moto(log_dir: Path) -> Iterator[str]:
    port = free_port()
    # moto stands in for AWS, which costs this host nothing: at the lowest priority, so its
    # request handling (tens of ms of CPU per call) does not starve the HTTP target sharing
    # the load core; moto only answers later, which is AWS latency, not daemon cost.
    proc = spawn(["nice", "-n", "19", sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                 LOAD_CPU, log_dir / "moto.log", env=aws_env())
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"moto exited with {proc.returncode}:\n{tail(log_dir / 'moto.log')}")
            try:
                with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("moto did not start")
            time.sleep(0.1)
        yield url
    finally:
        stop(proc)


def create_resources(endpoint: str, per_kind: int) -> dict[str, list[dict[str, Any]]]:
    """What each AWS check reads, created in moto: ``{kind: [check fields, ...]}``."""
    import boto3

    os.environ.update(FAKE_AWS_ENV)

    def client(service: str) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=endpoint)  # type: ignore[call-overload]

    sqs, s3, secrets, ecs, cloudwatch = (client(s) for s in ("sqs", "s3", "secretsmanager", "ecs", "cloudwatch"))
    out: dict[str, list[dict[str, Any]]] = {kind: [] for kind in AWS_KINDS}
    ecs.create_cluster(clusterName="bench")
    ecs.register_task_definition(family="bench", containerDefinitions=[{"name": "app", "image": "app", "memory": 128}])
    now = _dt.datetime.now(_dt.UTC)
    for i in range(per_kind):
        queue = sqs.create_queue(QueueName=f"bench-{i}")["QueueUrl"]
        sqs.send_message(QueueUrl=queue, MessageBody="x")
        out["sqs"].append({"queue_url": queue})
        s3.create_bucket(Bucket=f"bench-{i}")
        out["s3"].append({"bucket": f"bench-{i}"})
        secrets.create_secret(Name=f"bench/{i}", SecretString="not-a-real-secret")
        out["secretsmanager"].append({"secret_id": f"bench/{i}"})
        ecs.create_service(cluster="bench", serviceName=f"svc-{i}", taskDefinition="bench", desiredCount=1)
        out["ecs"].append({"cluster": "bench", "service": f"svc-{i}"})
        dims = [{"Name": "ServiceName", "Value": f"svc-{i}"}, {"Name": "ClusterName", "Value": "bench"}]
        cloudwatch.put_metric_data(Namespace="AWS/ECS", MetricData=[
            {"MetricName": "CPUUtilization", "Dimensions": dims, "Value": 10.0 + i,
             "Timestamp": now - _dt.timedelta(seconds=30 + 60 * k)} for k in range(3)])
        out["cloudwatch"].append({"namespace": "AWS/ECS", "metric": "CPUUtilization",
                                  "dimensions": {"ServiceName": f"svc-{i}", "ClusterName": "bench"},
                                  "statistic": "Average", "period": "1m", "window": "30m"})
    return out


# --------------------------------------------------------------------------- config


def flow(fields: dict[str, Any]) -> str:
    def value(v: Any) -> str:
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k}: {value(x)}" for k, x in v.items()) + "}"
        return f"'{v}'"

    return ", ".join(f"{k}: {value(v)}" for k, v in fields.items())


def write_config(directory: Path, target: Target, port: int, http_checks: int, http_interval: float,
                 aws: dict[str, list[dict[str, Any]]], aws_checks: int, aws_interval: float, endpoint: str,
                 extra_http: int = 0) -> Path:
    main = directory / "monitor.yaml"
    main.write_text(f"global:\n  listen: 127.0.0.1:{port}\n  state: sqlite:///{directory}/monitor.db\n"
                    "check_files: [checks.yaml]\nrule_files: []\n")
    lines = ["checks:"]
    for i in range(1, http_checks + 1):
        name = f"bench_{i:04d}"
        lines.append(f"  - {{name: {name}, kind: http, url: '{target.check_url(name)}', "
                     f"interval: {http_interval:g}s, timeout: {min(http_interval, 5.0):g}s}}")
    for i in range(extra_http):
        name = f"extra_{i:04d}"
        lines.append(f"  - {{name: {name}, kind: http, url: '{target.check_url(name)}', "
                     f"interval: {aws_interval:g}s, timeout: 5s}}")
    for i in range(aws_checks):
        kind = AWS_KINDS[i % len(AWS_KINDS)]
        fields = aws[kind][(i // len(AWS_KINDS)) % len(aws[kind])]
        lines.append(f"  - {{name: aws_{kind}_{i:04d}, kind: {kind}, region: {REGION}, endpoint_url: '{endpoint}', "
                     f"interval: {aws_interval:g}s, timeout: 5s, {flow(fields)}}}")
    (directory / "checks.yaml").write_text("\n".join(lines) + "\n")
    return main


# --------------------------------------------------------------------------- measuring


@dataclass
class Scenario:
    name: str
    http_checks: int
    aws_checks: int
    http_interval: float = 1.0
    aws_interval: float = 10.0
    extra_http: int = 0  # the control: this many more HTTP checks at the AWS checks' interval
    startup_s: float = math.nan
    window_s: float = math.nan
    http_per_s: float = math.nan
    aws_per_s: float = math.nan
    aws_failed: float = 0.0
    http_failed: float = 0.0
    lag_p50: float = math.nan
    lag_p99: float = math.nan
    jitter_p50: float = math.nan
    jitter_p99: float = math.nan
    jitter_max: float = math.nan
    skipped: float = math.nan
    cpu_fraction: float = math.nan
    peak_rss_mib: float = math.nan
    failures: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    @property
    def expected_http(self) -> float:
        return self.http_checks / self.http_interval + self.extra_http / self.aws_interval

    @property
    def expected_aws(self) -> float:
        return self.aws_checks / self.aws_interval


def runs_by_family(text: str) -> dict[tuple[str, str], float]:
    """{("http"|"aws", result): runs} from one /metrics answer."""
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "monitor_check_runs_total":
                kind = "aws" if sample.labels.get("check", "").startswith("aws_") else "http"
                key = (kind, sample.labels.get("result", "?"))
                out[key] = out.get(key, 0.0) + sample.value
    return out


def first_errors(base: str) -> dict[str, str]:
    """One error per AWS kind from /api/v1/checks, to say why a run failed."""
    import json

    status, body = http_get(base + "/api/v1/checks", timeout=30)
    if status != 200:
        return {}
    errors: dict[str, str] = {}
    for check in json.loads(body):
        last = check.get("last") or {}
        if check["name"].startswith("aws_") and last and not last.get("up"):
            errors.setdefault(check["kind"], str(last.get("error")))
    return errors


def first_http_error(base: str) -> str:
    import json

    status, body = http_get(base + "/api/v1/checks", timeout=30)
    if status == 200:
        for check in json.loads(body):
            last = check.get("last") or {}
            if check["name"].startswith("bench_") and last and not last.get("up"):
                return str(last.get("error"))
    return "?"


def measure(s: Scenario, monitor_bin: str, target: Target, aws: dict[str, list[dict[str, Any]]], endpoint: str,
            warmup: float, duration: float, workdir: Path) -> Scenario:
    directory = Path(tempfile.mkdtemp(prefix=s.name.replace("+", "_") + "-", dir=workdir))
    port = free_port()
    config = write_config(directory, target, port, s.http_checks, s.http_interval, aws, s.aws_checks,
                          s.aws_interval, endpoint, s.extra_http)
    base = f"http://127.0.0.1:{port}"
    log = directory / "daemon.log"
    print(f"[{s.name}] {s.http_checks} http @ {s.http_interval:g}s + {s.aws_checks} aws @ {s.aws_interval:g}s"
          f" + {s.extra_http} more http @ {s.aws_interval:g}s; "
          f"log {log}", flush=True)
    proc = spawn([monitor_bin, "run", "-c", str(config)], MEASURED_CPU, log, env=aws_env())
    try:
        s.startup_s = wait_ready(proc, base, timeout=60)
        sleep_watching(proc, warmup, "daemon")
        status, text1 = http_get(base + "/metrics", timeout=30)
        t1 = time.monotonic()
        target_arrivals(target.port)
        cpu1 = tree_cpu_seconds(proc.pid)  # the daemon and its AWS worker
        sleep_watching(proc, duration, "daemon")
        cpu2, t2 = tree_cpu_seconds(proc.pid), time.monotonic()
        arrivals = target_arrivals(target.port)
        status, text2 = http_get(base + "/metrics", timeout=30)
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        s.window_s = t2 - t1
        s.cpu_fraction = (cpu2 - cpu1) / s.window_s
        runs1, runs2 = runs_by_family(text1), runs_by_family(text2)
        delta = {k: v - runs1.get(k, 0.0) for k, v in runs2.items()}
        s.http_per_s = sum(v for (kind, _), v in delta.items() if kind == "http") / s.window_s
        s.aws_per_s = sum(v for (kind, _), v in delta.items() if kind == "aws") / s.window_s
        s.http_failed = sum(v for (kind, r), v in delta.items() if kind == "http" and r != "success")
        s.aws_failed = sum(v for (kind, r), v in delta.items() if kind == "aws" and r != "success")
        snap1, snap2 = parse_metrics(text1), parse_metrics(text2)
        deltas = bucket_delta(snap1, snap2)
        s.lag_p50, s.lag_p99 = histogram_quantile(0.5, deltas), histogram_quantile(0.99, deltas)
        s.skipped = snap2.skipped - snap1.skipped
        if s.http_checks:
            jitter = start_jitter(arrivals, s.http_interval)
            holder = _Jitter()
            fill_jitter(holder, jitter)  # type: ignore[arg-type]
            s.jitter_p50, s.jitter_p99, s.jitter_max = holder.jitter_p50, holder.jitter_p99, holder.jitter_max
        s.peak_rss_mib = tree_status_kib(proc.pid, "VmHWM") / 1024
        if s.aws_failed:
            s.failures = first_errors(base)
            s.error = f"{s.aws_failed:.0f} AWS runs did not succeed: {s.failures}"
        http_runs = s.http_per_s * s.window_s
        if s.http_failed > 0.01 * max(http_runs, 1.0) or (s.http_checks and s.http_per_s < 0.95 * s.expected_http):
            # The reference itself did not hold: no comparison can be drawn from this run.
            s.error = (f"HTTP checks not kept: {s.http_per_s:.0f} of {s.expected_http:.0f} probes/s, "
                       f"{s.http_failed:.0f} failed runs (first: {first_http_error(base)})")
    except (RuntimeError, OSError, ValueError) as err:
        s.error = f"{type(err).__name__}: {err}"
        print(f"[{s.name}] FAILED: {s.error}\n{tail(log)}", flush=True)
    finally:
        stop(proc)
    print(f"[{s.name}] http {s.http_per_s:.0f}/s aws {s.aws_per_s:.1f}/s, lag p50 {fmt_ms(s.lag_p50)} "
          f"p99 {fmt_ms(s.lag_p99)}, http jitter p99 {fmt_ms(s.jitter_p99)}, CPU {s.cpu_fraction:.1%}, "
          f"RSS {s.peak_rss_mib:.0f} MiB, failed aws {s.aws_failed:.0f} http {s.http_failed:.0f}", flush=True)
    return s


@dataclass
class _Jitter:
    jitter_p50: float = math.nan
    jitter_p99: float = math.nan
    jitter_max: float = math.nan


# --------------------------------------------------------------------------- report


def per_1000(cpu_fraction: float, rate: float) -> float:
    return cpu_fraction / rate * 1000 if rate > 0 else math.nan


def report(scenarios: list[Scenario], warmup: float, duration: float, title: str = "") -> str:
    by_name = {s.name: s for s in scenarios}
    http, both, aws = by_name.get("http"), by_name.get("http+aws"), by_name.get("aws")
    rows = []
    for s in scenarios:
        if s.error and math.isnan(s.http_per_s):
            rows.append([s.name, "—", "—", "—", "—", "—", "—", f"**{s.error}**"])
            continue
        rows.append([
            s.name, f"{s.http_per_s:.0f} / {s.expected_http:.0f}", f"{s.aws_per_s:.1f} / {s.expected_aws:.0f}",
            f"{fmt_ms(s.lag_p50)} / {fmt_ms(s.lag_p99)}",
            f"{fmt_ms(s.jitter_p50)} / {fmt_ms(s.jitter_p99)} / {fmt_ms(s.jitter_max)}" if s.http_checks else "—",
            f"{s.cpu_fraction:.1%}", f"{s.peak_rss_mib:.0f}",
            f"ready {s.startup_s:.1f}s; skipped runs {s.skipped:.0f}; failed runs http {s.http_failed:.0f}, "
            f"aws {s.aws_failed:.0f}" + (f"; **{s.error}**" if s.error else ""),
        ])
    def measured(name: str) -> list[Scenario]:
        return [s for s in scenarios if s.name == name and not math.isnan(s.cpu_fraction)]

    def listed(values: list[float], unit: str = "", spec: str = ".3f") -> str:
        return ", ".join(f"{v:{spec}}{unit}" for v in values) or "n/a"

    def mean(values: list[float]) -> float:
        return sum(values) / len(values) if values else math.nan

    http, both, aws, extra = measured("http"), measured("http+aws"), measured("aws"), measured("http+extra")
    aws_cpu = mean([a.cpu_fraction for a in aws])
    derived = ["Per repeat, in run order (a scenario marked not kept above is included):", ""]
    if http:
        derived.append("- HTTP CPU per 1,000 probes, HTTP alone: "
                       + listed([per_1000(h.cpu_fraction, h.http_per_s) for h in http], " s"))
    if both and aws:
        derived.append("- HTTP CPU per 1,000 probes beside the AWS checks ((http+aws CPU − mean aws CPU) / HTTP "
                       "probes): " + listed([per_1000(b.cpu_fraction - aws_cpu, b.http_per_s) for b in both], " s"))
    if aws:
        derived.append("- CPU per AWS call, AWS checks alone (daemon CPU / AWS calls, idle daemon included): "
                       + listed([a.cpu_fraction / a.aws_per_s * 1000 for a in aws], " ms", ".1f"))
    if http and both:
        http_cpu = mean([h.cpu_fraction for h in http])
        derived.append("- CPU per AWS call, marginal ((http+aws CPU − mean http CPU) / AWS calls): "
                       + listed([(b.cpu_fraction - http_cpu) / b.aws_per_s * 1000 for b in both], " ms", ".1f"))
    if http or both:
        derived.append("- HTTP probes/s kept: alone " + listed([h.http_per_s for h in http], spec=".0f")
                       + "; beside the AWS checks " + listed([b.http_per_s for b in both], spec=".0f"))
        derived.append("- scheduler lag p99: alone " + ", ".join(fmt_ms(h.lag_p99) for h in http)
                       + "; beside the AWS checks " + ", ".join(fmt_ms(b.lag_p99) for b in both))
        derived.append("- HTTP start jitter p99 (target-side): alone " + ", ".join(fmt_ms(h.jitter_p99) for h in http)
                       + "; beside the AWS checks " + ", ".join(fmt_ms(b.jitter_p99) for b in both))
    if extra:
        derived.append("- the control, as many more HTTP checks at the AWS checks' interval instead of the AWS "
                       "checks: scheduler lag p99 " + ", ".join(fmt_ms(e.lag_p99) for e in extra)
                       + "; HTTP start jitter p99 " + ", ".join(fmt_ms(e.jitter_p99) for e in extra))
    return "\n".join([
        f"## AWS checks beside HTTP checks (`bench/aws.py`){title}",
        "",
        f"Command: `{command_line()}`",
        "",
        *machine_info(),
        f"- setup: daemon pinned to CPU {MEASURED_CPU}; bench/target.py (HTTP), moto server (AWS, `moto[server]`) and "
        f"the driver on CPU {LOAD_CPU}; AWS checks: 40 each of sqs, s3, secretsmanager, ecs, cloudwatch against moto "
        f"(every run must succeed); warm-up {warmup:g}s, window {duration:g}s between two `/metrics` scrapes; "
        f"lag from bucket deltas of `{LAG_METRIC}` (daemon-wide); start jitter from the target's arrival times "
        "(HTTP checks only); CPU = utime+stime from /proc and peak RSS (VmHWM), each summed over the daemon and its AWS worker process. The scenarios are fresh daemons in one run: "
        "differences between them within a few percent are noise on a shared machine.",
        "",
        md_table(["scenario", "HTTP probes/s (achieved / expected)", "AWS calls/s", "sched lag p50 / p99",
                  "HTTP start jitter p50 / p99 / max", "CPU (% of 1 core)", "peak RSS MiB", "notes"], rows),
        "",
        *derived,
        "",
    ])


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="AWS checks (moto) beside HTTP checks: lag, jitter, CPU per call")
    parser.add_argument("--http-checks", type=int, default=1000)
    parser.add_argument("--aws-checks", type=int, default=200)
    parser.add_argument("--duration", type=float, default=30.0, help="measurement window per scenario, seconds")
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds between ready and the window")
    parser.add_argument("--scenarios", default="http,http+aws,aws")
    parser.add_argument("--monitor-bin", default=str(Path(sys.executable).parent / "monitor"))
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--section", default="aws", help="the RESULTS.md section to (re)write")
    args = parser.parse_args(argv)
    pin_self(LOAD_CPU)
    known = {"http": (args.http_checks, 0, 0), "http+aws": (args.http_checks, args.aws_checks, 0),
             "aws": (0, args.aws_checks, 0), "http+extra": (args.http_checks, 0, args.aws_checks)}
    wanted = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    scenarios: list[Scenario] = []
    with tempfile.TemporaryDirectory(prefix="bench-aws-") as tmp, run_target(Path(tmp)) as target, \
            run_moto(Path(tmp)) as endpoint:
        per_kind = max(1, math.ceil(args.aws_checks / len(AWS_KINDS)))
        print(f"[moto] {endpoint}: creating {per_kind} of each AWS resource", flush=True)
        aws = create_resources(endpoint, per_kind)
        for name in wanted:
            http_checks, aws_checks, extra_http = known[name]
            scenarios.append(measure(Scenario(name, http_checks, aws_checks, extra_http=extra_http), args.monitor_bin,
                                     target, aws,
                                     endpoint, args.warmup, args.duration, Path(tmp)))
    title = f": {args.http_checks:,} HTTP checks" if args.http_checks != 1000 else ""
    section = report(scenarios, args.warmup, args.duration, title)
    print(section)
    if not args.no_write:
        update_results_section(args.section, section)
    return 0 if all(s.error is None for s in scenarios) else 1


if __name__ == "__main__":
    raise SystemExit(main())
