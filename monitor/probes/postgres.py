"""``kind: postgres`` — connect and run ``query`` (default ``SELECT 1``).

value: the first column of the first row (as a number when it is one; 1 for a plain
``SELECT 1``). detail: ``rows`` (up to 10, as lists of strings), ``row_count``.
A fresh connection every run: a health check must see what a new client would see, and a
pooled connection that survived a failover would hide the failure.
"""

from __future__ import annotations

import math
import time
from typing import Literal

import psycopg
from psycopg.conninfo import conninfo_to_dict
from pydantic import field_validator

from monitor.probes.base import CheckBase, ProbeEnv
from monitor.core.dsn import dsn_secrets, without_secrets
from monitor.core.results import Result, describe_exception
from monitor.probes.sql_rows import MAX_DETAIL_ROWS, detail, first_value


class PostgresCheck(CheckBase):
    kind: Literal["postgres"]
    dsn: str
    query: str = "SELECT 1"

    @field_validator("dsn")
    @classmethod
    def _parses(cls, dsn: str) -> str:
        try:
            conninfo_to_dict(dsn)
        except psycopg.ProgrammingError as err:
            # libpq quotes the malformed input back, password included: scrub it.
            raise ValueError(f"invalid dsn: {without_secrets(str(err).splitlines()[0], dsn_secrets(dsn))}") from None
        return dsn


async def probe(check: PostgresCheck, deadline: float, env: ProbeEnv) -> Result:
    remaining = max(deadline - time.monotonic(), 0.001)
    started = time.perf_counter()
    try:
        # connect_timeout bounds the handshake, statement_timeout the query, both inside the
        # runner's overall deadline; libpq's connect_timeout has one-second granularity.
        conn = await psycopg.AsyncConnection.connect(
            check.dsn,
            connect_timeout=max(2, math.ceil(remaining)),
            options=f"-c statement_timeout={int(remaining * 1000)}",
            autocommit=True,
            application_name="monitor",
        )
    except (psycopg.Error, OSError) as err:
        return Result.failed(describe_exception(err), time.perf_counter() - started)
    try:
        async with conn.cursor() as cursor:
            await cursor.execute(check.query)
            rows = await cursor.fetchmany(MAX_DETAIL_ROWS) if cursor.description else []
            row_count = cursor.rowcount
    except (psycopg.Error, OSError) as err:
        return Result.failed(describe_exception(err), time.perf_counter() - started)
    finally:
        # Closing here also runs when the deadline cancels us, so no connection leaks.
        await conn.close()
    latency = time.perf_counter() - started
    return Result(up=True, value=first_value(rows), latency=latency, detail=detail(rows, row_count))
