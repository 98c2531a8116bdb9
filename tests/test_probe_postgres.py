"""``kind: postgres`` through the runner, against the shared PostgreSQL on 127.0.0.1:5432.

Nothing here changes the shared server beyond one uniquely named table per test, which is
dropped afterwards; unreachable targets use free loopback ports or a local blackhole socket.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pydantic import ValidationError

from monitor.config.errors import ConfigError
from monitor.config.loader import load_config
from monitor.probes import ProbeEnv
from monitor.probes.postgres import MAX_DETAIL_ROWS, PostgresCheck
from monitor.core.results import Outcome, Result
from monitor.scheduling.runner import run_check

from tests.probing import run_timed
from tests.servers import free_port

SHARED_TEST_DSN = "postgresql://postgres@127.0.0.1:5432/test"
SHARED_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def pg_check(query: str = "SELECT 1", *, dsn: str = SHARED_TEST_DSN, timeout: float = 3.0,
             interval: float = 10.0, name: str = "pg_probe_test") -> PostgresCheck:
    return PostgresCheck(name=name, kind="postgres", interval=interval, timeout=timeout, dsn=dsn, query=query)


@pytest.fixture
def counted_table() -> Iterator[tuple[str, int]]:
    """A uniquely named table in db ``test`` holding a known number of rows; dropped after."""
    table = f"monitor_probe_{uuid.uuid4().hex}"
    rows = 7
    with psycopg.connect(SHARED_TEST_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, label text NOT NULL)")
        try:
            with conn.cursor() as cur:
                cur.executemany(f"INSERT INTO {table} (id, label) VALUES (%s, %s)",
                                [(i, f"row-{i}") for i in range(rows)])
            yield table, rows
        finally:
            conn.execute(f"DROP TABLE IF EXISTS {table}")


# --- healthy ---------------------------------------------------------------------------------


async def test_select_one_is_up_with_value_one() -> None:
    result, _ = await run_timed(pg_check())
    assert result.up is True, result.error
    assert result.outcome is Outcome.SUCCESS
    assert result.value == 1.0
    assert result.error is None
    assert result.detail == {"rows": [[1]], "row_count": 1}
    assert result.latency > 0
    assert result.at > 0  # filled in by the runner


async def test_count_query_value_is_the_row_count(counted_table: tuple[str, int]) -> None:
    table, rows = counted_table
    result, _ = await run_timed(pg_check(f"SELECT count(*) FROM {table}"))
    assert result.up is True, result.error
    assert result.value == float(rows)
    assert result.detail["rows"] == [[rows]]
    assert result.detail["row_count"] == 1


async def test_numeric_and_boolean_first_columns_become_numbers(counted_table: tuple[str, int]) -> None:
    table, rows = counted_table
    avg, _ = await run_timed(pg_check(f"SELECT avg(id) FROM {table}"))  # numeric -> Decimal
    assert avg.up is True and avg.value == pytest.approx((rows - 1) / 2)
    exists, _ = await run_timed(pg_check(f"SELECT EXISTS (SELECT 1 FROM {table} WHERE id = 3)"))
    assert exists.up is True and exists.value == 1.0


async def test_text_first_column_gives_no_value_and_rows_in_detail(counted_table: tuple[str, int]) -> None:
    table, _ = counted_table
    result, _ = await run_timed(pg_check(f"SELECT label, id FROM {table} WHERE id < 2 ORDER BY id"))
    assert result.up is True, result.error
    assert result.value is None
    assert result.detail == {"rows": [["row-0", 0], ["row-1", 1]], "row_count": 2}


async def test_detail_rows_are_capped_but_row_count_is_not() -> None:
    result, _ = await run_timed(pg_check("SELECT g, now() FROM generate_series(1, 25) AS g"))
    assert result.up is True, result.error
    assert result.value == 1.0
    assert len(result.detail["rows"]) == MAX_DETAIL_ROWS
    assert result.detail["row_count"] == 25
    # Non-JSON types (a timestamp here) are turned into strings, so the API can serve them.
    assert all(isinstance(row[1], str) for row in result.detail["rows"])


async def test_statement_without_result_set_is_up_without_value() -> None:
    result, _ = await run_timed(pg_check("SET search_path TO public"))
    assert result.up is True, result.error
    assert result.value is None
    assert result.detail["rows"] == []


# --- failing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "prefix", "fragment"),
    [
        ("SELEC 1", "SyntaxError: ", 'syntax error at or near "SELEC"'),
        ("SELECT * FROM monitor_no_such_table_{tag}", "UndefinedTable: ", "monitor_no_such_table_{tag}\" does not exist"),
    ],
    ids=["syntax_error", "missing_table"],
)
async def test_failing_query_is_a_failure_with_the_one_line_psycopg_error(query: str, prefix: str, fragment: str) -> None:
    tag = uuid.uuid4().hex
    result, took = await run_timed(pg_check(query.format(tag=tag)))
    assert result.up is False
    assert result.outcome is Outcome.FAILURE
    assert result.value is None
    assert result.error is not None
    assert result.error.startswith(prefix), result.error
    assert fragment.format(tag=tag) in result.error
    # psycopg's message has a "LINE 1: ..." part with a caret below it; it arrives flattened.
    assert "\n" not in result.error and "LINE 1:" in result.error
    assert took < 2.0


async def test_slow_query_times_out_quickly_and_leaves_no_connection_behind() -> None:
    tag = uuid.uuid4().hex
    result, took = await run_timed(pg_check(f"SELECT pg_sleep(5) /* {tag} */", timeout=1.0, interval=5.0))
    assert result.up is False
    # Either the runner's deadline or the server's statement_timeout (set from the same
    # deadline) ends it, whichever fires first.
    if result.outcome is Outcome.TIMEOUT:
        assert result.error == "timeout"
    else:
        assert result.outcome is Outcome.FAILURE
        assert result.error is not None and "statement timeout" in result.error
    assert took < 3.0, f"a 1s-timeout run took {took:.2f}s"

    # The backend that ran pg_sleep must go away: not sleeping on, nor idle in a leaked session.
    query = """SELECT count(*) FROM pg_stat_activity
               WHERE application_name = 'monitor' AND query LIKE %s AND pid <> pg_backend_pid()"""
    deadline = time.monotonic() + 3.0
    with psycopg.connect(SHARED_ADMIN_DSN, autocommit=True) as conn:
        while True:
            row = conn.execute(query, (f"%{tag}%",)).fetchone()
            assert row is not None
            if row[0] == 0:
                break
            assert time.monotonic() < deadline, f"{row[0]} 'monitor' session(s) still running the slow query"
            time.sleep(0.05)


async def test_connect_that_never_answers_is_cut_at_the_deadline_and_the_socket_closed() -> None:
    """A listener that accepts but never speaks: libpq waits; the runner's deadline must not."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(5.0)
    port = listener.getsockname()[1]
    seen: dict[str, Any] = {}

    def blackhole() -> None:
        try:
            conn, _ = listener.accept()
        except OSError as err:
            seen["error"] = err
            return
        with conn:
            conn.settimeout(5.0)
            try:
                seen["first"] = conn.recv(1024)  # the client's startup/SSL request
                conn.settimeout(2.5)  # the probe's deadline is 1s away
                seen["eof"] = conn.recv(1024) == b""  # b"" once the client closes its socket
            except OSError as err:
                seen["error"] = err
            seen["closed_at"] = time.monotonic()

    thread = threading.Thread(target=blackhole, daemon=True)
    thread.start()
    try:
        result, took = await run_timed(pg_check(dsn=f"postgresql://postgres@127.0.0.1:{port}/test", timeout=1.0))
        # Join off the loop: psycopg drops the abandoned socket on the loop's next turn.
        await asyncio.to_thread(thread.join, 6.0)
    finally:
        listener.close()
    assert result.up is False
    assert result.outcome is Outcome.TIMEOUT
    assert took < 2.0
    assert seen.get("first"), seen
    assert seen.get("eof") is True, f"the probe's connection was not closed: {seen}"


async def test_wrong_port_is_a_fast_failure() -> None:
    port = free_port()
    result, took = await run_timed(pg_check(dsn=f"postgresql://postgres@127.0.0.1:{port}/test"))
    assert result.up is False
    assert result.outcome is Outcome.FAILURE
    assert result.error is not None
    assert result.error.startswith("OperationalError: ")
    assert f"port {port} failed" in result.error and "refused" in result.error.lower()
    assert took < 1.0


async def test_missing_database_is_a_failure() -> None:
    db = f"monitor_no_db_{uuid.uuid4().hex[:12]}"
    result, _ = await run_timed(pg_check(dsn=f"postgresql://postgres@127.0.0.1:5432/{db}"))
    assert result.up is False
    assert result.outcome is Outcome.FAILURE
    assert result.error is not None and db in result.error and "does not exist" in result.error


@pytest.mark.parametrize(
    "dsn",
    ["host=127.0.0.1 port", "postgresql://[::1", "host=127.0.0.1 nosuchoption=1", "host='unterminated"],
)
def test_bad_dsn_is_a_config_validation_error(dsn: str) -> None:
    with pytest.raises(ValidationError) as info:
        pg_check(dsn=dsn)
    errors = info.value.errors()
    assert len(errors) == 1
    assert errors[0]["loc"] == ("dsn",)
    assert "invalid dsn" in errors[0]["msg"]
    assert "\n" not in errors[0]["msg"]


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://user:secretpw@127.0.0.1:1/postgres",
        "host=127.0.0.1 port=1 user=user password=secretpw dbname=postgres",
    ],
    ids=["uri", "key_value"],
)
async def test_password_in_dsn_never_appears_in_the_error(dsn: str) -> None:
    result, _ = await run_timed(pg_check(dsn=dsn))
    assert result.up is False
    assert result.error is not None and "port 1 failed" in result.error
    assert "secretpw" not in result.error
    assert "secretpw" not in repr(result.detail)


# The validator's message is what `monitor validate` prints as `file:line: ...`.
@pytest.mark.parametrize(
    "dsn",
    ["postgresql://app:secretpw@[::1/db", "postgresql://app:secret%zzpw@127.0.0.1/db"],
    ids=["bad_ipv6_host", "bad_percent_escape_in_password"],
)
def test_invalid_dsn_error_does_not_echo_the_password(dsn: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as info:
        pg_check(dsn=dsn)
    message = info.value.errors()[0]["msg"]
    assert "invalid dsn" in message
    assert "secret" not in message, f"the config error leaks the password: {message}"

    (tmp_path / "main.yaml").write_text("global: {listen: 127.0.0.1:1}\ncheck_files: [checks.yaml]\nrule_files: []\n")
    (tmp_path / "checks.yaml").write_text(
        f"checks:\n  - name: db\n    kind: postgres\n    interval: 5s\n    dsn: '{dsn}'\n"
    )
    with pytest.raises(ConfigError) as config_error:
        load_config(tmp_path / "main.yaml", environ={})
    printed = [str(problem) for problem in config_error.value.problems]
    assert any("invalid dsn" in line for line in printed), printed
    assert not any("secret" in line for line in printed), printed
