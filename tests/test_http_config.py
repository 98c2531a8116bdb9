"""http_config as every HTTP receiver honours it: through a real local proxy, to a TLS sink
signed by a test CA (and one that wants a client certificate), with basic and bearer
credentials the sink sees, and global.http_config as the default."""

from __future__ import annotations

import base64
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from pydantic import ValidationError

from monitor.alerting.config import AlertingConfig
from monitor.alerting.integrations import build_targets
from monitor.alerting.model import Alert, Notification
from monitor.alerting.receivers import DeliveryError, Integration
from tests.http_proxy import Proxy
from tests.receiver_sink import ReceiverSink


def note() -> Notification:
    alert = Alert(fingerprint="f1", labels={"alertname": "ApiDown", "severity": "critical"}, annotations={},
                  starts_at=time.time() - 60)
    return Notification(receiver="r", group_key="{}:{}", group_labels={"alertname": "ApiDown"}, alerts=[alert])


def integrations(config: dict[str, Any]) -> list[Integration]:
    built = build_targets(AlertingConfig.model_validate(config))
    return [t.integration for targets in built.values() for t in targets]


def one(receiver: dict[str, Any], **glob: Any) -> Integration:
    (integration,) = integrations({"global": glob, "receivers": [{"name": "r", **receiver}]})
    return integration


async def send(integration: Integration) -> None:
    async with httpx.AsyncClient() as client:  # the outbox's shared client, unused with http_config
        await integration.notify(note(), client)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def server_context(ca: trustme.CA, client_ca: trustme.CA | None = None,
                   names: tuple[str, ...] = ("127.0.0.1", "localhost")) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(ctx)
    if client_ca is not None:
        client_ca.configure_trust(ctx)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


@pytest.fixture
def tls_sink(ca: trustme.CA) -> Iterator[ReceiverSink]:
    with ReceiverSink(tls=server_context(ca)) as sink:
        yield sink


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


async def test_plain_http_goes_through_the_proxy_with_basic_auth(tmp_path: Path) -> None:
    password = tmp_path / "password"
    password.write_text("pr0xied-pass\n")
    with ReceiverSink() as sink, Proxy() as proxy:
        await send(one({"webhook_configs": [{"url": sink.url("/hook"), "http_config": {
            "proxy_url": proxy.url, "basic_auth": {"username": "am", "password_file": str(password)}}}]}))
        assert [(r.method, r.target) for r in proxy.requests] == [("POST", sink.url("/hook"))]
        (received,) = sink.accepted("/hook")
    assert received.headers["Authorization"] == "Basic " + base64.b64encode(b"am:pr0xied-pass").decode()


async def test_https_through_a_connect_tunnel_to_a_custom_ca(tls_sink: ReceiverSink, ca_file: str) -> None:
    with Proxy() as proxy:
        await send(one({"slack_configs": [{"api_url": tls_sink.url("/slack"), "http_config": {
            "proxy_url": proxy.url, "bearer_token": "b3arer-token", "tls_config": {"ca_file": ca_file}}}]}))
        assert [(r.method, r.target) for r in proxy.requests] == [("CONNECT", f"127.0.0.1:{tls_sink.port}")]
    (received,) = tls_sink.accepted("/slack")
    assert received.headers["Authorization"] == "Bearer b3arer-token" and received.json["blocks"]


async def test_an_unknown_ca_is_a_temporary_failure_and_insecure_skip_verify_gets_through(
        tls_sink: ReceiverSink) -> None:
    with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed") as caught:
        await send(one({"webhook_configs": [{"url": tls_sink.url("/a"), "http_config": {}}]}))
    assert not caught.value.permanent
    await send(one({"webhook_configs": [{"url": tls_sink.url("/b"),
                                         "http_config": {"tls_config": {"insecure_skip_verify": True}}}]}))
    assert len(tls_sink.accepted("/b")) == 1


async def test_client_certificate_and_server_name(ca: trustme.CA, ca_file: str, tmp_path: Path) -> None:
    client_ca = trustme.CA()
    client = client_ca.issue_cert("monitor.example.org")
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    client.cert_chain_pems[0].write_to_path(str(cert))
    client.private_key_pem.write_to_path(str(key))
    # The sink's certificate names only sink.example.org, not the 127.0.0.1 we connect to.
    with ReceiverSink(tls=server_context(ca, client_ca=client_ca, names=("sink.example.org",))) as sink:
        tls: dict[str, Any] = {"ca_file": ca_file, "cert_file": str(cert), "key_file": str(key)}
        with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            await send(one({"webhook_configs": [{"url": sink.url("/m"), "http_config": {"tls_config": tls}}]}))
        with pytest.raises(DeliveryError) as caught:  # the right name, but no client certificate
            await send(one({"webhook_configs": [{"url": sink.url("/m"), "http_config": {"tls_config": {
                "ca_file": ca_file, "server_name": "sink.example.org"}}}]}))
        assert not caught.value.permanent
        tls["server_name"] = "sink.example.org"
        await send(one({"webhook_configs": [{"url": sink.url("/m"), "http_config": {"tls_config": tls}}]}))
        assert len(sink.accepted("/m")) == 1


async def test_credentials_file_is_read_at_every_send(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first-t0ken")
    with ReceiverSink() as sink:
        integration = one({"alertmanager_configs": [{"url": sink.url(""), "http_config": {
            "authorization": {"type": "Token", "credentials_file": str(token)}}}]})
        await send(integration)
        token.write_text("rotated-t0ken")
        await send(integration)
        assert [r.headers["Authorization"] for r in sink.accepted()] == ["Token first-t0ken", "Token rotated-t0ken"]


async def test_global_http_config_is_every_http_receivers_default(tmp_path: Path) -> None:
    with ReceiverSink() as sink:
        sent = integrations({
            "global": {"http_config": {"authorization": {"credentials": "gl0bal-token"}},
                       "slack_api_url": sink.url("/slack"), "pagerduty_url": sink.url("/pd")},
            "receivers": [{"name": "r", "slack_configs": [{}], "pagerduty_configs": [{"routing_key": "k" * 32}],
                           "webhook_configs": [{"url": sink.url("/own"), "http_config": {"bearer_token": "own-t0ken"}}]}],
        })
        for integration in sent:
            await send(integration)
        seen = {r.path: r.headers["Authorization"] for r in sink.accepted()}
    # A receiver's own http_config replaces the global one whole, as in Alertmanager.
    assert seen == {"/slack": "Bearer gl0bal-token", "/pd": "Bearer gl0bal-token", "/own": "Bearer own-t0ken"}


async def test_redirects_are_followed_only_when_asked() -> None:
    with ReceiverSink() as sink:
        sink.answers.extend(["307:/moved", "307:/moved"])
        with pytest.raises(DeliveryError, match="HTTP 307") as caught:
            await send(one({"webhook_configs": [{"url": sink.url("/hook"), "http_config": {}}]}))
        assert caught.value.permanent
        await send(one({"webhook_configs": [{"url": sink.url("/hook"), "http_config": {"follow_redirects": True}}]}))
        assert [r.path for r in sink.accepted()] == ["/moved"]


@pytest.mark.parametrize(("http_config", "message"), [
    ({"bearer_token": "a", "basic_auth": {"username": "u"}}, "at most one of basic_auth"),
    ({"authorization": {"type": "Basic", "credentials": "x"}}, "use basic_auth"),
    ({"proxy_url": "socks5://127.0.0.1:1080"}, "SOCKS"),
    ({"tls_config": {"ca_file": "/nonexistent/ca.pem"}}, "not a readable file"),
    ({"tls_config": {"cert_file": "/dev/null"}}, "needs both cert"),
    ({"basic_auth": {"username": "u", "password_file": "/nonexistent"}}, "not a readable file"),
    ({"tls_config": {"min_version": "TLS14"}}, "TLS13"),
])
def test_http_config_errors(http_config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        one({"webhook_configs": [{"url": "http://127.0.0.1:9/x", "http_config": http_config}]})


def test_an_unloadable_ca_file_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ValidationError, match="tls_config cannot be loaded"):
        one({"webhook_configs": [{"url": "http://127.0.0.1:9/x", "http_config": {"tls_config": {"ca_file": str(bad)}}}]})
