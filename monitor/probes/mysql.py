"""``kind: mysql`` — connect to MySQL or MariaDB and run ``query`` (default ``SELECT 1``).

value: the first column of the first row (as a number when it is one; 1 for a plain
``SELECT 1``). detail: ``rows`` (up to 10, as lists of strings), ``row_count``. The same
as ``kind: postgres`` (monitor/probes/sql_rows.py), and for the same reason a fresh
connection every run, closed at its end.

The query may not outlive the run: before it, the session's statement time limit is set to
the time left (MariaDB's ``max_statement_time``, MySQL's ``max_execution_time``, which
covers SELECTs only), so the server stops the query itself when the deadline cuts the run.
Closing the socket would not: the server notices a gone client only when it next writes.

asyncmy, not aiomysql: the two cost the same per run here (0.49 ms CPU each for connect,
``SELECT 1``, close on loopback; 0.63 M against 0.57 M instructions by callgrind, a
difference of about 20 µs), and asyncmy's import costs less (+54 M instructions against
+61 M). What decides it: asyncmy closes its socket when a connect is cancelled (aiomysql
catches only ``Exception`` there, so a deadline in the handshake left the socket to the
garbage collector), and it ships type information.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass
from typing import Literal, TYPE_CHECKING, cast
from urllib.parse import unquote, urlsplit

from pydantic import field_validator

from monitor.core.results import Outcome, Result, describe_exception, one_line
from monitor.probes.base import CheckBase, ProbeEnv
from monitor.probes.sql_rows import MAX_DETAIL_ROWS, detail, first_value

if TYPE_CHECKING:  # imported when a mysql check runs: the default config never loads it
    import asyncmy
    from asyncmy.cursors import Cursor

DEFAULT_PORT = 3306
# The server stopped the statement at its time limit: MariaDB's ER_STATEMENT_TIMEOUT,
# MySQL's ER_QUERY_TIMEOUT. Reported as the run's timeout, which is what it is.
_STATEMENT_TIMEOUT_ERRORS = frozenset({1969, 3024})
# How long the end of a run may take to say goodbye (COM_QUIT); without it the server counts
# an aborted connection and may log a warning for every run.
CLOSE_TIMEOUT = 1.0


@dataclass(frozen=True)
class MysqlTarget:
    host: str
    port: int
    user: str | None
    password: str
    database: str | None


def parse_dsn(dsn: str) -> MysqlTarget:
    """``mysql://user:pass@host:port/db`` (or ``mariadb://``), user and password
    percent-encoded. Errors never quote the DSN: it holds the password."""
    try:
        parts = urlsplit(dsn.strip())
        port = parts.port
        host = parts.hostname
    except ValueError:
        raise ValueError("invalid dsn: not a URL (mysql://user:pass@host:port/db)") from None
    if parts.scheme not in ("mysql", "mariadb"):
        raise ValueError("invalid dsn: must start with mysql:// or mariadb://")
    if not host:
        raise ValueError("invalid dsn: no host (mysql://user:pass@host:port/db)")
    if parts.query or parts.fragment:
        raise ValueError("invalid dsn: parameters after '?' or '#' are not supported")
    database = unquote(parts.path[1:]) if parts.path.startswith("/") else ""
    if "/" in database:
        raise ValueError("invalid dsn: the path must be a single database name")
    return MysqlTarget(
        host=host,
        port=port or DEFAULT_PORT,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else "",
        database=database or None,
    )


class MysqlCheck(CheckBase):
    kind: Literal["mysql"]
    # mysql://user:pass@host:port/db. A plain string, as postgres's: the loader registers a
    # DSN's password as a secret (monitor/config/secret_values.py), and nothing here quotes it.
    dsn: str
    query: str = "SELECT 1"

    @field_validator("dsn")
    @classmethod
    def _parses(cls, dsn: str) -> str:
        parse_dsn(dsn)
        return dsn


async def probe(check: MysqlCheck, deadline: float, env: ProbeEnv) -> Result:
    import asyncmy  # noqa: PLC0415 - only when a mysql check is configured
    import asyncmy.errors
    target = parse_dsn(check.dsn)
    remaining = max(deadline - time.monotonic(), 0.001)
    # The Connection exists before connecting, so it can be closed whatever happens: asyncmy
    # closes the socket of a cancelled handshake, and `close()` below that of a cancelled query.
    conn = asyncmy.Connection(  # type: ignore[no-untyped-call]
        host=target.host, port=target.port, user=target.user, password=target.password,
        database=target.database, autocommit=True, program_name="monitor",
        # Whole seconds, at least 1 (asyncmy's bounds); the runner's deadline is the real one.
        connect_timeout=max(1, math.ceil(remaining)),
    )
    started = time.perf_counter()
    try:
        await conn.connect()
        async with conn.cursor() as cursor:
            await _limit_statement_time(cursor, conn.get_server_info(), deadline)
            await cursor.execute(check.query)
            rows = list(await cursor.fetchmany(MAX_DETAIL_ROWS)) if cursor.description else []
            row_count = cast(int, cursor.rowcount)
    except (asyncmy.errors.MySQLError, OSError) as err:
        latency = time.perf_counter() - started
        if _code(err) in _STATEMENT_TIMEOUT_ERRORS:
            return Result(up=False, error="timeout", latency=latency, outcome=Outcome.TIMEOUT)
        return Result.failed(_describe(err), latency)
    finally:
        await _close(conn, deadline)
    latency = time.perf_counter() - started
    return Result(up=True, value=first_value(rows), latency=latency, detail=detail(rows, row_count))


async def _limit_statement_time(cursor: Cursor, server: str, deadline: float) -> None:
    """Let the server stop the query when the run's deadline passes. A server without the
    setting (MySQL before 5.7.8, some proxies) runs the query without a limit."""
    left = max(deadline - time.monotonic(), 0.001)
    if "mariadb" in server.lower():
        statement = f"SET SESSION max_statement_time = {left:.3f}"  # seconds, microsecond precision
    else:
        statement = f"SET SESSION max_execution_time = {max(1, math.ceil(left * 1000))}"  # ms, SELECTs only
    import asyncmy.errors

    with contextlib.suppress(asyncmy.errors.ProgrammingError, asyncmy.errors.OperationalError,
                             asyncmy.errors.InternalError, asyncmy.errors.NotSupportedError):
        await cursor.execute(statement)


async def _close(conn: asyncmy.Connection, deadline: float) -> None:
    """COM_QUIT when the connection is still sound, bounded so that a run cut by its deadline
    ends at once; the socket is closed in any case."""
    import asyncmy.errors

    budget = min(CLOSE_TIMEOUT, max(deadline - time.monotonic(), 0.05))
    try:
        async with asyncio.timeout(budget):
            await conn.ensure_closed()
    except (asyncmy.errors.MySQLError, OSError):
        pass
    finally:
        conn.close()


def _code(err: BaseException) -> int | None:
    return err.args[0] if err.args and isinstance(err.args[0], int) else None


def _describe(err: BaseException) -> str:
    """``ProgrammingError: (1064) You have an error in your SQL syntax; ...``: the driver's
    ``(code, "message")`` tuple, unquoted."""
    if len(err.args) == 2 and isinstance(err.args[0], int) and isinstance(err.args[1], str):
        return one_line(f"{type(err).__name__}: ({err.args[0]}) {err.args[1]}")
    return describe_exception(err)
