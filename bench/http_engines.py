"""CPU cost per request of the candidate HTTP client engines, against bench/target.py.

The daemon opens a new connection per probe (aiohttp ``force_close``) so that a probe
measures what a fresh client would see; this script puts a price on that choice and on the
alternative engine (httpx) at the same concurrency.  CPU is this process's
``time.process_time`` (user+sys, all threads) around a fixed number of requests, so waiting
on the target costs nothing and only client-side work is counted.

    python -m bench.http_engines [--requests 5000] [--concurrency 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx

from bench._common import LOAD_CPU, MEASURED_CPU, command_line, machine_info, md_table, pin_self, run_target, update_results_section

Fetch = Callable[[str], Awaitable[int]]
WARMUP_REQUESTS = 200  # first connections, imports of lazily loaded codecs, etc.


@asynccontextmanager
async def httpx_client(keep_alive: bool) -> AsyncIterator[Fetch]:
    # Without keep-alive httpx would still announce "Connection: keep-alive" and then
    # close client-side; asking for close makes the wire behaviour match aiohttp's
    # force_close (server closes, one TCP handshake per request).
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None if keep_alive else 0)
    headers = {} if keep_alive else {"Connection": "close"}
    async with httpx.AsyncClient(limits=limits, headers=headers, timeout=10) as client:

        async def fetch(url: str) -> int:
            response = await client.get(url)
            return response.status_code

        yield fetch


@asynccontextmanager
async def aiohttp_client(keep_alive: bool) -> AsyncIterator[Fetch]:
    connector = aiohttp.TCPConnector(force_close=not keep_alive, limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as session:

        async def fetch(url: str) -> int:
            async with session.get(url) as response:
                await response.read()
                return response.status

        yield fetch


# name -> factory of an async context manager yielding a fetch function; filled below.
ENGINES: dict[str, Callable[[], AbstractAsyncContextManager[Fetch]]] = {}


@dataclass
class Sample:
    cpu_s: float
    wall_s: float
    requests: int
    errors: int


@dataclass
class EngineResult:
    name: str
    samples: list[Sample] = field(default_factory=list)

    def median(self, key: Callable[[Sample], float]) -> float:
        return statistics.median(key(s) for s in self.samples)


async def _drive(fetch: Fetch, url: str, total: int, concurrency: int) -> int:
    """Exactly ``total`` requests with ``concurrency`` in flight; returns the error count."""
    remaining = total
    errors = 0

    async def worker() -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            try:
                if await fetch(url) != 200:
                    errors += 1
            except (aiohttp.ClientError, httpx.HTTPError, OSError, asyncio.TimeoutError):
                errors += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return errors


async def measure(name: str, url: str, total: int, concurrency: int) -> Sample:
    async with ENGINES[name]() as fetch:
        await _drive(fetch, url, WARMUP_REQUESTS, concurrency)
        gc.collect()  # start every engine from the same heap state
        cpu0, wall0 = time.process_time(), time.perf_counter()
        # A generous bound: even a pathological engine must not hang the benchmark.
        errors = await asyncio.wait_for(_drive(fetch, url, total, concurrency), timeout=120)
        return Sample(time.process_time() - cpu0, time.perf_counter() - wall0, total, errors)


ENGINES.update(
    {
        "httpx.AsyncClient, new connection per request": lambda: httpx_client(keep_alive=False),
        "httpx.AsyncClient, keep-alive": lambda: httpx_client(keep_alive=True),
        "aiohttp, force_close (new connection per request, as the daemon)": lambda: aiohttp_client(keep_alive=False),
        "aiohttp, keep-alive": lambda: aiohttp_client(keep_alive=True),
    }
)


async def run_all(url: str, total: int, concurrency: int, rounds: int) -> list[EngineResult]:
    results = [EngineResult(name) for name in ENGINES]
    # Interleave rounds so slow drift (thermal, noisy neighbours) hits every engine alike.
    for round_no in range(rounds):
        for result in results:
            sample = await measure(result.name, url, total, concurrency)
            result.samples.append(sample)
            print(f"  round {round_no + 1}: {result.name}: {sample.cpu_s / total * 1e6:.0f} µs CPU/req, "
                  f"{total / sample.wall_s:.0f} req/s, errors {sample.errors}", flush=True)
    return results


def report(results: list[EngineResult], total: int, concurrency: int, rounds: int) -> str:
    baseline = next(r for r in results if r.name.startswith("aiohttp, force_close")).median(lambda s: s.cpu_s)
    rows = []
    for r in results:
        cpu = r.median(lambda s: s.cpu_s)
        rows.append([
            r.name,
            f"{cpu / total * 1e6:.0f}",
            f"{cpu / baseline:.2f}×",
            f"{r.median(lambda s: total / s.wall_s):.0f}",
            sum(s.errors for s in r.samples),
        ])
    return "\n".join([
        "## HTTP client engines (`bench/http_engines.py`)",
        "",
        f"Command: `{command_line()}`",
        "",
        *machine_info(),
        f"- setup: client process pinned to CPU {MEASURED_CPU}, bench/target.py on CPU {LOAD_CPU}; "
        f"{total} GETs per engine per round, concurrency {concurrency}, median of {rounds} interleaved rounds, "
        f"after {WARMUP_REQUESTS} warm-up requests; CPU = client `time.process_time()` (user+sys)",
        f"- versions: aiohttp {aiohttp.__version__}, httpx {httpx.__version__}, httpcore {_version('httpcore')}, "
        f"anyio {_version('anyio')}; sniffio importable: {_sniffio_note()}",
        "",
        md_table(["engine", "CPU µs / request", "vs aiohttp force_close", "req/s (wall)", "errors"], rows),
        "",
    ])


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "absent"


def _sniffio_note() -> str:
    # anyio >= 4.11 stopped depending on sniffio, and httpcore 1.0.x then re-attempts a
    # failing `import sniffio` (a sys.path scan) on every lock/semaphore it creates, i.e.
    # several times per request: a large part of httpx's CPU here (encode/httpcore#1103).
    if importlib.util.find_spec("sniffio") is not None:
        return "yes"
    return "**no** (httpcore retries a failing `import sniffio` several times per request, see encode/httpcore#1103)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="CPU per request: httpx vs aiohttp (force_close / keep-alive)")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args(argv)
    pin_self(MEASURED_CPU)
    with tempfile.TemporaryDirectory(prefix="bench-engines-") as tmp, run_target(Path(tmp)) as target:
        results = asyncio.run(run_all(target.health_url, args.requests, args.concurrency, args.rounds))
    section = report(results, args.requests, args.concurrency, args.rounds)
    print(section)
    if not args.no_write:
        update_results_section("http_engines", section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
