"""``kind: mysql`` through the runner, against the shared MariaDB on 127.0.0.1:3306.

Nothing here changes the shared server beyond one uniquely named database per test, which
is dropped afterwards; unreachable targets use free loopback ports or a local silent socket.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncmy
import pytest
from pydantic import ValidationError

from monitor.config.errors import ConfigError
from monitor.config.loader import load_config
from monitor.core import secrets
from monitor.core.results import Outcome
from monitor.probes import mysql
from monitor.probes.mysql import MysqlCheck, parse_dsn
from monitor.probes.sql_rows import MAX_DETAIL_ROWS

from tests.probing import run_timed
from tests.servers import free_port

SERVER = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}


def my_check(query: str = "SELECT 1", *, dsn: str = "mysql://root@127.0.0.1:3306/", timeout: float = 3.0,
             interval: float = 10.0) -> MysqlCheck:
    return MysqlCheck(name="mysql_probe_test", kind="mysql", interval=interval, timeout=timeout, dsn=dsn, query=query)


async def admin(statement: str, args: Any = None) -> list[Any]:
    """One statement on the shared server, on a connection of the test's own."""
    conn = await asyncmy.connect(**SERVER, autocommit=True)  # type: ignore[no-untyped-call]
    try:
        async with conn.cursor() as cursor:
            await cursor.execute(statement, args)
            return list(await cursor.fetchall()) if cursor.description else []
    finally:
        await conn.ensure_closed()


@pytest.fixture
async def database() -> AsyncIterator[str]:
    """A uniquely named database with table ``items`` of 7 rows (id 0..6, label row-N)."""
    name = f"monitor_probe_{uuid.uuid4().hex}"
    await admin(f"CREATE DATABASE {name}")
    try:
        await admin(f"CREATE TABLE {name}.items (id INT PRIMARY KEY, label VARCHAR(20) NOT NULL, at DATETIME)")
        await admin(f"INSERT INTO {name}.items VALUES " + ", ".join(f"({i}, 'row-{i}', NOW())" for i in range(7)))
        yield name
    finally:
        await admin(f"DROP DATABASE IF EXISTS {name}")


def in_db(database: str) -> str:
    return f"mysql://root@127.0.0.1:3306/{database}"


# --- healthy ---------------------------------------------------------------------------------


async def test_select_one_is_up_with_value_one() -> None:
    result, _ = await run_timed(my_check())
    assert result.up is True, result.error
    assert result.outcome is Outcome.SUCCESS
    assert result.value == 1.0
    assert result.error is None
    assert result.detail == {"rows": [[1]], "row_count": 1}
    assert result.latency > 0 and result.at > 0


async def test_count_follows_the_table(database: str) -> None:
    check = my_check("SELECT COUNT(*) FROM items", dsn=in_db(database))
    before, _ = await run_timed(check)
    await admin(f"INSERT INTO {database}.items (id, label) VALUES (7, 'row-7'), (8, 'row-8'), (9, 'row-9')")
    after, _ = await run_timed(check)
    await admin(f"DELETE FROM {database}.items WHERE id < 5")
    last, _ = await run_timed(check)
    assert [r.value for r in (before, after, last)] == [7.0, 10.0, 5.0]
    assert after.detail == {"rows": [[10]], "row_count": 1}


async def test_decimal_first_column_becomes_a_number(database: str) -> None:
    result, _ = await run_timed(my_check("SELECT AVG(id) FROM items", dsn=in_db(database)))  # DECIMAL
    assert result.up is True, result.error
    assert result.value == pytest.approx(3.0)
    exists, _ = await run_timed(my_check("SELECT EXISTS (SELECT 1 FROM items WHERE id = 3)", dsn=in_db(database)))
    assert exists.value == 1.0


async def test_text_first_column_gives_no_value_and_rows_in_detail(database: str) -> None:
    result, _ = await run_timed(my_check("SELECT label, id FROM items WHERE id < 2 ORDER BY id", dsn=in_db(database)))
    assert result.up is True, result.error
    assert result.value is None
    assert result.detail == {"rows": [["row-0", 0], ["row-1", 1]], "row_count": 2}


async def test_null_first_column_is_up_without_value() -> None:
    result, _ = await run_timed(my_check("SELECT NULL, 2"))
    assert result.up is True, result.error
    assert result.value is None
    assert result.detail == {"rows": [[None, 2]], "row_count": 1}


async def test_no_rows_is_up_without_value(database: str) -> None:
    result, _ = await run_timed(my_check("SELECT id FROM items WHERE id > 100", dsn=in_db(database)))
    assert result.up is True, result.error
    assert result.value is None
    assert result.detail == {"rows": [], "row_count": 0}


async def test_detail_rows_are_capped_but_row_count_is_not() -> None:
    query = "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 25) SELECT n, NOW() FROM g"
    result, _ = await run_timed(my_check(query))
    assert result.up is True, result.error
    assert result.value == 1.0
    assert len(result.detail["rows"]) == MAX_DETAIL_ROWS
    assert result.detail["row_count"] == 25
    # Non-JSON types (a DATETIME here) are turned into strings, so the API can serve them.
    assert all(isinstance(row[1], str) for row in result.detail["rows"])


async def test_statement_without_result_set_is_up_without_value() -> None:
    result, _ = await run_timed(my_check("DO 1"))
    assert result.up is True, result.error
    assert result.value is None
    assert result.detail["rows"] == []


# --- failing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "prefix", "fragment"),
    [
        ("SELEC 1", "ProgrammingError: (1064) ", "right syntax to use near 'SELEC 1'"),
        ("SELECT * FROM monitor_no_such_table_{tag}", "ProgrammingError: (1146) ", "monitor_no_such_table_{tag}' doesn't exist"),
    ],
    ids=["syntax_error", "missing_table"],
)
async def test_failing_query_is_a_one_line_failure(query: str, prefix: str, fragment: str, database: str) -> None:
    tag = uuid.uuid4().hex
    result, took = await run_timed(my_check(query.format(tag=tag), dsn=in_db(database)))
    assert result.up is False
    assert result.outcome is Outcome.FAILURE
    assert result.value is None
    assert result.error is not None
    assert result.error.startswith(prefix), result.error
    assert fragment.format(tag=tag) in result.error
    assert "\n" not in result.error
    assert took < 2.0


async def test_wrong_password_is_one_line_without_the_password() -> None:
    password = f"wrong-{uuid.uuid4().hex[:12]}"
    result, took = await run_timed(my_check(dsn=f"mysql://root:{password}@127.0.0.1:3306/"))
    assert result.up is False
    assert result.outcome is Outcome.FAILURE
    assert result.error is not None
    assert result.error.startswith("OperationalError: (1045) Access denied for user 'root'"), result.error
    assert "\n" not in result.error
    assert password not in result.error and password not in repr(result.detail)
    assert took < 2.0


async def test_unreachable_port_is_a_fast_failure() -> None:
    port = free_port()
    result, took = await run_timed(my_check(dsn=f"mysql://root:s3cret-pw@127.0.0.1:{port}/"))
    assert result.up is False
    assert result.outcome is Outcome.FAILURE
    assert result.error is not None
    assert result.error.startswith("OperationalError: (2003) Can't connect to MySQL server on '127.0.0.1'"), result.error
    assert str(port) in result.error and "s3cret-pw" not in result.error
    assert took < 1.0


async def test_missing_database_is_a_failure() -> None:
    db = f"monitor_no_db_{uuid.uuid4().hex[:12]}"
    result, _ = await run_timed(my_check(dsn=f"mysql://root@127.0.0.1:3306/{db}"))
    assert result.up is False
    assert result.error == f"OperationalError: (1049) Unknown database '{db}'"


async def test_slow_query_times_out_and_the_server_stops_it() -> None:
    tag = uuid.uuid4().hex
    result, took = await run_timed(my_check(f"SELECT SLEEP(10) /* {tag} */", timeout=1.0, interval=5.0))
    assert result.up is False
    # The runner's deadline or the server's statement time limit (set to the same deadline)
    # ends it, whichever comes first; either way it is this run's timeout.
    assert result.outcome is Outcome.TIMEOUT
    assert result.error == "timeout"
    assert took < 1.5, f"a 1s-timeout run took {took:.2f}s"

    # Closing the socket alone would leave SLEEP running on the server for 9 more seconds.
    query = ("SELECT COUNT(*) FROM information_schema.PROCESSLIST "
             "WHERE INFO LIKE %s AND INFO NOT LIKE '%%PROCESSLIST%%'")
    deadline = time.monotonic() + 1.5
    while True:
        (count,), = await admin(query, (f"%{tag}%",))
        if count == 0:
            break
        assert time.monotonic() < deadline, f"{count} server thread(s) still running the slow query"
        await asyncio.sleep(0.05)


async def test_connect_that_never_answers_is_cut_at_the_deadline_and_the_socket_closed() -> None:
    """A listener that accepts but never sends the server greeting."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(5.0)
    port = listener.getsockname()[1]
    seen: dict[str, Any] = {}

    def silent() -> None:
        try:
            conn, _ = listener.accept()
        except OSError as err:
            seen["error"] = err
            return
        with conn:
            conn.settimeout(2.5)  # the probe's deadline is 1s away; the client speaks second
            try:
                seen["eof"] = conn.recv(1024) == b""
            except OSError as err:
                seen["error"] = err

    thread = threading.Thread(target=silent, daemon=True)
    thread.start()
    try:
        result, took = await run_timed(my_check(dsn=f"mysql://root@127.0.0.1:{port}/", timeout=1.0))
        await asyncio.to_thread(thread.join, 6.0)
    finally:
        listener.close()
    assert result.up is False
    assert result.outcome is Outcome.TIMEOUT
    assert 0.9 < took < 1.6, took
    assert seen.get("eof") is True, f"the probe's connection was not closed: {seen}"


class _Cursor:
    def __init__(self, error: Exception | None = None) -> None:
        self.statements: list[str] = []
        self.error = error

    async def execute(self, statement: str) -> None:
        self.statements.append(statement)
        if self.error is not None:
            raise self.error


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        ("5.5.5-10.11.19-MariaDB-0+deb12u1", "SET SESSION max_statement_time = 2."),
        ("8.0.36", "SET SESSION max_execution_time = 2"),
    ],
)
async def test_statement_time_limit_follows_the_server(server: str, expected: str) -> None:
    cursor = _Cursor()
    await mysql._limit_statement_time(cursor, server, time.monotonic() + 2.5)
    (statement,) = cursor.statements
    assert statement.startswith(expected), statement


async def test_a_server_without_the_limit_still_runs_the_query() -> None:
    cursor = _Cursor(asyncmy.errors.OperationalError(1193, "Unknown system variable 'max_execution_time'"))
    await mysql._limit_statement_time(cursor, "5.6.51", time.monotonic() + 2.0)  # does not raise
    assert len(cursor.statements) == 1


# --- config ----------------------------------------------------------------------------------


def test_dsn_parts() -> None:
    target = parse_dsn("mysql://app:p%40ss%2Fw@db.example:3307/sales")
    assert (target.host, target.port, target.user, target.password, target.database) == \
        ("db.example", 3307, "app", "p@ss/w", "sales")
    bare = parse_dsn("mariadb://[::1]")
    assert (bare.host, bare.port, bare.user, bare.password, bare.database) == ("::1", 3306, None, "", None)


@pytest.mark.parametrize(
    ("dsn", "fragment"),
    [
        ("postgresql://app:s3cret-pw@127.0.0.1/db", "mysql:// or mariadb://"),
        ("mysql://app:s3cret-pw@/db", "no host"),
        ("mysql://app:s3cret-pw@127.0.0.1:99999/db", "not a URL"),
        ("mysql://app:s3cret-pw@[::1/db", "not a URL"),
        ("mysql://app:s3cret-pw@127.0.0.1/db?ssl=1", "not supported"),
        ("mysql://app:s3cret-pw@127.0.0.1/db/extra", "single database name"),
    ],
    ids=["scheme", "no_host", "port", "bad_ipv6", "parameters", "path"],
)
def test_bad_dsn_is_a_config_error_without_the_password(dsn: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        my_check(dsn=dsn)
    errors = info.value.errors()
    assert [e["loc"] for e in errors] == [("dsn",)]
    assert "invalid dsn" in errors[0]["msg"] and fragment in errors[0]["msg"], errors[0]["msg"]
    assert "s3cret-pw" not in errors[0]["msg"]


def test_loaded_dsn_password_is_registered_as_a_secret(tmp_path: Path) -> None:
    password = f"my-{uuid.uuid4().hex[:16]}"
    (tmp_path / "main.yaml").write_text("global: {listen: 127.0.0.1:1}\ncheck_files: [checks.yaml]\nrule_files: []\n")
    (tmp_path / "checks.yaml").write_text(
        f"checks:\n  - name: db\n    kind: mysql\n    interval: 5s\n    dsn: mysql://app:{password}@127.0.0.1/app\n"
    )
    config = load_config(tmp_path / "main.yaml", environ={})
    assert config.checks[0].kind == "mysql"
    assert secrets.redact(f"server said {password}") == "server said ***"


def test_invalid_dsn_in_a_file_is_reported_without_the_password(tmp_path: Path) -> None:
    (tmp_path / "main.yaml").write_text("global: {listen: 127.0.0.1:1}\ncheck_files: [checks.yaml]\nrule_files: []\n")
    (tmp_path / "checks.yaml").write_text(
        "checks:\n  - name: db\n    kind: mysql\n    interval: 5s\n    dsn: 'mysql://app:s3cret-pw@[::1/app'\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "main.yaml", environ={})
    printed = [str(problem) for problem in info.value.problems]
    assert any("invalid dsn" in line for line in printed), printed
    assert not any("s3cret" in line for line in printed), printed
