"""``kind: redis`` through the runner.

Read-only and uniquely-keyed tests use the shared Redis on 127.0.0.1:6379 (every key is
deleted afterwards); anything that blocks, kills or restarts a server uses a private
``redis-server`` from ``servers.py``.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from monitor.probes import ProbeEnv
from monitor.probes.redis import RedisCheck
from monitor.core.results import Outcome, Result
from monitor.scheduling.runner import run_check

from tests.probing import run_timed
from tests.servers import RedisServer, free_port, redis_ping, running_redis

SHARED_URL = "redis://127.0.0.1:6379/0"


def redis_check(url: str = SHARED_URL, *, timeout: float = 2.0, interval: float = 10.0,
                queue: str | None = None, info: str | None = None) -> RedisCheck:
    return RedisCheck(name="redis_probe_test", kind="redis", interval=interval, timeout=timeout,
                      url=url, queue=queue, info=info)


@pytest.fixture
def shared() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(SHARED_URL)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def key(shared: redis.Redis) -> Iterator[Callable[[str], str]]:
    """Hands out unique key names on the shared server and deletes them all afterwards."""
    prefix = f"monitor-test:{uuid.uuid4().hex}"
    made: list[str] = []

    def make(suffix: str) -> str:
        made.append(f"{prefix}:{suffix}")
        return made[-1]

    yield make
    if made:
        shared.delete(*made)


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


# --- PING, queues, INFO on the shared server -------------------------------------------------


async def test_ping_is_up_with_value_one() -> None:
    result, _ = await run_timed(redis_check())
    assert result.up is True, result.error
    assert result.outcome is Outcome.SUCCESS
    assert result.value == 1.0
    assert result.detail == {}
    assert result.error is None


@pytest.mark.parametrize(("kind", "length"), [("list", 3), ("zset", 4), ("set", 2), ("stream", 5)])
async def test_queue_length_per_type(kind: str, length: int, shared: redis.Redis,
                                     key: Callable[[str], str]) -> None:
    name = key(kind)
    if kind == "list":
        shared.rpush(name, *[f"job-{i}" for i in range(length)])
    elif kind == "zset":
        shared.zadd(name, {f"job-{i}": float(i) for i in range(length)})
    elif kind == "set":
        shared.sadd(name, *[f"job-{i}" for i in range(length)])
    else:
        for i in range(length):
            shared.xadd(name, {"job": str(i)})
    assert shared.type(name) == kind.encode()

    result, _ = await run_timed(redis_check(queue=name))
    assert result.up is True, result.error
    assert result.value == float(length)
    assert result.detail == {"type": kind}


async def test_queue_length_follows_changes(shared: redis.Redis, key: Callable[[str], str]) -> None:
    name = key("list")
    shared.rpush(name, "a", "b")
    first, _ = await run_timed(redis_check(queue=name))
    shared.rpush(name, "c", "d", "e")
    second, _ = await run_timed(redis_check(queue=name))
    assert (first.value, second.value) == (2.0, 5.0)


async def test_missing_key_is_an_empty_queue(key: Callable[[str], str]) -> None:
    result, _ = await run_timed(redis_check(queue=key("never-created")))
    assert result.up is True, result.error
    assert result.value == 0.0
    assert result.detail == {"type": "none"}


@pytest.mark.parametrize("kind", ["string", "hash"])
async def test_non_queue_key_fails_naming_its_type(kind: str, shared: redis.Redis, key: Callable[[str], str]) -> None:
    name = key(kind)
    if kind == "string":
        shared.set(name, "not a queue")
    else:
        shared.hset(name, mapping={"field": "value"})
    result, _ = await run_timed(redis_check(queue=name))
    assert result.up is False
    assert result.outcome is Outcome.FAILURE
    assert result.value is None
    assert result.error is not None
    assert f"is a {kind}" in result.error and name in result.error
    assert result.detail == {"type": kind}


async def test_numeric_info_field_is_the_value() -> None:
    result, _ = await run_timed(redis_check(info="connected_clients"))
    assert result.up is True, result.error
    assert result.value is not None and result.value >= 1.0  # at least the probe itself
    assert result.detail == {"connected_clients": int(result.value)}


async def test_text_info_field_is_up_without_value() -> None:
    result, _ = await run_timed(redis_check(info="redis_mode"))
    assert result.up is True, result.error
    assert result.value is None
    assert result.detail == {"redis_mode": "standalone"}


async def test_unknown_info_field_is_a_failure() -> None:
    field = f"no_such_field_{uuid.uuid4().hex[:8]}"
    result, _ = await run_timed(redis_check(info=field))
    assert result.up is False
    assert result.outcome is Outcome.FAILURE
    assert result.error is not None and field in result.error


def test_queue_and_info_together_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="either queue or info"):
        redis_check(queue="q", info="connected_clients")


# --- unreachable -----------------------------------------------------------------------------


async def test_refused_port_is_a_fast_failure() -> None:
    port = free_port()
    result, took = await run_timed(redis_check(f"redis://127.0.0.1:{port}/0"))
    assert result.up is False
    assert result.outcome is Outcome.FAILURE
    assert result.error is not None and result.error.startswith("ConnectionError: ") and str(port) in result.error
    assert took < 1.0


async def test_password_in_url_never_appears_in_the_error() -> None:
    port = free_port()
    result, _ = await run_timed(redis_check(f"redis://monitor:secretpw@127.0.0.1:{port}/0"))
    assert result.up is False
    assert result.error is not None and "secretpw" not in result.error


# --- a private server: blocked, killed mid-run, restarted ------------------------------------


def block_server(port: int, seconds: float) -> socket.socket:
    """Make the whole server busy for ``seconds`` (DEBUG SLEEP); returns the open socket."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5.0)
    sock.sendall(f"DEBUG SLEEP {seconds}\r\n".encode())
    return sock


def established_to(port: int) -> set[int]:
    """Local ports of this host's ESTABLISHED IPv4 TCP connections to 127.0.0.1:``port``."""
    local_ports: set[int] = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state = fields[1], fields[2], fields[3]
        if state == "01" and remote == f"0100007F:{port:04X}":
            local_ports.add(int(local.split(":")[1], 16))
    return local_ports


async def wait_for_new_connection(port: int, known: set[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not (established_to(port) - known):
        assert time.monotonic() < deadline, "the probe never connected"
        await asyncio.sleep(0.01)


async def test_blocked_server_is_a_timeout_at_the_deadline(private_redis: RedisServer) -> None:
    blocker = block_server(private_redis.port, 2)
    try:
        result, took = await run_timed(redis_check(private_redis.url, timeout=0.5, interval=1.0))
        assert result.up is False
        assert result.outcome is Outcome.TIMEOUT
        assert result.error == "timeout"
        assert took < 1.2
        # Once the server is free again, the same check is up.
        assert blocker.recv(64).startswith(b"+OK")
    finally:
        blocker.close()
    result, _ = await run_timed(redis_check(private_redis.url, timeout=0.5, interval=1.0))
    assert result.up is True, result.error


async def test_server_killed_mid_run_is_down_then_up_after_restart(private_redis: RedisServer) -> None:
    check = redis_check(private_redis.url, timeout=3.0, interval=5.0)
    before, _ = await run_timed(check)
    assert before.up is True, before.error

    # A run in flight against a busy server; the server dies under it.
    blocker = block_server(private_redis.port, 10)
    try:
        known = established_to(private_redis.port)
        in_flight = asyncio.create_task(run_timed(check))
        await wait_for_new_connection(private_redis.port, known, timeout=2.0)
        assert not in_flight.done()
        killed_at = time.monotonic()
        private_redis.kill()
        during, _ = await in_flight
        reported_after = time.monotonic() - killed_at
    finally:
        blocker.close()
    assert during.up is False
    assert during.outcome is Outcome.FAILURE  # a connection error, not a wait for the deadline
    assert during.error is not None and during.error.startswith("ConnectionError: ")
    assert reported_after < 1.0

    # While it is down: refused, immediately.
    down, took = await run_timed(check)
    assert not redis_ping(private_redis.port)
    assert down.up is False and down.outcome is Outcome.FAILURE
    assert down.error is not None and str(private_redis.port) in down.error
    assert took < 1.0

    private_redis.start()  # same port
    after, _ = await run_timed(check)
    assert after.up is True, after.error
    assert after.value == 1.0


# --- bullmq: a BullMQ queue read as a whole ---------------------------------------------------
#
# The keys are written the way BullMQ's own scripts write them (no Node needed): a job is a
# hash `<prefix>:<queue>:<id>` with `timestamp` in milliseconds, its id LPUSHed onto
# `<prefix>:<queue>:wait`; a worker moves it to the `active` list; `delayed`, `failed`,
# `completed` and `prioritized` are sorted sets.


class BullQueue:
    """A fake BullMQ queue under a unique prefix on the shared Redis."""

    def __init__(self, client: redis.Redis, prefix: str, name: str = "ingest") -> None:
        self.client, self.prefix, self.name = client, prefix, name
        self.next_id = 1

    def key(self, suffix: str) -> str:
        return f"{self.prefix}:{self.name}:{suffix}"

    def add(self, created_ms: int, target: str = "wait") -> str:
        job_id = str(self.next_id)
        self.next_id += 1
        self.client.hset(self.key(job_id), mapping={"name": "job", "data": "{}", "timestamp": created_ms,
                                                     "delay": 0, "priority": 0})
        self.client.lpush(self.key(target), job_id)
        return job_id

    def take(self) -> None:
        """What a worker does: the oldest waiting job (the tail) moves to the head of `active`."""
        self.client.lmove(self.key("wait"), self.key("active"), "RIGHT", "LEFT")

    def zadd(self, suffix: str, count: int) -> None:
        self.client.zadd(self.key(suffix), {f"z{suffix}{i}": float(i) for i in range(count)})

    def clear(self) -> None:
        keys = list(self.client.scan_iter(match=f"{self.prefix}:*", count=1000))
        if keys:
            self.client.delete(*keys)


@pytest.fixture
def bull(shared: redis.Redis) -> Iterator[BullQueue]:
    queue = BullQueue(shared, f"monitor-test-bull-{uuid.uuid4().hex}")
    try:
        yield queue
    finally:
        queue.clear()


def bull_check(queue: BullQueue, **fields: object) -> RedisCheck:
    config: dict[str, object] = {"name": "bull_probe_test", "kind": "redis", "interval": 10, "timeout": 2,
                                 "url": SHARED_URL, "bullmq": queue.name, "prefix": queue.prefix}
    config.update(fields)
    return RedisCheck.model_validate(config)


async def test_bullmq_counts_every_state_and_the_oldest_waiting_age(bull: BullQueue) -> None:
    now_ms = int(time.time() * 1000)
    oldest = bull.add(now_ms - 600_000)  # ten minutes ago: the tail of `wait`
    bull.add(now_ms - 120_000)
    bull.add(now_ms - 1_000)
    bull.add(now_ms - 5_000, target="active")
    bull.add(now_ms - 5_000, target="paused")
    bull.zadd("delayed", 4)
    bull.zadd("failed", 2)
    bull.zadd("completed", 7)
    bull.zadd("prioritized", 1)

    result, _ = await run_timed(bull_check(bull))
    assert result.up is True, result.error
    assert result.value == 3.0
    detail = dict(result.detail)
    age = detail.pop("oldest_waiting_age")
    assert detail == {"waiting": 3, "active": 1, "paused": 1, "prioritized": 1, "delayed": 4, "failed": 2,
                      "completed": 7, "oldest_waiting_job": oldest}
    assert 595 <= age <= 700


async def test_bullmq_follows_jobs_being_taken_and_added(bull: BullQueue) -> None:
    now_ms = int(time.time() * 1000)
    bull.add(now_ms - 900_000)
    bull.add(now_ms - 30_000)
    check = bull_check(bull)

    first, _ = await run_timed(check)
    assert (first.value, first.detail["active"]) == (2.0, 0)
    assert first.detail["oldest_waiting_age"] >= 895

    bull.take()  # the fifteen-minute-old job goes to a worker: the next oldest is 30 s old
    second, _ = await run_timed(check)
    assert (second.value, second.detail["active"]) == (1.0, 1)
    assert 25 <= second.detail["oldest_waiting_age"] < 300

    bull.take()
    empty, _ = await run_timed(check)
    assert empty.up is True
    assert (empty.value, empty.detail["active"], empty.detail["oldest_waiting_age"]) == (0.0, 2, 0.0)
    assert "oldest_waiting_job" not in empty.detail


async def test_bullmq_missing_queue_reads_as_empty(bull: BullQueue) -> None:
    result, _ = await run_timed(bull_check(bull))
    assert result.up is True, result.error
    assert result.value == 0.0
    assert result.detail == {"waiting": 0, "active": 0, "paused": 0, "prioritized": 0, "delayed": 0,
                             "failed": 0, "completed": 0, "oldest_waiting_age": 0.0}


async def test_bullmq_skips_the_legacy_marker_at_the_tail(bull: BullQueue) -> None:
    now_ms = int(time.time() * 1000)
    job = bull.add(now_ms - 60_000)
    bull.client.rpush(bull.key("wait"), "0:0")  # BullMQ 4's wake-up marker, not a job
    result, _ = await run_timed(bull_check(bull))
    assert result.value == 1.0
    assert result.detail["oldest_waiting_job"] == job
    assert 55 <= result.detail["oldest_waiting_age"] < 300


async def test_bullmq_default_prefix_is_bull(shared: redis.Redis) -> None:
    queue = BullQueue(shared, "bull", f"monitor-test-{uuid.uuid4().hex}")
    try:
        queue.add(int(time.time() * 1000))
        check = RedisCheck.model_validate({"name": "b", "kind": "redis", "interval": 10, "timeout": 2,
                                           "url": SHARED_URL, "bullmq": queue.name})
        assert check.prefix == "bull"
        result, _ = await run_timed(check)
        assert (result.up, result.value) == (True, 1.0)
    finally:
        queue.clear()


async def test_bullmq_wrong_key_type_is_a_one_line_failure(bull: BullQueue) -> None:
    bull.client.set(bull.key("wait"), "not a list")
    result, _ = await run_timed(bull_check(bull))
    assert result.up is False and result.outcome is Outcome.FAILURE
    assert result.error is not None and "WRONGTYPE" in result.error and "\n" not in result.error


async def test_bullmq_unreachable_server_is_a_failure(bull: BullQueue) -> None:
    port = free_port()
    result, _ = await run_timed(bull_check(bull, url=f"redis://monitor:secretpw@127.0.0.1:{port}/0"))
    assert result.up is False
    assert result.error is not None and str(port) in result.error and "secretpw" not in result.error


@pytest.mark.parametrize("other", [{"queue": "q"}, {"info": "connected_clients"}])
def test_bullmq_with_queue_or_info_is_a_config_error(other: dict[str, str]) -> None:
    config = {"name": "b", "kind": "redis", "interval": 10, "timeout": 2, "bullmq": "ingest", **other}
    with pytest.raises(ValueError, match="only one of queue, info or bullmq"):
        RedisCheck.model_validate(config)


def test_prefix_without_bullmq_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="prefix applies to bullmq only"):
        RedisCheck.model_validate({"name": "b", "kind": "redis", "interval": 10, "timeout": 2, "prefix": "x"})
