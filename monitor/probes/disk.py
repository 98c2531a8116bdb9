"""``kind: disk`` — usage of the filesystem holding ``path``.

value: percent of the space used (as ``df`` counts it: blocks reserved for root count as
used). detail: ``total_bytes``, ``free_bytes``, ``used_percent``, ``inodes_used_percent``.
Thresholds belong in rules (``expr: value > 90``); the check itself fails only when the
path cannot be read.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Literal

from monitor.probes.base import CheckBase, ProbeEnv
from monitor.core.results import Result, describe_exception


class DiskCheck(CheckBase):
    kind: Literal["disk"]
    path: str = "/"


async def probe(check: DiskCheck, deadline: float, env: ProbeEnv) -> Result:
    started = time.perf_counter()
    try:
        # statvfs on a dead network mount blocks forever: keep it off the event loop, where
        # the runner's deadline can give up on it.
        stat = await asyncio.to_thread(os.statvfs, check.path)
    except OSError as err:
        return Result.failed(describe_exception(err), time.perf_counter() - started)
    total = stat.f_blocks * stat.f_frsize
    available = stat.f_bavail * stat.f_frsize
    used = (stat.f_blocks - stat.f_bfree) * stat.f_frsize
    # df's formula: used / (used + available), so root-reserved blocks do not look free.
    used_percent = 100.0 * used / (used + available) if used + available else 0.0
    inodes_percent = 100.0 * (stat.f_files - stat.f_ffree) / stat.f_files if stat.f_files else 0.0
    detail = {
        "total_bytes": total,
        "free_bytes": available,
        "used_percent": round(used_percent, 2),
        "inodes_used_percent": round(inodes_percent, 2),
    }
    return Result(up=True, value=round(used_percent, 3), latency=time.perf_counter() - started, detail=detail)
