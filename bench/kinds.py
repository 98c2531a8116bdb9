"""CPU per probe for every probe kind, measured in one run beside the `http` kind as the
reference: µs of this process's CPU (`time.process_time()`, all threads) per probe.

Each check is built with its kind's own pydantic model and run through
`monitor.scheduling.runner.run_check` with one shared `ProbeEnv`, so the cost includes the
runner's deadline scope, as in the daemon. Every run must come back `up`: a failing probe
is not a valid measurement, and the script stops there.

The local servers it needs (bench/target.py for http; a UDP DNS server, a TLS server with a
throwaway `trustme` certificate and a Stripe-shaped aiohttp server) run in child processes
pinned to the load CPU, so their work is not counted. Redis, PostgreSQL, MariaDB and RabbitMQ
are the ones on 127.0.0.1 (default ports); the redis BullMQ keys and the RabbitMQ queue are
created with unique names by the script and removed at the end. The `command` kind's
children are reaped by the probe; their own CPU (`os.times()` children) is shown apart.

    python -m bench.kinds [--rounds 5] [--scale 1.0] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench._common import (
    LOAD_CPU, MEASURED_CPU, command_line, machine_info, md_table, pin_self, run_target, update_results_section,
)
from monitor.probes import PROBES
from monitor.probes.base import CheckBase, ProbeEnv
from monitor.scheduling.runner import run_check

WARMUP = 10
# Sequential runs per round; the slow kinds (a subprocess, a full AMQP handshake) get fewer.
RUNS = {"command": 60, "rabbitmq": 60, "mysql": 150, "postgres": 150, "tls": 150, "stripe": 150}
DEFAULT_RUNS = 300


# --- servers in a child process (their CPU must not land on the measured process) -----------

def _serve(ports: Any, cert_dir: str) -> None:
    pin_self(LOAD_CPU)
    asyncio.run(_servers(ports, Path(cert_dir)))


async def _servers(ports: Any, cert_dir: Path) -> None:
    import ssl

    import dns.flags
    import dns.message
    import dns.rrset
    import trustme
    from aiohttp import web

    loop = asyncio.get_running_loop()

    class Dns(asyncio.DatagramProtocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: Any) -> None:
            query = dns.message.from_wire(data)
            reply = dns.message.make_response(query)
            reply.flags |= dns.flags.AA
            question = query.question[0]
            reply.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A", "127.0.0.1"))
            self.transport.sendto(reply.to_wire(), addr)

    dns_transport, _ = await loop.create_datagram_endpoint(Dns, local_addr=("127.0.0.1", 0))

    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    ca.cert_pem.write_to_path(str(cert_dir / "ca.pem"))
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)

    async def tls_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await reader.read()  # until the prober closes
        writer.close()

    tls_server = await asyncio.start_server(tls_client, "127.0.0.1", 0, ssl=server_ctx)

    now = int(time.time())

    async def events(_: web.Request) -> web.Response:
        return web.json_response({"object": "list", "has_more": False, "url": "/v1/events",
                                  "data": [{"id": "evt_1", "object": "event", "created": now - 30}]})

    async def endpoints(_: web.Request) -> web.Response:
        return web.json_response({"object": "list", "has_more": False, "url": "/v1/webhook_endpoints",
                                  "data": [{"id": "we_1", "object": "webhook_endpoint", "status": "enabled"}]})

    app = web.Application()
    app.router.add_get("/v1/events", events)
    app.router.add_get("/v1/webhook_endpoints", endpoints)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()

    ports.put({
        "dns": dns_transport.get_extra_info("sockname")[1],
        "tls": tls_server.sockets[0].getsockname()[1],
        "stripe": site._server.sockets[0].getsockname()[1],  # type: ignore[union-attr]
    })
    await asyncio.Event().wait()  # until terminated


@contextlib.contextmanager
def local_servers(cert_dir: Path) -> Iterator[dict[str, int]]:
    ctx = multiprocessing.get_context("spawn")
    ports = ctx.Queue()
    proc = ctx.Process(target=_serve, args=(ports, str(cert_dir)), daemon=True)
    proc.start()
    try:
        yield ports.get(timeout=30)
    finally:
        proc.terminate()  # only the child we started
        proc.join(10)


# --- fixtures on the shared services ---------------------------------------------------------

async def bullmq_queue(name: str) -> list[str]:
    """A BullMQ-shaped queue with two waiting jobs; returns its keys for the clean-up."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url("redis://127.0.0.1:6379/0")
    base = f"bull:{name}"
    stamp = str(int(time.time() * 1000) - 5000)
    keys = [f"{base}:wait", f"{base}:1", f"{base}:2", f"{base}:delayed"]
    await client.lpush(f"{base}:wait", "1", "2")
    await client.hset(f"{base}:1", mapping={"timestamp": stamp, "name": "job"})
    await client.hset(f"{base}:2", mapping={"timestamp": stamp, "name": "job"})
    await client.zadd(f"{base}:delayed", {"3": 1})
    await client.aclose()
    return keys


async def redis_delete(keys: list[str]) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url("redis://127.0.0.1:6379/0")
    await client.delete(*keys)
    await client.aclose()


async def amqp_queue(name: str, declare: bool) -> None:
    import aiormq

    connection = await aiormq.connect("amqp://guest:guest@127.0.0.1:5672/")
    channel = await connection.channel()
    if declare:
        await channel.queue_declare(name, auto_delete=False)
    else:
        await channel.queue_delete(name)
    await connection.close()


# --- measurement -----------------------------------------------------------------------------

def build(kind: str, **fields: Any) -> CheckBase:
    model = PROBES[kind][0]
    return model.model_validate({"name": f"bench_{kind}", "kind": kind, "interval": 10.0, "timeout": 5.0, **fields})


async def measure(check: CheckBase, env: ProbeEnv, runs: int, rounds: int) -> tuple[float, float]:
    """(median µs of own CPU per probe, mean µs of reaped children's CPU per probe; children's
    times come in clock ticks, so they are summed over all rounds rather than taken per round)."""

    async def once() -> None:
        result = await run_check(check, env)
        if not result.up:
            raise SystemExit(f"{check.kind} ({check.name}) probe is not up: {result.error}")

    for _ in range(WARMUP):
        await once()
    own, children = [], []
    for _ in range(rounds):
        t0, c0 = time.process_time(), os.times()
        for _ in range(runs):
            await once()
        t1, c1 = time.process_time(), os.times()
        own.append((t1 - t0) / runs * 1e6)
        children.append((c1.children_user + c1.children_system) - (c0.children_user + c0.children_system))
    return statistics.median(own), sum(children) / (runs * rounds) * 1e6


async def run_all(checks: list[tuple[str, CheckBase]], rounds: int, scale: float) -> list[tuple[str, float, float, int]]:
    env = ProbeEnv()
    out = []
    try:
        for label, check in checks:
            runs = max(10, int(RUNS.get(check.kind, DEFAULT_RUNS) * scale))
            started = time.monotonic()
            own, child = await measure(check, env, runs, rounds)
            print(f"  {label:<40} {own:9.1f} µs/probe  ({runs}×{rounds} runs, {time.monotonic() - started:.1f}s)",
                  flush=True)
            out.append((label, own, child, runs))
    finally:
        await env.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the runs per round")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()

    pin_self(MEASURED_CPU)
    tag = uuid.uuid4().hex[:12]
    bull_name, amqp_name = f"bench_kinds_{tag}", f"bench_kinds_{tag}"
    with tempfile.TemporaryDirectory() as tmp_name, contextlib.ExitStack() as stack:
        tmp = Path(tmp_name)
        target = stack.enter_context(run_target(tmp))
        ports = stack.enter_context(local_servers(tmp))
        files = tmp / "files"
        files.mkdir()
        for i in range(100):
            (files / f"f{i:03}.log").write_text("x\n")
        plugin = tmp / "plugin.sh"
        plugin.write_text("#!/bin/sh\necho 'OK - fine | time=0.012s;1;2;0 size=42B;;;0'\n")
        plugin.chmod(0o755)

        bull_keys = asyncio.run(bullmq_queue(bull_name))
        stack.callback(lambda: asyncio.run(redis_delete(bull_keys)))
        asyncio.run(amqp_queue(amqp_name, declare=True))
        stack.callback(lambda: asyncio.run(amqp_queue(amqp_name, declare=False)))

        checks = [
            ("http (reference)", build("http", url=target.health_url)),
            ("tcp", build("tcp", address=f"127.0.0.1:{target.port}")),
            ("dns (A, local UDP server)", build("dns", query="bench.example.", server=f"127.0.0.1:{ports['dns']}")),
            ("tls (trustme cert)", build("tls", address=f"127.0.0.1:{ports['tls']}", server_name="localhost",
                                         ca_file=str(tmp / "ca.pem"))),
            ("command `/bin/true`", build("command", command=["/bin/true"])),
            ("command (plugin with perfdata)", build("command", command=[str(plugin)])),
            ("file (glob over 100 files)", build("file", path=str(files / "*.log"))),
            ("redis PING", build("redis", url="redis://127.0.0.1:6379/0")),
            ("redis bullmq queue", build("redis", url="redis://127.0.0.1:6379/0", bullmq=bull_name)),
            ("postgres `SELECT 1`", build("postgres", dsn="postgresql://postgres@127.0.0.1:5432/postgres")),
            ("mysql `SELECT 1` (MariaDB)", build("mysql", dsn="mysql://root@127.0.0.1:3306/mysql")),
            ("rabbitmq (passive declare)", build("rabbitmq", url="amqp://guest:guest@127.0.0.1:5672/",
                                                 queue=amqp_name)),
            ("stripe (local mock, 3 GETs)", build("stripe", api_key="sk_test_bench",
                                                  api_base=f"http://127.0.0.1:{ports['stripe']}")),
        ]
        started = time.monotonic()
        measured = asyncio.run(run_all(checks, args.rounds, args.scale))
        elapsed = time.monotonic() - started

    reference = measured[0][1]
    rows = [[label, f"{own:.0f}", f"{own / reference:.2f}×", f"{child:.0f}" if child >= 1 else "—", str(runs)]
            for label, own, child, runs in measured]
    body = "\n".join([
        "## CPU per probe by kind (`bench/kinds.py`)", "",
        f"Command: `{command_line()}`", "",
        *machine_info(),
        f"- each check built with its kind's model and run through `run_check` with one shared `ProbeEnv`;"
        f" CPU = `time.process_time()` of the measuring process (all threads, pinned to CPU {MEASURED_CPU});"
        f" local servers in child processes on CPU {LOAD_CPU}; {WARMUP} warm-up runs, then the median over"
        f" {args.rounds} rounds of N sequential runs; every run asserted `up`; measuring took {elapsed:.0f} s",
        "- child CPU = the `command` kind's reaped plugin processes (`os.times()` children, mean over all rounds), not in the µs/probe", "",
        md_table(["kind", "µs CPU per probe", "× http", "child CPU µs", "N"], rows),
    ])
    print(body)
    if not args.no_write:
        update_results_section("kinds", body)


if __name__ == "__main__":
    main()
