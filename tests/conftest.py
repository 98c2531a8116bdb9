"""Shared pytest fixtures. Sections are self-contained; add new ones in their own block."""

from __future__ import annotations

# ======================================================================================
# BEGIN misbehaving HTTP(S) server fixtures (tests/misbehaving_server.py)
# Used by tests/test_probe_http.py. Names are prefixed so they do not clash with others.
# ======================================================================================
import socket as _mb_socket
import ssl as _mb_ssl
from collections.abc import Iterator as _MbIterator
from pathlib import Path as _MbPath

import pytest as _mb_pytest
import trustme as _mb_trustme

from tests.misbehaving_server import MisbehavingServer


@_mb_pytest.fixture(scope="session")
def misbehaving_http() -> _MbIterator[MisbehavingServer]:
    """Plain-HTTP misbehaving server on 127.0.0.1, shared by the whole session."""
    with MisbehavingServer() as server:
        yield server


@_mb_pytest.fixture(scope="session")
def trustme_ca() -> _mb_trustme.CA:
    """A throwaway CA; nothing outside this test session trusts it."""
    return _mb_trustme.CA()


@_mb_pytest.fixture(scope="session")
def trustme_ca_file(trustme_ca: _mb_trustme.CA, tmp_path_factory: _mb_pytest.TempPathFactory) -> str:
    """Path to the throwaway CA's certificate (PEM), for ``tls: {ca_file: ...}``."""
    path: _MbPath = tmp_path_factory.mktemp("trustme") / "ca.pem"
    trustme_ca.cert_pem.write_to_path(str(path))
    return str(path)


@_mb_pytest.fixture(scope="session")
def misbehaving_https(trustme_ca: _mb_trustme.CA) -> _MbIterator[MisbehavingServer]:
    """The same server over TLS, with a certificate for 127.0.0.1 and localhost issued by ``trustme_ca``."""
    context = _mb_ssl.create_default_context(_mb_ssl.Purpose.CLIENT_AUTH)
    trustme_ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    with MisbehavingServer(ssl_context=context) as server:
        yield server


@_mb_pytest.fixture
def closed_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with _mb_socket.socket(_mb_socket.AF_INET, _mb_socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port

# ======================================================================================
# END misbehaving HTTP(S) server fixtures
# ======================================================================================


# ======================================================================================
# Private servers a test may stop and start (tests/servers.py): never the shared ones.
# ======================================================================================
from collections.abc import Iterator as _PsIterator  # noqa: E402

from tests.servers import PostgresServer, RedisServer, running_postgres, running_redis  # noqa: E402


@_mb_pytest.fixture
def redis_server() -> _PsIterator[RedisServer]:
    """A private Redis on a free port, stopped by its PID at the end."""
    with running_redis() as server:
        yield server


@_mb_pytest.fixture
def postgres_server() -> _PsIterator[PostgresServer]:
    """A private PostgreSQL cluster on a free port, stopped at the end."""
    with running_postgres() as server:
        yield server


# ======================================================================================
# BEGIN secret registry isolation (monitor/core/secrets.py)
# The registry is process-wide and only grows in the daemon; a test that loads a config
# must not change what a later test sees redacted.
# ======================================================================================
from collections.abc import Iterator as _SecretsIterator  # noqa: E402

from monitor.core import secrets as _secrets  # noqa: E402


@_mb_pytest.fixture(autouse=True)
def _secret_registry_isolated() -> _SecretsIterator[None]:
    _secrets.clear()
    yield
    _secrets.clear()

# ======================================================================================
# END secret registry isolation
# ======================================================================================


# ======================================================================================
# BEGIN moto server (tests/moto_server.py): AWS APIs on 127.0.0.1 for the AWS kinds and SNS
# ======================================================================================
from tests.aws_fake import fake_aws  # noqa: E402, F401
from tests.moto_server import moto_endpoint  # noqa: E402, F401

# ======================================================================================
# END moto server
# ======================================================================================
