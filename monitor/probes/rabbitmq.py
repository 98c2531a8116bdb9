"""``kind: rabbitmq`` — messages ready and consumers of one queue, over AMQP 0-9-1.

value: the queue's ready messages (``message_count`` of a passive ``queue.declare``: not
counting messages delivered and waiting for an ack). detail: ``consumers``.

A passive declare needs no management plugin, works with any user that may access the
vhost, and never creates the queue: the broker answers 404 NOT_FOUND for a missing one
(closing the channel, not the connection). A fresh connection every run, closed at its end:
a health check must see what a new client would see (a refused login, a full connection
table), and a kept connection would hide a broker that stopped accepting.

aiormq, not aio-pika (which is built on it): the probe needs one passive declare, nothing of
aio-pika's robust connections or queue objects. Measured on this probe (connect, channel,
passive declare, close; 2 cores, RabbitMQ on loopback): 3.0 M instructions per run against
aio-pika's 3.55 M (callgrind), and half the import cost (+59 M instructions, 20 modules,
against +112 M, 42 modules, on top of what the daemon already imports).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator
from yarl import URL

from monitor.core.results import Result, describe_exception
from monitor.probes.base import CheckBase, ProbeEnv
from monitor.probes.http import TlsOptions

if TYPE_CHECKING:  # imported when a rabbitmq check runs: the default config never loads it
    import aiormq
    from aiormq.abc import FieldTable

# Every failure is in the run's result; aiormq would log each one again on stderr (an ERROR
# line per refused connection, per run), through the standard library's root handler.
logging.getLogger("aiormq").setLevel(logging.CRITICAL)

# How long the end of a healthy run may take to say goodbye (Connection.Close, Close-Ok).
CLOSE_TIMEOUT = 1.0


class RabbitmqCheck(CheckBase):
    kind: Literal["rabbitmq"]
    # amqp://user:pass@host:port/vhost (amqps:// for TLS). A plain string, like postgres's
    # dsn: the loader registers a URL's password as a secret (monitor/config/secret_values.py),
    # and no error of this probe quotes the URL. (A SecretStr `url` here would make the field
    # name secret for every kind, http's URLs included: the loader's first pass goes by name.)
    url: str
    queue: str = Field(min_length=1)
    tls: TlsOptions = Field(default_factory=TlsOptions)

    @field_validator("url")
    @classmethod
    def _amqp_url(cls, url: str) -> str:
        try:
            parsed = URL(url)
            port = parsed.port
        except (ValueError, TypeError):
            # yarl's message quotes the URL back: the password would be in the config error.
            raise ValueError("invalid url: not a URL (amqp://user:pass@host:port/vhost)") from None
        if parsed.scheme not in ("amqp", "amqps") or not parsed.host:
            raise ValueError("url must be amqp:// or amqps:// with a host (amqp://user:pass@host:port/vhost)")
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"invalid url: port {port} out of range")
        return url

    @field_validator("queue")
    @classmethod
    def _short_string(cls, queue: str) -> str:
        if len(queue.encode()) > 255:
            raise ValueError("queue names are at most 255 bytes (AMQP short string)")
        return queue


async def probe(check: RabbitmqCheck, deadline: float, env: ProbeEnv) -> Result:
    import aiormq  # noqa: PLC0415 - only when a rabbitmq check is configured
    import aiormq.exceptions
    url = URL(check.url)
    context = env.tls_context(check.tls.ca_file, not check.tls.insecure_skip_verify) if url.scheme == "amqps" else None
    # The connection object exists before connecting, so the run can always close it: when
    # the deadline cancels a handshake, aiormq closes the socket on its way out.
    # Named for the broker's connection list (a `name` query parameter in the URL wins).
    properties: FieldTable = {} if "name" in url.query else {"connection_name": f"monitor {check.name}"}
    connection = aiormq.Connection(url, context=context, client_properties=properties)
    started = time.perf_counter()
    try:
        await connection.connect()
        # No publisher confirms: a probe publishes nothing, and confirm.select is a round trip.
        channel = await connection.channel(publisher_confirms=False)
        declared = await channel.queue_declare(check.queue, passive=True)
    except aiormq.exceptions.ChannelNotFoundEntity:
        return Result.failed(f"queue {check.queue!r} not found", time.perf_counter() - started)
    except (aiormq.exceptions.AMQPError, OSError) as err:
        return Result.failed(_describe(err, connection.vhost), time.perf_counter() - started)
    finally:
        await _close(connection, deadline)
    latency = time.perf_counter() - started
    ready = declared.message_count or 0
    return Result(up=True, value=float(ready), latency=latency, detail={"consumers": declared.consumer_count or 0})


async def _close(connection: aiormq.Connection, deadline: float) -> None:
    """Close politely (the broker logs a connection dropped without Connection.Close), but
    never past the run's deadline by more than a moment: the runner waits for this."""
    budget = min(CLOSE_TIMEOUT, max(deadline - time.monotonic(), 0.05))
    with contextlib.suppress(Exception, asyncio.TimeoutError):
        await connection.close(timeout=budget)


def _describe(err: BaseException, vhost: str) -> str:
    import aiormq.exceptions
    # The broker answers Connection.Open for a vhost that does not exist, or that the user may
    # not use, with Connection.Close (530 NOT_ALLOWED); aiormq reports that as an unexpected
    # frame, without the broker's text.
    if isinstance(err, aiormq.exceptions.InvalidFrameError) and "Connection.OpenOk" in str(err) \
            and "Connection.Close" in str(err):
        return f"vhost {vhost!r} refused: it does not exist or the user may not access it"
    return describe_exception(err)
