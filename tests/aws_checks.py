"""Building AWS checks for tests and running them through the real runner."""

from __future__ import annotations

import time
import uuid
from typing import Any

from monitor.core.clock import Clock, SystemClock
from monitor.core.results import Result
from monitor.probes import PROBES, CheckBase, ProbeEnv
from monitor.scheduling.runner import run_check

REGION = "us-east-1"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def aws_check(kind: str, endpoint: str, *, timeout: float = 10.0, name: str | None = None, **fields: Any) -> CheckBase:
    model = PROBES[kind][0]
    return model.model_validate({"name": name or f"{kind}_test", "kind": kind, "interval": max(timeout, 30.0),
                                 "timeout": timeout, "region": REGION, "endpoint_url": endpoint, **fields})


async def run(check: CheckBase, clock: Clock | None = None) -> Result:
    env = ProbeEnv(clock=clock or SystemClock())
    try:
        return await run_check(check, env)
    finally:
        await env.close()


async def run_timed(check: CheckBase, clock: Clock | None = None) -> tuple[Result, float]:
    started = time.monotonic()
    result = await run(check, clock)
    return result, time.monotonic() - started
