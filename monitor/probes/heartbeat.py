"""``kind: heartbeat`` — a pushed check: jobs ``POST /api/v1/heartbeat/{name}`` when they run.

value: seconds since the last push (since the daemon started, before the first push).
Down when that age exceeds ``max_age`` or the last push said ``?status=fail``. A job that
never reported is therefore down after ``max_age``, never silently fine.
"""

from __future__ import annotations

from typing import Literal

from monitor.config.durations import Duration
from monitor.probes.base import CheckBase, ProbeEnv
from monitor.results import Result


class HeartbeatCheck(CheckBase):
    kind: Literal["heartbeat"]
    max_age: Duration


async def probe(check: HeartbeatCheck, deadline: float, env: ProbeEnv) -> Result:
    now = env.clock.time()
    last = env.heartbeats.get(check.name)
    if last is None:
        age = now - env.started_at
        detail: dict[str, object] = {"last_push": None}
        if age > check.max_age:
            return Result.failed(f"no heartbeat received since start ({age:.0f}s ago)", detail=detail, value=age)
        return Result(up=True, value=age, detail=detail)
    pushed_at, failed = last
    age = max(now - pushed_at, 0.0)
    detail = {"last_push": pushed_at, "last_status": "fail" if failed else "ok"}
    if failed:
        return Result.failed("last heartbeat reported failure", detail=detail, value=age)
    if age > check.max_age:
        return Result.failed(f"last heartbeat {age:.0f}s ago (max_age {check.max_age:g}s)", detail=detail, value=age)
    return Result(up=True, value=age, detail=detail)
