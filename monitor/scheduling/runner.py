"""One run of one check, under one hard deadline.

The deadline covers everything: waiting for a concurrency slot, DNS, connecting, TLS,
sending and reading. Library timeouts (httpx's included) do not cover waiting for a
connection slot, so the whole probe runs inside ``asyncio.timeout``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import structlog

from monitor.probes import PROBES, CheckBase, ProbeEnv
from monitor.core.results import Outcome, Result, describe_exception

log = structlog.get_logger("monitor.runner")


async def run_check(check: CheckBase, env: ProbeEnv, slots: asyncio.Semaphore | None = None) -> Result:
    probe = PROBES[check.kind][1]
    at = env.clock.time()
    started = time.monotonic()
    deadline = started + check.timeout
    scope = asyncio.timeout_at(asyncio.get_running_loop().time() + check.timeout)
    try:
        async with scope:
            if slots is None:
                result = await probe(check, deadline, env)
            else:
                async with slots:
                    result = await probe(check, deadline, env)
    except TimeoutError as err:
        latency = time.monotonic() - started
        if scope.expired():
            result = Result(up=False, error="timeout", latency=latency, outcome=Outcome.TIMEOUT)
        else:  # a library's own timeout escaped the probe: still a result, not a crash
            result = Result(up=False, error=describe_exception(err), latency=latency, outcome=Outcome.ERROR)
    except Exception as err:  # a probe bug must cost one result, never the daemon
        log.exception("probe_crashed", check=check.name, kind=check.kind)
        result = Result(up=False, error=describe_exception(err), latency=time.monotonic() - started, outcome=Outcome.ERROR)
    if not result.up and result.outcome is Outcome.SUCCESS:
        result = replace(result, outcome=Outcome.FAILURE)
    return replace(result, at=at)
