"""``kind: redis`` — PING by default; ``queue:`` gives a key's length; ``info:`` an INFO field.

value: 1 for PING, the length of the list, sorted set, set or stream under ``queue``
(0 when the key does not exist: an empty queue is deleted by Redis), or the numeric INFO
field. detail: ``type`` of the queue key, or the INFO ``section`` values read.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import redis.asyncio as aioredis
import redis.exceptions
from pydantic import model_validator

from monitor.probes.base import CheckBase, ProbeEnv
from monitor.core.results import Result, describe_exception

_LENGTH_COMMANDS = {"list": "LLEN", "zset": "ZCARD", "set": "SCARD", "stream": "XLEN"}


class RedisCheck(CheckBase):
    kind: Literal["redis"]
    url: str = "redis://127.0.0.1:6379/0"
    queue: str | None = None
    info: str | None = None  # e.g. connected_clients or used_memory

    @model_validator(mode="after")
    def _one_mode(self) -> RedisCheck:
        if self.queue is not None and self.info is not None:
            raise ValueError("set either queue or info, not both")
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
        value, detail = await _measure(client, check)
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


async def _measure(client: aioredis.Redis, check: RedisCheck) -> tuple[float | None, dict[str, Any]]:
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
