"""``kind: rabbitmq`` through the runner, against the shared RabbitMQ on 127.0.0.1:5672.

Each test makes its own uniquely named queue with a separate client (aiormq, its own
connection) and deletes it afterwards; unreachable and silent brokers are free loopback
ports and local socket servers.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import ssl
import subprocess
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiormq
import aiormq.abc
import aiormq.exceptions
import pytest
import trustme
from pydantic import ValidationError

from monitor.config.errors import ConfigError
from monitor.config.loader import load_config
from monitor.core import secrets
from monitor.core.results import Outcome
from monitor.probes.rabbitmq import RabbitmqCheck

from tests.probing import run_timed
from tests.servers import free_port

BROKER = "amqp://guest:guest@127.0.0.1:5672/"
# The AMQP 0-9-1 protocol header: the first bytes a client sends.
PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"


def mq_check(queue: str, *, url: str = BROKER, timeout: float = 3.0, interval: float = 10.0,
             tls: dict[str, Any] | None = None) -> RabbitmqCheck:
    return RabbitmqCheck(name="mq_probe_test", kind="rabbitmq", interval=interval, timeout=timeout,
                         url=url, queue=queue, tls=tls or {})


@dataclass
class OwnQueue:
    name: str
    channel: aiormq.abc.AbstractChannel
    delivered: list[aiormq.abc.DeliveredMessage] = field(default_factory=list)

    async def publish(self, count: int) -> None:
        for i in range(count):
            # Publisher confirms are on: each publish returns once the broker has the message.
            await self.channel.basic_publish(f"m{i}".encode(), routing_key=self.name)


@pytest.fixture
async def queue() -> AsyncIterator[OwnQueue]:
    """A fresh queue on the shared broker, owned by a client of the test's own; deleted after."""
    name = f"monitor-probe-{uuid.uuid4().hex}"
    connection = await aiormq.connect(BROKER)
    try:
        channel = await connection.channel()
        await channel.queue_declare(name, durable=False, auto_delete=False)
        try:
            yield OwnQueue(name, channel)
        finally:
            await channel.queue_delete(name)
    finally:
        await connection.close()


async def queue_exists(name: str) -> bool:
    connection = await aiormq.connect(BROKER)
    try:
        channel = await connection.channel()
        try:
            await channel.queue_declare(name, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return False
        return True
    finally:
        await connection.close()


# --- healthy ---------------------------------------------------------------------------------


async def test_value_is_the_number_of_ready_messages(queue: OwnQueue) -> None:
    await queue.publish(5)
    result, took = await run_timed(mq_check(queue.name))
    assert result.up is True, result.error
    assert result.outcome is Outcome.SUCCESS
    assert result.value == 5.0
    assert result.detail == {"consumers": 0}
    assert result.error is None
    assert 0 < result.latency < 1.0 and took < 1.0


async def test_empty_queue_is_up_with_zero(queue: OwnQueue) -> None:
    result, _ = await run_timed(mq_check(queue.name))
    assert result.up is True, result.error
    assert result.value == 0.0
    assert result.detail == {"consumers": 0}


async def test_consumer_is_counted_and_its_unacked_message_is_not_ready(queue: OwnQueue) -> None:
    await queue.publish(6)
    # A consumer on its own channel that takes one message at a time and never acks it.
    consumer = await queue.channel.connection.channel()
    await consumer.basic_qos(prefetch_count=1)
    got = asyncio.Event()

    async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
        queue.delivered.append(message)
        got.set()

    await consumer.basic_consume(queue.name, on_message, no_ack=False)
    await asyncio.wait_for(got.wait(), 5.0)
    result, _ = await run_timed(mq_check(queue.name))
    assert result.up is True, result.error
    assert result.value == 5.0  # six published, one delivered and waiting for its ack
    assert result.detail == {"consumers": 1}
    await consumer.close()


async def test_value_follows_the_queue(queue: OwnQueue) -> None:
    seen = []
    for batch in (2, 3, 0):
        await queue.publish(batch)
        result, _ = await run_timed(mq_check(queue.name))
        assert result.up is True, result.error
        seen.append(result.value)
    await queue.channel.queue_purge(queue.name)
    result, _ = await run_timed(mq_check(queue.name))
    seen.append(result.value)
    assert seen == [2.0, 5.0, 5.0, 0.0]


async def test_vhost_in_the_url_is_used(queue: OwnQueue) -> None:
    # The default vhost "/" spelled as a path segment, as in most broker URLs.
    await queue.publish(1)
    result, _ = await run_timed(mq_check(queue.name, url="amqp://guest:guest@127.0.0.1:5672/%2F"))
    assert result.up is True, result.error
    assert result.value == 1.0


# --- failing ---------------------------------------------------------------------------------


async def test_missing_queue_is_down_and_is_not_created() -> None:
    name = f"monitor-missing-{uuid.uuid4().hex}"
    result, took = await run_timed(mq_check(name))
    assert result.up is False
    assert result.outcome is Outcome.FAILURE
    assert result.error == f"queue '{name}' not found"
    assert result.value is None
    assert took < 1.0
    assert await queue_exists(name) is False, "the probe created the queue it was asked about"


async def test_wrong_password_is_a_one_line_error_without_the_password(queue: OwnQueue) -> None:
    password = f"wrong-{uuid.uuid4().hex[:12]}"
    result, took = await run_timed(mq_check(queue.name, url=f"amqp://guest:{password}@127.0.0.1:5672/"))
    assert result.up is False
    assert result.outcome is Outcome.FAILURE
    assert result.error is not None
    assert "ACCESS_REFUSED" in result.error, result.error
    assert "\n" not in result.error
    assert password not in result.error and password not in repr(result.detail)
    assert took < 2.0


async def test_unknown_vhost_says_so() -> None:
    vhost = f"monitor-novhost-{uuid.uuid4().hex[:8]}"
    result, _ = await run_timed(mq_check("q", url=f"amqp://guest:guest@127.0.0.1:5672/{vhost}"))
    assert result.up is False
    assert result.error == f"vhost '{vhost}' refused: it does not exist or the user may not access it"


async def test_unreachable_port_is_a_fast_one_line_failure() -> None:
    port = free_port()
    result, took = await run_timed(mq_check("q", url=f"amqp://guest:s3cret-pw@127.0.0.1:{port}/"))
    assert result.up is False
    assert result.outcome is Outcome.FAILURE
    assert result.error is not None
    assert "Connect call failed" in result.error and str(port) in result.error, result.error
    assert "\n" not in result.error and "s3cret-pw" not in result.error
    assert took < 1.0


async def test_failures_do_not_log_through_aiormq(caplog: pytest.LogCaptureFixture) -> None:
    # The result carries the error; aiormq would also log one ERROR line per failed run.
    caplog.set_level(logging.DEBUG)
    result, _ = await run_timed(mq_check("q", url=f"amqp://guest:guest@127.0.0.1:{free_port()}/"))
    assert result.up is False
    assert [r for r in caplog.records if r.name.startswith("aiormq") and r.levelno >= logging.WARNING] == []


# --- a broker that accepts the connection and never speaks -----------------------------------


class SilentServer:
    """Accepts one connection (TLS-wrapped when given a context), reads what the client sends,
    never answers, and records when the client closes its end."""

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        self.context = context
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.listener.settimeout(5.0)
        self.port: int = self.listener.getsockname()[1]
        self.seen: dict[str, Any] = {}
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
            if self.context is not None:
                conn = self.context.wrap_socket(conn, server_side=True)
        except OSError as err:
            self.seen["error"] = err
            return
        with conn:
            conn.settimeout(5.0)
            try:
                self.seen["first"] = conn.recv(1024)
                conn.settimeout(2.5)
                self.seen["eof"] = conn.recv(1024) == b""
            except OSError as err:
                self.seen["error"] = err

    async def finish(self) -> dict[str, Any]:
        await asyncio.to_thread(self.thread.join, 6.0)
        self.listener.close()
        return self.seen


async def test_silent_broker_is_cut_at_the_deadline_and_the_socket_closed() -> None:
    server = SilentServer()
    result, took = await run_timed(mq_check("q", url=f"amqp://guest:guest@127.0.0.1:{server.port}/", timeout=1.0))
    seen = await server.finish()
    assert result.up is False
    assert result.outcome is Outcome.TIMEOUT
    assert result.error == "timeout"
    assert 0.9 < took < 1.6, took
    assert seen.get("first") == PROTOCOL_HEADER, seen
    assert seen.get("eof") is True, f"the probe's connection was not closed: {seen}"


@pytest.fixture(scope="module")
def broker_ca() -> trustme.CA:
    return trustme.CA()


def tls_server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


async def test_amqps_verifies_the_broker_with_the_configured_ca(broker_ca: trustme.CA, tmp_path: Path) -> None:
    """Over amqps:// the TLS handshake completes with `tls.ca_file`, and the AMQP header
    arrives inside TLS (the server here then stays silent, so the run times out)."""
    ca_file = tmp_path / "ca.pem"
    broker_ca.cert_pem.write_to_path(str(ca_file))
    server = SilentServer(tls_server_context(broker_ca))
    check = mq_check("q", url=f"amqps://guest:guest@127.0.0.1:{server.port}/", timeout=1.0,
                     tls={"ca_file": str(ca_file)})
    result, _ = await run_timed(check)
    seen = await server.finish()
    assert result.outcome is Outcome.TIMEOUT
    assert seen.get("first") == PROTOCOL_HEADER, seen


async def test_amqps_with_an_untrusted_certificate_fails(broker_ca: trustme.CA) -> None:
    server = SilentServer(tls_server_context(broker_ca))
    result, took = await run_timed(mq_check("q", url=f"amqps://guest:guest@127.0.0.1:{server.port}/", timeout=2.0))
    await server.finish()
    assert result.up is False
    assert result.outcome is Outcome.FAILURE
    assert result.error is not None and "CERTIFICATE_VERIFY_FAILED" in result.error, result.error
    assert took < 1.5


async def test_amqps_insecure_skip_verify_accepts_any_certificate(broker_ca: trustme.CA) -> None:
    server = SilentServer(tls_server_context(broker_ca))
    check = mq_check("q", url=f"amqps://guest:guest@127.0.0.1:{server.port}/", timeout=1.0,
                     tls={"insecure_skip_verify": True})
    result, _ = await run_timed(check)
    seen = await server.finish()
    assert result.outcome is Outcome.TIMEOUT
    assert seen.get("first") == PROTOCOL_HEADER, seen


# --- config ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://guest:s3cret-pw@127.0.0.1/", "amqp:// or amqps://"),
        ("amqp://guest:s3cret-pw@/vhost", "with a host"),
        ("amqp://guest:s3cret-pw@127.0.0.1:99999/", "invalid url"),
        ("amqp://guest:s3cret-pw@[::1/", "invalid url"),
    ],
    ids=["scheme", "no_host", "port", "bad_ipv6"],
)
def test_bad_url_is_a_config_error_without_the_password(url: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        mq_check("q", url=url)
    errors = info.value.errors()
    assert [e["loc"] for e in errors] == [("url",)]
    assert fragment in errors[0]["msg"]
    assert "s3cret-pw" not in errors[0]["msg"]


@pytest.mark.parametrize("queue", ["", "x" * 256])
def test_queue_name_must_be_a_short_string(queue: str) -> None:
    with pytest.raises(ValidationError):
        mq_check(queue)


def test_loaded_url_password_is_registered_as_a_secret(tmp_path: Path) -> None:
    password = f"mq-{uuid.uuid4().hex[:16]}"
    (tmp_path / "main.yaml").write_text("global: {listen: 127.0.0.1:1}\ncheck_files: [checks.yaml]\nrule_files: []\n")
    (tmp_path / "checks.yaml").write_text(
        f"checks:\n  - name: mq\n    kind: rabbitmq\n    interval: 5s\n"
        f"    url: amqp://app:{password}@127.0.0.1:5672/prod\n    queue: jobs\n"
    )
    config = load_config(tmp_path / "main.yaml", environ={})
    assert config.checks[0].kind == "rabbitmq"
    assert secrets.redact(f"broker said {password}") == "broker said ***"


def test_invalid_url_in_a_file_is_reported_without_the_password(tmp_path: Path) -> None:
    (tmp_path / "main.yaml").write_text("global: {listen: 127.0.0.1:1}\ncheck_files: [checks.yaml]\nrule_files: []\n")
    (tmp_path / "checks.yaml").write_text(
        "checks:\n  - name: mq\n    kind: rabbitmq\n    interval: 5s\n"
        "    url: 'amqp://app:s3cret-pw@[::1/prod'\n    queue: jobs\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "main.yaml", environ={})
    printed = [str(problem) for problem in info.value.problems]
    assert any("invalid url" in line for line in printed), printed
    assert not any("s3cret" in line for line in printed), printed


@pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl beside the broker")
async def test_runs_leave_no_connection_open(queue: OwnQueue) -> None:
    """Each run's connection, named after the check, is gone when the run ends."""
    name = f"mq_leak_{uuid.uuid4().hex[:12]}"
    check = RabbitmqCheck(name=name, kind="rabbitmq", interval=10, timeout=3, url=BROKER, queue=queue.name)
    missing = RabbitmqCheck(name=name, kind="rabbitmq", interval=10, timeout=3, url=BROKER, queue=queue.name + "-x")
    for run in (check, missing, check):
        await run_timed(run)
    listing = await asyncio.to_thread(
        subprocess.run, ["rabbitmqctl", "-q", "list_connections", "client_properties"],
        capture_output=True, text=True, timeout=60,
    )
    assert listing.returncode == 0, listing.stderr
    assert f"monitor {name}" not in listing.stdout
