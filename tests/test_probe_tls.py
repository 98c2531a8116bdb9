"""``kind: tls`` through the runner, against TLS servers this test runs on 127.0.0.1.

Certificates come from the session's trustme CA (valid, wrong name) or are made here with
``cryptography`` (expired, self-signed: trustme cannot make those). The server picks its
certificate per connection, so a test can change it between runs. STARTTLS is tried on a
tiny SMTP server and a fake PostgreSQL (the shared PostgreSQL runs without SSL: it is used
to see the refusal).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from monitor.core.results import Outcome
from monitor.probes.tls import POSTGRES_SSL_REQUEST, TlsCheck

from tests.probing import run_timed

NOW = dt.datetime.now(dt.timezone.utc)


# --- certificates ----------------------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None,
                 issuer_key: ec.EllipticCurvePrivateKey | None, *, ca: bool, not_before: dt.datetime,
                 not_after: dt.datetime) -> x509.Certificate:
    issuer_name = issuer.subject if issuer is not None else _name(subject)
    signing_key = issuer_key if issuer_key is not None else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()), critical=False)
    )
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
        ), critical=True)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _server_context(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, directory: Path) -> ssl.SSLContext:
    cert_path, key_path = directory / f"{cert.serial_number}.pem", directory / f"{cert.serial_number}.key"
    cert_path.write_bytes(_pem(cert))
    key_path.write_bytes(_key_pem(key))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert_path), str(key_path))
    return context


def _trustme_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(*names).configure_cert(context)
    return context


@pytest.fixture(scope="module")
def contexts(trustme_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Server contexts by name, and the CA file that trusts the throwaway CA's certificates."""
    directory = tmp_path_factory.mktemp("tls-probe")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("throwaway test CA", ca_key, None, None, ca=True,
                      not_before=NOW - dt.timedelta(days=400), not_after=NOW + dt.timedelta(days=400))
    expired_key = ec.generate_private_key(ec.SECP256R1())
    expired = _certificate("expired.test", expired_key, ca, ca_key, ca=False,
                           not_before=NOW - dt.timedelta(days=90), not_after=NOW - dt.timedelta(days=2))
    self_key = ec.generate_private_key(ec.SECP256R1())
    self_signed = _certificate("self-signed.test", self_key, None, None, ca=False,
                               not_before=NOW - dt.timedelta(days=1), not_after=NOW + dt.timedelta(days=30))
    throwaway_ca_file = directory / "throwaway-ca.pem"
    throwaway_ca_file.write_bytes(_pem(ca))
    return {
        "valid": _trustme_context(trustme_ca, "127.0.0.1", "localhost"),
        "wrong_name": _trustme_context(trustme_ca, "other.example"),
        "expired": _server_context(expired, expired_key, directory),
        "self_signed": _server_context(self_signed, self_key, directory),
        "throwaway_ca_file": str(throwaway_ca_file),
    }


# --- the server ------------------------------------------------------------------------------


class TlsServer:
    """Accepts on 127.0.0.1; per connection speaks ``mode`` ("tls", "smtp", "smtp_refuses",
    "postgres", "silent", "plaintext"), then hands shakes with ``context``."""

    def __init__(self, context: ssl.SSLContext, mode: str = "tls") -> None:
        self.context = context
        self.mode = mode
        self.port = 0
        self.received: list[bytes] = []
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        # Dropping the connections ends the handlers still reading (a silent server's).
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 5)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            await self._speak(reader, writer)
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
            pass  # the client gave up (a failed verification closes mid-handshake)
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            writer.close()

    async def _speak(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.mode == "silent" or (self.mode == "tls_once" and self.connections > 1):
            await reader.read()
            return
        if self.mode == "plaintext":
            writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            await reader.read()
            return
        if self.mode in ("smtp", "smtp_refuses"):
            writer.write(b"220-smtp.test ESMTP ready\r\n220 more greeting\r\n")
            self.received.append(await reader.readline())
            writer.write(b"250-smtp.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n")
            self.received.append(await reader.readline())
            if self.mode == "smtp_refuses":
                writer.write(b"454 4.7.0 TLS not available\r\n")
                await reader.read()
                return
            writer.write(b"220 2.0.0 go ahead\r\n")
        elif self.mode == "postgres":
            self.received.append(await reader.readexactly(8))
            writer.write(b"S")
        await writer.start_tls(self.context)
        await reader.read()  # until the probe closes


@pytest.fixture
async def tls_server(contexts: dict[str, Any]) -> AsyncIterator[Callable[..., Any]]:
    servers: list[TlsServer] = []

    async def start(context: str = "valid", mode: str = "tls") -> TlsServer:
        server = TlsServer(contexts[context], mode)
        await server.start()
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            await server.stop()


def tls_check(port: int, *, host: str = "127.0.0.1", timeout: float = 2.0, **fields: Any) -> TlsCheck:
    return TlsCheck.model_validate({"name": "tls_probe_test", "kind": "tls", "interval": 10.0,
                                    "timeout": timeout, "address": f"{host}:{port}", **fields})


def _days(not_after: dt.datetime) -> float:
    return (not_after - dt.datetime.now(dt.timezone.utc)).total_seconds() / 86400


# --- valid, expired, wrong name, self-signed -------------------------------------------------


async def test_valid_certificate_is_up_with_days_to_expiry(tls_server: Any, trustme_ca_file: str) -> None:
    server = await tls_server("valid")
    result, _ = await run_timed(tls_check(server.port, ca_file=trustme_ca_file))
    assert result.up is True, result.error
    assert result.outcome is Outcome.SUCCESS
    assert result.error is None
    assert set(result.detail) == {"subject", "issuer", "not_after"}
    not_after = dt.datetime.fromisoformat(result.detail["not_after"])
    assert result.value is not None and abs(result.value - _days(not_after)) < 0.01
    assert result.value > 300  # trustme issues for years
    assert "trustme" in result.detail["issuer"]


async def test_unknown_ca_is_down_but_reports_the_certificate(tls_server: Any) -> None:
    server = await tls_server("valid")
    result, _ = await run_timed(tls_check(server.port))  # system CAs do not know trustme's
    assert result.up is False
    assert result.outcome is Outcome.FAILURE
    assert result.error is not None and "unknown CA" in result.error
    assert result.value is not None and result.value > 300
    assert "trustme" in result.detail["issuer"]


async def test_expired_certificate_is_down_with_negative_days(tls_server: Any, contexts: dict[str, Any]) -> None:
    server = await tls_server("expired")
    result, _ = await run_timed(tls_check(server.port, ca_file=contexts["throwaway_ca_file"]))
    assert result.up is False
    assert result.error is not None and "expired" in result.error
    assert result.value is not None and -2.1 < result.value < -1.9
    assert result.detail["subject"] == "CN=expired.test"
    assert result.detail["issuer"] == "CN=throwaway test CA"
    assert dt.datetime.fromisoformat(result.detail["not_after"]) < NOW


async def test_wrong_name_is_down_naming_the_mismatch(tls_server: Any, trustme_ca_file: str) -> None:
    server = await tls_server("wrong_name")
    result, _ = await run_timed(tls_check(server.port, host="localhost", ca_file=trustme_ca_file))
    assert result.up is False
    assert result.error is not None and "hostname mismatch" in result.error
    assert result.value is not None and result.value > 300


async def test_server_name_overrides_the_host(tls_server: Any, trustme_ca_file: str) -> None:
    server = await tls_server("wrong_name")
    result, _ = await run_timed(tls_check(server.port, server_name="other.example", ca_file=trustme_ca_file))
    assert result.up is True, result.error


async def test_self_signed_is_down(tls_server: Any) -> None:
    server = await tls_server("self_signed")
    result, _ = await run_timed(tls_check(server.port))
    assert result.up is False
    assert result.error is not None and "self-signed" in result.error
    assert result.detail["subject"] == result.detail["issuer"] == "CN=self-signed.test"
    assert result.value is not None and 29 < result.value <= 30


async def test_verification_failure_is_kept_when_the_certificate_cannot_be_read(tls_server: Any) -> None:
    # The first handshake fails verification; the second, unverified one meets silence.
    server = await tls_server("self_signed", "tls_once")
    result, took = await run_timed(tls_check(server.port, timeout=1.0))
    assert result.up is False
    assert result.value is None
    assert result.error is not None and result.error.startswith(
        "certificate verification failed (self-signed): self-signed certificate; then timeout: TLS handshake")
    assert server.connections == 2
    assert took < 1.0 + 5


async def test_follows_the_certificate_changing(tls_server: Any, contexts: dict[str, Any],
                                                trustme_ca: trustme.CA, tmp_path: Path) -> None:
    # One CA file that trusts both the trustme CA and the throwaway one.
    both = tmp_path / "both.pem"
    both.write_bytes(trustme_ca.cert_pem.bytes() + Path(contexts["throwaway_ca_file"]).read_bytes())
    server = await tls_server("valid")
    check = tls_check(server.port, ca_file=str(both))
    healthy, _ = await run_timed(check)
    server.context = contexts["expired"]
    expired, _ = await run_timed(check)
    server.context = contexts["valid"]
    renewed, _ = await run_timed(check)
    assert (healthy.up, expired.up, renewed.up) == (True, False, True)
    assert healthy.value is not None and expired.value is not None and expired.value < 0 < healthy.value
    assert renewed.detail == healthy.detail


# --- STARTTLS --------------------------------------------------------------------------------


async def test_smtp_starttls(tls_server: Any, trustme_ca_file: str) -> None:
    server = await tls_server("valid", "smtp")
    result, _ = await run_timed(tls_check(server.port, ca_file=trustme_ca_file, starttls="smtp"))
    assert result.up is True, result.error
    assert result.value is not None and result.value > 300
    assert server.received[0] == b"EHLO [127.0.0.1]\r\n"
    assert server.received[1] == b"STARTTLS\r\n"


async def test_smtp_starttls_refused_is_down(tls_server: Any, trustme_ca_file: str) -> None:
    server = await tls_server("valid", "smtp_refuses")
    result, _ = await run_timed(tls_check(server.port, ca_file=trustme_ca_file, starttls="smtp"))
    assert result.up is False
    assert result.value is None
    assert result.error == "SMTP STARTTLS answered 454 4.7.0 TLS not available, expected 220"


async def test_smtp_starttls_against_a_non_smtp_server(tls_server: Any) -> None:
    server = await tls_server("valid", "plaintext")
    result, _ = await run_timed(tls_check(server.port, starttls="smtp"))
    assert result.up is False
    assert result.error is not None and result.error.startswith("not an SMTP reply: 'HTTP/1.1 400")


async def test_postgres_starttls(tls_server: Any, trustme_ca_file: str) -> None:
    server = await tls_server("valid", "postgres")
    result, _ = await run_timed(tls_check(server.port, ca_file=trustme_ca_file, starttls="postgres"))
    assert result.up is True, result.error
    assert server.received == [POSTGRES_SSL_REQUEST]
    assert result.value is not None and result.value > 300


async def test_postgres_without_ssl_is_down() -> None:
    # The shared PostgreSQL has ssl = off: it answers the SSLRequest with N.
    result, _ = await run_timed(tls_check(5432, starttls="postgres"))
    assert result.up is False
    assert result.value is None
    assert result.error == "PostgreSQL server does not accept SSL (answered N to SSLRequest)"


# --- unreachable, silent, not TLS, bad config ------------------------------------------------


async def test_unreachable_port_is_down(closed_port: int) -> None:
    result, _ = await run_timed(tls_check(closed_port))
    assert result.up is False
    assert result.outcome is Outcome.FAILURE
    assert result.value is None
    assert result.error is not None and "ConnectionRefusedError" in result.error and "\n" not in result.error


@pytest.mark.parametrize(("starttls", "stage"), [
    (None, "TLS handshake"), ("smtp", "SMTP STARTTLS dialogue"), ("postgres", "PostgreSQL SSLRequest"),
])
async def test_silent_server_is_a_timeout_saying_where(tls_server: Any, starttls: str | None, stage: str) -> None:
    server = await tls_server("valid", "silent")
    result, took = await run_timed(tls_check(server.port, timeout=1.0, starttls=starttls))
    assert result.up is False
    assert result.outcome is Outcome.TIMEOUT
    assert result.value is None
    assert result.error is not None and result.error.startswith(f"timeout: {stage} with 127.0.0.1:{server.port} took")
    assert took < 1.0 + 5


async def test_plaintext_server_is_a_handshake_failure(tls_server: Any) -> None:
    server = await tls_server("valid", "plaintext")
    result, took = await run_timed(tls_check(server.port, timeout=2.0))
    assert result.up is False
    assert result.error is not None and "\n" not in result.error
    assert took < 2.0 + 5


@pytest.mark.parametrize("fields", [
    {"address": "no-port"},
    {"address": "host:99999"},
    {"address": "127.0.0.1:443", "starttls": "imap"},
    {"address": "127.0.0.1:443", "ca_file": "/nonexistent/ca.pem"},
])
def test_bad_config_is_one_clear_error(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        TlsCheck.model_validate({"name": "tls_bad", "kind": "tls", "interval": 10.0, "timeout": 1.0, **fields})
    errors = caught.value.errors()
    assert len(errors) == 1
    assert "\n" not in str(errors[0]["msg"])
