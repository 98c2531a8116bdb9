"""The TCP probe against small loopback servers running on the test's own event loop.

Runs go through ``run_check`` so the runner's hard deadline applies as in the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from pydantic import ValidationError

from monitor.probes.base import ProbeEnv
from monitor.probes.tcp import TcpCheck
from monitor.core.results import Outcome, Result
from monitor.scheduling.runner import run_check

ConnectionHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def tcp_check(address: str, **fields: Any) -> TcpCheck:
    config: dict[str, Any] = {"name": "t", "kind": "tcp", "address": address, "interval": 10, "timeout": 2}
    config.update(fields)
    return TcpCheck.model_validate(config)


@contextlib.asynccontextmanager
async def serving(handler: ConnectionHandler) -> AsyncIterator[tuple[str, list[bytes]]]:
    """Listen on 127.0.0.1:0; yields ("127.0.0.1:port", bytes received per connection)."""
    received: list[bytes] = []
    tasks: set[asyncio.Task[Any]] = set()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            tasks.discard(task)
            writer.close()

    async def recording(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(b"")
        index = len(received) - 1
        original_read = reader.read

        async def read(n: int = -1) -> bytes:
            data = await original_read(n)
            received[index] += data
            return data

        reader.read = read  # type: ignore[method-assign]
        await accept(reader, writer)

    server = await asyncio.start_server(recording, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}", received
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(4096):
        writer.write(data)
        await writer.drain()


async def greet_and_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"220 smtp.example ESMTP ready\r\n")
    await writer.drain()


async def say_nope(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(4096)
    writer.write(b"-ERR unknown command\r\n")
    await writer.drain()


async def read_and_hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while await reader.read(4096):  # never answers; returns when the client closes
        pass


async def accept_only(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(4096)  # EOF when the client closes


@pytest.fixture
def env() -> ProbeEnv:
    return ProbeEnv()  # the TCP probe uses no shared session, nothing to close


def assert_one_line_failure(result: Result) -> str:
    assert result.up is False
    assert result.outcome is Outcome.FAILURE
    assert result.error, "a failure must say why"
    assert "\n" not in result.error
    return result.error


async def test_connect_to_listening_socket_is_up(env: ProbeEnv) -> None:
    async with serving(accept_only) as (address, _):
        result = await run_check(tcp_check(address), env)
    assert result.up is True, result.error
    assert result.outcome is Outcome.SUCCESS
    assert result.value is not None and 0 <= result.value < 1  # seconds to connect, on loopback
    assert result.latency >= result.value
    assert result.detail == {}  # "received" is only reported when expect is set


async def test_connection_refused_is_a_one_line_failure(closed_port: int, env: ProbeEnv) -> None:
    result = await run_check(tcp_check(f"127.0.0.1:{closed_port}"), env)
    error = assert_one_line_failure(result)
    assert str(closed_port) in error or "refused" in error.lower(), error
    assert result.value is None


async def test_send_and_expect_with_echo_server(env: ProbeEnv) -> None:
    async with serving(echo) as (address, received):
        result = await run_check(tcp_check(address, send="PING hello\r\n", expect="hello"), env)
    assert result.up is True, result.error
    assert result.detail["received"] == "PING hello\r\n"
    assert received == [b"PING hello\r\n"]  # exactly what was configured went over the wire


async def test_expect_banner_without_send(env: ProbeEnv) -> None:
    async with serving(greet_and_close) as (address, received):
        result = await run_check(tcp_check(address, expect="220 "), env)
    assert result.up is True, result.error
    assert result.detail["received"].startswith("220 smtp.example")


async def test_send_without_expect_is_up_once_sent(env: ProbeEnv) -> None:
    async with serving(read_and_hang) as (address, received):
        result = await run_check(tcp_check(address, send="QUIT\r\n"), env)
        await asyncio.sleep(0.05)  # let the server read it
    assert result.up is True, result.error
    assert received == [b"QUIT\r\n"]


async def test_expect_not_met_is_a_failure_with_what_was_received(env: ProbeEnv) -> None:
    async with serving(say_nope) as (address, _):
        result = await run_check(tcp_check(address, send="PING\r\n", expect="+PONG"), env)
    error = assert_one_line_failure(result)
    assert error == "reply does not contain '+PONG'"
    assert result.detail["received"] == "-ERR unknown command\r\n"
    assert result.value is not None  # it did connect; the connect time is still reported


async def test_expect_against_silent_close_is_a_failure(env: ProbeEnv) -> None:
    async def close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        return None

    async with serving(close_at_once) as (address, _):
        result = await run_check(tcp_check(address, expect="anything"), env)
    assert_one_line_failure(result)
    assert result.detail["received"] == ""


async def test_hang_on_read_times_out(env: ProbeEnv) -> None:
    timeout = 1.0
    async with serving(read_and_hang) as (address, received):
        started = time.monotonic()
        result = await run_check(tcp_check(address, send="PING\r\n", expect="PONG", timeout=timeout), env)
        elapsed = time.monotonic() - started
    assert result.up is False
    assert result.outcome is Outcome.TIMEOUT
    assert result.error == "timeout"
    assert timeout * 0.5 <= elapsed < timeout + 2
    assert received == [b"PING\r\n"]


async def test_hang_does_not_delay_a_concurrent_check(env: ProbeEnv) -> None:
    async with serving(read_and_hang) as (slow_address, _), serving(echo) as (fast_address, _):
        slow, fast = await asyncio.gather(
            run_check(tcp_check(slow_address, send="x", expect="y", timeout=1.5), env),
            run_check(tcp_check(fast_address, send="ping", expect="ping", timeout=1.5), env),
        )
    assert slow.outcome is Outcome.TIMEOUT
    assert fast.up is True, fast.error
    assert fast.latency < 1.0


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", ":80", "host:port"])
def test_address_must_be_host_and_port(address: str) -> None:
    with pytest.raises(ValidationError, match="address must be host:port"):
        tcp_check(address)


def test_ipv6_address_is_accepted() -> None:
    assert tcp_check("[::1]:6379").address == "[::1]:6379"
