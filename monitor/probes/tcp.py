"""``kind: tcp`` — connect to ``address``, optionally send bytes and expect a reply.

value: seconds to connect. detail: ``received`` (the first bytes read, when ``expect`` is set).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Literal

from pydantic import field_validator

from monitor.probes.base import CheckBase, ProbeEnv, host_port, split_address
from monitor.core.results import Result, describe_exception

READ_LIMIT = 64 * 1024


class TcpCheck(CheckBase):
    kind: Literal["tcp"]
    address: str
    send: str | None = None
    expect: str | None = None  # a substring the reply must contain

    _address = field_validator("address")(host_port)


async def probe(check: TcpCheck, deadline: float, env: ProbeEnv) -> Result:
    host, port = split_address(check.address)
    started = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as err:
        return Result.failed(describe_exception(err), time.perf_counter() - started)
    connect_time = time.perf_counter() - started
    try:
        received = b""
        if check.send is not None:
            writer.write(check.send.encode())
            await writer.drain()
        if check.expect is not None:
            wanted = check.expect.encode()
            # Read until the expected text shows up, the peer closes, or the deadline hits.
            while wanted not in received and len(received) < READ_LIMIT:
                chunk = await reader.read(4096)
                if not chunk:
                    break
                received += chunk
            detail = {"received": received[:1024].decode("utf-8", "replace")}
            if wanted not in received:
                return Result.failed(f"reply does not contain {check.expect!r}", time.perf_counter() - started, detail, value=connect_time)
            return Result(up=True, value=connect_time, latency=time.perf_counter() - started, detail=detail)
        return Result(up=True, value=connect_time, latency=time.perf_counter() - started)
    except OSError as err:
        return Result.failed(describe_exception(err), time.perf_counter() - started)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 1.0)
