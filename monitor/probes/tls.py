"""``kind: tls`` — a TLS handshake with ``address`` (directly, or after SMTP or PostgreSQL
STARTTLS); value is the days until the peer certificate expires.

detail: ``subject``, ``issuer``, ``not_after`` of the peer certificate.

The handshake verifies the chain and the name. When verification fails the run is down,
but the certificate is still worth reporting (an expired or mis-issued certificate is
exactly what this check is for): a second handshake without verification reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from dataclasses import replace
from typing import Any, Literal

from cryptography import x509
from pydantic import field_validator

from monitor.probes.base import CheckBase, ProbeEnv, host_port, loadable_ca_file, split_address
from monitor.core.results import Outcome, Result, describe_exception, one_line

# PostgreSQL's SSLRequest: length 8, then the request code 80877103 (1234 << 16 | 5679).
POSTGRES_SSL_REQUEST = bytes.fromhex("0000000804d2162f")
DEADLINE_MARGIN = 0.05  # seconds before the runner's deadline that this probe gives up itself
# An SMTP reply is at most a few lines; a server that sends more is not an SMTP server.
SMTP_MAX_LINES = 100
SMTP_MAX_LINE = 4096

# OpenSSL's verification error codes, named for people reading the error.
_VERIFY_REASONS = {
    9: "not yet valid",
    10: "expired",
    18: "self-signed",
    19: "untrusted CA (self-signed root in the chain)",
    20: "unknown CA",
    21: "unknown CA",
    62: "hostname mismatch",
    64: "IP address mismatch",
}


class TlsCheck(CheckBase):
    kind: Literal["tls"]
    address: str
    server_name: str | None = None  # SNI and the name verified; default: the host of `address`
    ca_file: str | None = None
    starttls: Literal["smtp", "postgres"] | None = None

    _address = field_validator("address")(host_port)

    _ca_file = field_validator("ca_file")(loadable_ca_file)


class StartTlsError(Exception):
    """The plaintext dialogue before the handshake went wrong; the message is the error."""


async def probe(check: TlsCheck, deadline: float, env: ProbeEnv) -> Result:
    host, port = split_address(check.address)
    server_name = check.server_name or host
    started = time.perf_counter()
    verify_error: ssl.SSLCertVerificationError | None = None
    stage = ["connecting"]
    # A little before the runner's deadline, so a silent server gets an error saying where
    # it went silent instead of the runner's bare "timeout".
    budget = max(deadline - time.monotonic() - DEADLINE_MARGIN, 0.001)
    try:
        async with asyncio.timeout(budget):
            try:
                der = await _handshake(check, host, port, server_name, env.tls_context(check.ca_file, True), stage)
            except ssl.SSLCertVerificationError as err:
                verify_error = err
                try:
                    der = await _handshake(check, host, port, server_name, env.tls_context(check.ca_file, False),
                                           stage)
                except (StartTlsError, ssl.SSLError, OSError, EOFError) as second:
                    # The verification failure is the news; why the certificate is missing comes after.
                    return Result.failed(f"{_verify_message(err)}; the certificate could not be read: "
                                         f"{_describe(second)}", time.perf_counter() - started)
    except TimeoutError:
        error = f"timeout: {stage[0]} with {check.address} took more than {budget:.3g}s"
        if verify_error is not None:
            error = f"{_verify_message(verify_error)}; then {error}"
        return replace(Result.failed(error, time.perf_counter() - started), outcome=Outcome.TIMEOUT)
    except StartTlsError as err:
        return Result.failed(str(err), time.perf_counter() - started)
    except ssl.SSLError as err:
        return Result.failed(f"TLS handshake failed: {describe_exception(err)}", time.perf_counter() - started)
    except (OSError, EOFError) as err:
        return Result.failed(describe_exception(err), time.perf_counter() - started)
    latency = time.perf_counter() - started
    if der is None:
        return Result.failed("the server sent no certificate", latency)
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as err:
        return Result.failed(f"unreadable certificate: {err}", latency)
    not_after = cert.not_valid_after_utc
    days = round((not_after.timestamp() - env.clock.time()) / 86400, 4)
    detail: dict[str, Any] = {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "not_after": not_after.isoformat(),
    }
    if verify_error is not None:
        return Result.failed(_verify_message(verify_error), latency, detail, value=days)
    return Result(up=True, value=days, latency=latency, detail=detail)


def _describe(err: BaseException) -> str:
    return str(err) if isinstance(err, StartTlsError) else describe_exception(err)


def _verify_message(err: ssl.SSLCertVerificationError) -> str:
    reason = _VERIFY_REASONS.get(err.verify_code)
    message = err.verify_message or describe_exception(err)
    return one_line(f"certificate verification failed ({reason}): {message}" if reason
                    else f"certificate verification failed: {message}")


async def _handshake(check: TlsCheck, host: str, port: int, server_name: str, context: ssl.SSLContext,
                     stage: list[str]) -> bytes | None:
    """Connect, speak STARTTLS if asked, shake hands; the peer's certificate (DER).
    ``stage[0]`` says what is under way, for the timeout's error."""
    stage[0] = "connecting"
    reader, writer = await asyncio.open_connection(host, port)
    done = False
    try:
        if check.starttls == "smtp":
            stage[0] = "SMTP STARTTLS dialogue"
            await _smtp_starttls(reader, writer)
        elif check.starttls == "postgres":
            stage[0] = "PostgreSQL SSLRequest"
            await _postgres_starttls(reader, writer)
        stage[0] = "TLS handshake"
        # The deadline is enforced around the whole probe; asyncio's own handshake timeout
        # (60 s by default) never comes first.
        await writer.start_tls(context, server_hostname=server_name)
        ssl_object = writer.get_extra_info("ssl_object")
        done = True
        return ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    finally:
        if done:
            # A polite close_notify, briefly awaited so the socket is gone when we return.
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)
        else:
            # Failed or cancelled at the deadline: drop the connection at once; waiting for a
            # graceful close of a peer that does not answer would outlast the run.
            writer.transport.abort()


async def _smtp_starttls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    code, text = await _smtp_reply(reader)
    if code != 220:
        raise StartTlsError(f"SMTP greeting was {code} {text}, expected 220")
    # EHLO wants our name; the address literal of our end of the connection is always valid
    # and needs no DNS lookup.
    sockname = writer.get_extra_info("sockname")
    local = str(sockname[0]) if sockname else "127.0.0.1"
    writer.write(f"EHLO [{'IPv6:' if ':' in local else ''}{local}]\r\n".encode())
    await writer.drain()
    code, text = await _smtp_reply(reader)
    if code != 250:
        raise StartTlsError(f"SMTP EHLO answered {code} {text}")
    writer.write(b"STARTTLS\r\n")
    await writer.drain()
    code, text = await _smtp_reply(reader)
    if code != 220:
        raise StartTlsError(f"SMTP STARTTLS answered {code} {text}, expected 220")


async def _smtp_reply(reader: asyncio.StreamReader) -> tuple[int, str]:
    """One (possibly multi-line) SMTP reply: its code and its first line's text."""
    first = ""
    for _ in range(SMTP_MAX_LINES):
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as err:
            raise StartTlsError("SMTP server closed the connection" if not err.partial
                                else f"SMTP server closed mid-reply: {_shown(err.partial)!r}") from None
        except asyncio.LimitOverrunError:
            raise StartTlsError("SMTP reply line too long; not an SMTP server?") from None
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        if len(text) < 3 or not text[:3].isdigit() or text[3:4] not in ("", " ", "-"):
            raise StartTlsError(f"not an SMTP reply: {_shown(line)!r}")
        if not first:
            first = text[4:]
        if text[3:4] != "-":
            return int(text[:3]), one_line(first, 200)
    raise StartTlsError(f"SMTP reply longer than {SMTP_MAX_LINES} lines")


async def _postgres_starttls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(POSTGRES_SSL_REQUEST)
    await writer.drain()
    answer = await reader.read(1)
    if answer == b"S":
        return
    if answer == b"N":
        raise StartTlsError("PostgreSQL server does not accept SSL (answered N to SSLRequest)")
    if not answer:
        raise StartTlsError("PostgreSQL server closed the connection after SSLRequest")
    raise StartTlsError(f"unexpected answer to PostgreSQL SSLRequest: {answer!r}")


def _shown(data: bytes) -> str:
    return data[:SMTP_MAX_LINE].decode("utf-8", "replace")[:80]
