"""boto3 (through monitor.aws.calls: the AWS worker process) against aiobotocore (asyncio) for the AWS kinds.

Measured, each library in fresh interpreters on top of what the daemon has loaded anyway
(`aiohttp`, `monitor.probes`):
- import time and RSS added by importing the library;
- the first client (loads the service model, resolves credentials) and a further client:
  time and RSS;
- 200 concurrent SQS GetQueueAttributes against moto in server mode: client-process CPU per
  call and wall time, median over rounds after a warm-up round. boto3 goes through
  ``monitor.aws.calls.call`` exactly as a probe does (the worker process, 16 in flight per
  endpoint), and its CPU is the measuring process's plus the worker's; aiobotocore gets one
  client with the same 16-connection pool and all 200 coroutines at once.

The measuring process is pinned to CPU 0, moto to CPU 1. moto's own CPU is not counted
(it bounds the wall time: moto answers far slower than AWS would).

    .venv/bin/python -m bench.aws_clients [--calls 200] [--rounds 5] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench._common import (
    LOAD_CPU, MEASURED_CPU, command_line, cpu_seconds, free_port, machine_info, md_table, pin_self, pinned, update_results_section,
)

FAKE_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
            "AWS_EC2_METADATA_DISABLED": "true"}
REGION = "us-east-1"

# One fresh interpreter per sample: import time, RSS added, first and second client.
_COST = r"""
import json, os, sys, time
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
import aiohttp, monitor.probes  # what the daemon has loaded anyway
base = rss()
t0 = time.perf_counter()
LIB = sys.argv[1]
if LIB == "boto3":
    import boto3.session
else:
    from aiobotocore.session import get_session
t1 = time.perf_counter()
imported = rss()
if LIB == "boto3":
    session = boto3.session.Session()
    first = session.client("sqs", region_name="us-east-1", endpoint_url="http://127.0.0.1:9")
    t2 = time.perf_counter()
    after_first = rss()
    second = session.client("sqs", region_name="us-east-1", endpoint_url="http://127.0.0.1:10")
    t3 = time.perf_counter()
else:
    import asyncio
    async def make():
        session = get_session()
        global t2, after_first
        first = await session.create_client("sqs", region_name="us-east-1", endpoint_url="http://127.0.0.1:9").__aenter__()
        t2 = time.perf_counter()
        after_first = rss()
        second = await session.create_client("sqs", region_name="us-east-1", endpoint_url="http://127.0.0.1:10").__aenter__()
        return first, second
    clients = asyncio.run(make())
    t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "import_kib": imported - base, "first_client_s": t2 - t1,
                  "first_client_kib": after_first - imported, "second_client_s": t3 - t2,
                  "second_client_kib": rss() - after_first}))
"""


def cost_samples(library: str, samples: int) -> dict[str, float]:
    runs = []
    for _ in range(samples):
        done = subprocess.run([sys.executable, "-c", _COST, library], capture_output=True, text=True, timeout=120,
                              env={**os.environ, **FAKE_ENV}, preexec_fn=pinned(MEASURED_CPU))
        if done.returncode:
            raise RuntimeError(done.stderr[-2000:])
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def start_moto(log_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = open(log_dir / "moto.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **FAKE_ENV},
                            preexec_fn=pinned(LOAD_CPU))
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto did not start")


def _worker_cpu() -> float:
    from monitor.aws.calls import worker_pid

    pid = worker_pid()
    return cpu_seconds(pid) if pid is not None else 0.0


async def boto3_round(url: str, queue_url: str, calls: int) -> tuple[float, float, float]:
    """(CPU of both processes, CPU of the calling process alone, wall) for ``calls`` calls."""
    from monitor.aws.calls import call
    from monitor.aws.model import AwsTarget

    target = AwsTarget("sqs", REGION, url)
    own, worker, wall = time.process_time(), _worker_cpu(), time.perf_counter()
    answers = await asyncio.gather(*(call(target, "get_queue_attributes", 60, QueueUrl=queue_url,
                                          AttributeNames=["ApproximateNumberOfMessages"]) for _ in range(calls)))
    assert all("Attributes" in answer for answer in answers)
    own = time.process_time() - own
    return own + _worker_cpu() - worker, own, time.perf_counter() - wall


async def aiobotocore_round(client: Any, queue_url: str, calls: int) -> tuple[float, float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    answers = await asyncio.gather(*(client.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]) for _ in range(calls)))
    assert all("Attributes" in answer for answer in answers)
    cpu = time.process_time() - cpu
    return cpu, cpu, time.perf_counter() - wall  # all of it on the event loop


async def throughput(url: str, calls: int, rounds: int) -> dict[str, tuple[float, float, float]]:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    from monitor.aws.calls import PER_ENDPOINT, call
    from monitor.aws.model import AwsTarget

    queue_url = (await call(AwsTarget("sqs", REGION, url), "create_queue", 60, QueueName="bench"))["QueueUrl"]
    results: dict[str, list[tuple[float, float, float]]] = {"boto3": [], "aiobotocore": []}
    session = get_session()
    config = AioConfig(max_pool_connections=PER_ENDPOINT, retries={"total_max_attempts": 3, "mode": "standard"},
                       connect_timeout=5, read_timeout=60)
    async with session.create_client("sqs", region_name=REGION, endpoint_url=url, config=config) as client:
        await boto3_round(url, queue_url, calls)  # warm-up: clients, threads, connections
        await aiobotocore_round(client, queue_url, calls)
        for _ in range(rounds):  # interleaved, so drift on a shared box hits both alike
            results["boto3"].append(await boto3_round(url, queue_url, calls))
            results["aiobotocore"].append(await aiobotocore_round(client, queue_url, calls))
    return {name: tuple(statistics.median(run[i] for run in runs) for i in range(3))  # type: ignore[misc]
            for name, runs in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--samples", type=int, default=3, help="fresh interpreters per import/client measurement")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    os.environ.update(FAKE_ENV)
    pin_self(MEASURED_CPU)

    import aiobotocore
    import boto3
    import botocore

    costs = {name: cost_samples(name, args.samples) for name in ("boto3", "aiobotocore")}
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_moto(Path(tmp))
        try:
            speed = asyncio.run(throughput(url, args.calls, args.rounds))
        finally:
            proc.terminate()
            proc.wait(10)

    rows = []
    for name in ("boto3", "aiobotocore"):
        cost, (cpu, own, wall) = costs[name], speed[name]
        rows.append([
            "boto3 via `monitor.aws.calls.call` (worker process)" if name == "boto3" else "aiobotocore (asyncio, one client)",
            f"{cost['import_s'] * 1000:.0f} ms", f"{cost['import_kib'] / 1024:.1f}",
            f"{cost['first_client_s'] * 1000:.0f} ms / {cost['first_client_kib'] / 1024:.1f} MiB",
            f"{cost['second_client_s'] * 1000:.1f} ms / {cost['second_client_kib'] / 1024:.2f} MiB",
            f"{cpu / args.calls * 1e6:.0f}", f"{cpu / speed['boto3'][0]:.2f}×", f"{own / args.calls * 1e6:.0f}",
            f"{wall:.2f} s",
        ])
    body = "\n".join([
        "## AWS clients: boto3 vs aiobotocore (`bench/aws_clients.py`)", "",
        f"Command: `{command_line()}`", "",
        *machine_info(),
        f"- versions: boto3 {boto3.__version__}, botocore {botocore.__version__}, aiobotocore {aiobotocore.__version__}",
        f"- import and client costs: median of {args.samples} fresh interpreters each, measured on top of"
        " `import aiohttp, monitor.probes` (what the daemon has loaded anyway); RSS from /proc/self/status",
        f"- calls: {args.calls} concurrent SQS `GetQueueAttributes` against moto in server mode (CPU {LOAD_CPU}),"
        f" median of {args.rounds} interleaved rounds after one warm-up round; CPU = `time.process_time()` of the"
        f" measuring process (all threads, pinned to CPU {MEASURED_CPU}), plus the AWS worker's (/proc, same CPU) for boto3; moto's CPU not counted, and moto bounds"
        " the wall time (it answers far slower than AWS)",
        "",
        md_table(["client", "import", "RSS added by import (MiB)", "first client", "another client",
                  "CPU µs / call", "vs boto3", "of which in the calling process (the event loop's)",
                  f"wall, {args.calls} calls"], rows),
    ])
    print(body)
    if not args.no_write:
        update_results_section("aws_clients", body)


if __name__ == "__main__":
    main()
