"""``kind: redis`` — PING by default; ``queue:`` gives a key's length; ``info:`` an INFO field;
``bullmq:`` reads a BullMQ (or Bull 3) queue as a whole.

value: 1 for PING, the length of the list, sorted set, set or stream under ``queue``
(0 when the key does not exist: an empty queue is deleted by Redis), the numeric INFO
field, or the BullMQ queue's waiting jobs. detail: ``type`` of the queue key, the INFO
field read, or the BullMQ counts and ``oldest_waiting_age``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any, Literal, cast

import redis.asyncio as aioredis
import redis.exceptions
from pydantic import Field, model_validator

from monitor.probes.base import CheckBase, ProbeEnv
from monitor.core.results import Result, describe_exception

_LENGTH_COMMANDS = {"list": "LLEN", "zset": "ZCARD", "set": "SCARD", "stream": "XLEN"}


class RedisCheck(CheckBase):
    kind: Literal["redis"]
    url: str = "redis://127.0.0.1:6379/0"
    queue: str | None = None
    info: str | None = None  # e.g. connected_clients or used_memory
    bullmq: str | None = None  # a BullMQ queue name: its keys are <prefix>:<bullmq>:wait, ...
    prefix: str = Field(default="bull", min_length=1)  # BullMQ's `prefix` queue option

    @model_validator(mode="after")
    def _one_mode(self) -> RedisCheck:
        modes = [name for name in ("queue", "info", "bullmq") if getattr(self, name) is not None]
        if len(modes) > 1:
            if modes == ["queue", "info"]:
                raise ValueError("set either queue or info, not both")
            raise ValueError(f"set only one of queue, info or bullmq (got {' and '.join(modes)})")
        if self.bullmq is not None and not self.bullmq:
            raise ValueError("bullmq must name a queue")
        if "prefix" in self.model_fields_set and self.bullmq is None:
            raise ValueError("prefix applies to bullmq only")
        try:
            aioredis.connection.parse_url(self.url)
        except ValueError as err:
            raise ValueError(f"invalid redis url: {err}") from None
        return self


async def probe(check: RedisCheck, deadline: float, env: ProbeEnv) -> Result:
    remaining = max(deadline - time.monotonic(), 0.001)
    client = aioredis.Redis.from_url(
        check.url, socket_connect_timeout=remaining, socket_timeout=remaining,
        single_connection_client=True, retry_on_timeout=False,
    )
    started = time.perf_counter()
    try:
        value, detail = await _measure(client, check, env.clock.time())
    except (redis.exceptions.RedisError, OSError) as err:
        return Result.failed(describe_exception(err), time.perf_counter() - started)
    except _NotAQueue as err:
        return Result.failed(str(err), time.perf_counter() - started, {"type": err.kind})
    finally:
        await client.aclose()
    return Result(up=True, value=value, latency=time.perf_counter() - started, detail=detail)


class _NotAQueue(Exception):
    def __init__(self, key: str, kind: str) -> None:
        super().__init__(f"key {key!r} is a {kind}, not a list, set, sorted set or stream")
        self.kind = kind


async def _measure(client: aioredis.Redis, check: RedisCheck, now: float) -> tuple[float | None, dict[str, Any]]:
    if check.bullmq is not None:
        return await _bullmq(client, f"{check.prefix}:{check.bullmq}", now)
    if check.queue is not None:
        kind = (await client.type(check.queue)).decode()
        if kind == "none":
            return 0.0, {"type": "none"}
        command = _LENGTH_COMMANDS.get(kind)
        if command is None:
            raise _NotAQueue(check.queue, kind)
        length = await client.execute_command(command, check.queue)  # type: ignore[no-untyped-call]
        return float(length), {"type": kind}
    if check.info is not None:
        info: dict[str, Any] = await client.info("everything")
        if check.info not in info:
            raise redis.exceptions.DataError(f"INFO has no field {check.info!r}")
        raw = info[check.info]
        try:
            return float(raw), {check.info: raw}
        except (TypeError, ValueError):
            return None, {check.info: raw}
    await client.ping()
    return 1.0, {}


# The keys BullMQ keeps per queue (`<prefix>:<queue>:<suffix>`) and the command counting
# each: lists for the states a job moves through in order, sorted sets for the others.
# `prioritized` holds the waiting jobs that were added with a priority (they never enter
# `wait`); `paused` holds the waiting jobs of a paused queue. Bull 3 uses the same names
# (it has no `prioritized`, which then reads 0).
_BULLMQ_COUNTS = (
    ("waiting", "LLEN", "wait"),
    ("active", "LLEN", "active"),
    ("paused", "LLEN", "paused"),
    ("prioritized", "ZCARD", "prioritized"),
    ("delayed", "ZCARD", "delayed"),
    ("failed", "ZCARD", "failed"),
    ("completed", "ZCARD", "completed"),
)
# BullMQ before 5 kept a "0:<delay>" marker entry at the tail of `wait` (and `paused`) to
# wake workers; it is not a job. Its own counting skips it the same way.
_LEGACY_MARKER = b"0:"


async def _bullmq(client: aioredis.Redis, queue: str, now: float) -> tuple[float, dict[str, Any]]:
    """Counts per state and the age of the oldest waiting job of one BullMQ queue.

    One round trip reads every count and the two tail entries of `wait` (BullMQ LPUSHes new
    jobs, so the oldest is at the tail; two, to step over a legacy marker). A second one,
    only when jobs are waiting, reads that job's `timestamp`: a Lua script could do both
    at once, but plain reads also work for a monitoring user whose ACL allows no scripts.
    """
    pipe = client.pipeline(transaction=True)  # MULTI/EXEC: every count from one instant
    for _, command, suffix in _BULLMQ_COUNTS:
        pipe.execute_command(command, f"{queue}:{suffix}")
    pipe.lrange(f"{queue}:wait", -2, -1)
    pipe.lindex(f"{queue}:paused", -1)
    # Errors come back as replies, so the one that failed can be named (redis-py's own
    # pipeline error text loses Redis's message in some versions).
    replies = await pipe.execute(raise_on_error=False)
    keys = [f"{queue}:{suffix}" for _, _, suffix in _BULLMQ_COUNTS] + [f"{queue}:wait", f"{queue}:paused"]
    for reply, key in zip(replies, keys):
        if isinstance(reply, Exception):
            raise redis.exceptions.ResponseError(f"{key!r}: {reply}")
    counts = {name: int(reply) for (name, _, _), reply in zip(_BULLMQ_COUNTS, replies)}
    tail = cast(list[bytes], replies[len(_BULLMQ_COUNTS)])
    if tail and tail[-1].startswith(_LEGACY_MARKER):
        counts["waiting"] = max(counts["waiting"] - 1, 0)
        tail = tail[:-1]
    if (paused_tail := replies[len(_BULLMQ_COUNTS) + 1]) is not None and paused_tail.startswith(_LEGACY_MARKER):
        counts["paused"] = max(counts["paused"] - 1, 0)
    detail: dict[str, Any] = dict(counts)
    detail["oldest_waiting_age"] = 0.0
    if tail:
        job_id = tail[-1].decode("utf-8", "replace")
        stamp = await cast(Awaitable[bytes | None], client.hget(f"{queue}:{job_id}", "timestamp"))
        detail["oldest_waiting_job"] = job_id
        # null when the job was taken between the two reads, or its hash has no timestamp
        # (the list is not BullMQ's); rules then read no age rather than a wrong one.
        detail["oldest_waiting_age"] = _age_from_ms(stamp, now)
    return float(counts["waiting"]), detail


def _age_from_ms(stamp: bytes | None, now: float) -> float | None:
    try:
        created = float(stamp) / 1000.0 if stamp is not None else None
    except ValueError:
        return None
    if created is None:
        return None
    return round(max(now - created, 0.0), 3)
