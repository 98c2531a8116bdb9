"""``kind: postgres`` — connect and run ``query`` (default ``SELECT 1``).

value: the first column of the first row (as a number when it is one; 1 for a plain
``SELECT 1``). detail: ``rows`` (up to 10, as lists of strings), ``row_count``.
A fresh connection every run: a health check must see what a new client would see, and a
pooled connection that survived a failover would hide the failure.
"""

from __future__ import annotations

import math
import time
from decimal import Decimal
from typing import Any, Literal

import psycopg
from psycopg.conninfo import conninfo_to_dict
from pydantic import field_validator

from monitor.probes.base import CheckBase, ProbeEnv
from monitor.core.dsn import dsn_secrets, without_secrets
from monitor.core.results import Result, describe_exception

MAX_DETAIL_ROWS = 10


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
    value = _number(rows[0][0]) if rows and rows[0] else None
    detail: dict[str, Any] = {"rows": [[_text(v) for v in row] for row in rows], "row_count": row_count}
    return Result(up=True, value=value, latency=latency, detail=detail)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float, Decimal)):
        return float(value)
    return None


def _text(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)
