"""Running one check through the real runner, as the daemon would."""

from __future__ import annotations

import time

from monitor.probes import CheckBase, ProbeEnv
from monitor.core.results import Result
from monitor.scheduling.runner import run_check


async def run_timed(check: CheckBase) -> tuple[Result, float]:
    """One run with a fresh env; returns the result and the wall time it took."""
    env = ProbeEnv()
    started = time.monotonic()
    try:
        result = await run_check(check, env)
    finally:
        await env.close()
    return result, time.monotonic() - started
