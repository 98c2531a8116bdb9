"""Redirects followed by the HTTP probe itself: what travels to another origin, where a
redirect may not lead, and how a redirect loop ends.

Two misbehaving servers on 127.0.0.1 with different ports are two origins. Nothing here
connects off the machine: the metadata address only ever appears in a Location header,
and the tests assert that no connection to it was even attempted.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from monitor.core.results import Outcome, Result
from monitor.probes import base as probe_base
from monitor.probes import fetch as fetch_module
from monitor.probes.base import REFUSE_LINK_LOCAL, ProbeEnv, RefusedAddress, refused_address
from monitor.probes.http import MAX_REDIRECTS, HttpCheck
from monitor.scheduling.runner import run_check
from tests.misbehaving_server import OK_BODY, MisbehavingServer, Received

KEY = "dash-key-0123456789"
HEADERS = {"X-Dash-Key": KEY, "Authorization": "Bearer auth-0123456789", "Cookie": "sid=cookie-0123456789"}
BODY = '{"probe": "body-secret-0123456789"}'


def http_check(url: str, **fields: Any) -> HttpCheck:
    config: dict[str, Any] = {"name": "t", "kind": "http", "url": url, "interval": 10, "timeout": 3}
    config.update(fields)
    return HttpCheck.model_validate(config)


def redirect(server: MisbehavingServer, to: str, code: int = 302) -> str:
    return server.url(f"/redirect?code={code}&to=" + quote(to, safe=""))


@pytest.fixture
async def env() -> AsyncIterator[ProbeEnv]:
    probe_env = ProbeEnv()
    yield probe_env
    await probe_env.close()


@pytest.fixture
def other_origin() -> Iterator[MisbehavingServer]:
    """A second server: same host, another port, so another origin. Fresh per test, so its
    ``received`` holds only what this test sent."""
    with MisbehavingServer() as server:
        yield server


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Hosts the probe's connector was asked to connect to, in order."""
    hosts: list[str] = []
    original = probe_base._CertificateRecordingConnector.connect

    async def recording(self: Any, req: aiohttp.ClientRequest, traces: Any, timeout: Any) -> Any:
        hosts.append(req.url.host or "")
        return await original(self, req, traces, timeout)

    monkeypatch.setattr(probe_base._CertificateRecordingConnector, "connect", recording)
    return hosts


def arrived(server: MisbehavingServer, path: str) -> list[Received]:
    return [r for r in server.received if r.target.split("?")[0] == path]


def failure(result: Result) -> str:
    assert result.up is False and result.outcome is Outcome.FAILURE, result
    assert result.error and "\n" not in result.error
    return result.error


# -- what travels with a hop -----------------------------------------------------------------------


async def test_cross_origin_redirect_drops_configured_headers(misbehaving_http: MisbehavingServer,
                                                              other_origin: MisbehavingServer,
                                                              env: ProbeEnv) -> None:
    # The finding: aiohttp stripped only Authorization and Cookie, so X-Dash-Key reached
    # whatever origin the target named.
    result = await run_check(http_check(redirect(misbehaving_http, other_origin.url("/ok")), headers=HEADERS), env)
    assert result.up is True, result.error
    assert result.detail["redirects"] == 1
    assert result.detail["final_url"] == other_origin.url("/ok")
    (request,) = arrived(other_origin, "/ok")
    assert request.method == "GET"
    assert {name.lower() for name in HEADERS} & set(request.headers) == set()
    assert KEY not in str(request.headers)


async def test_same_origin_redirect_keeps_headers(misbehaving_http: MisbehavingServer, env: ProbeEnv) -> None:
    marker = "same-origin-0123456789"
    check = http_check(redirect(misbehaving_http, "/ok"), headers={"X-Dash-Key": marker})
    result = await run_check(check, env)
    assert result.up is True, result.error
    final = [r for r in arrived(misbehaving_http, "/ok") if r.headers.get("x-dash-key") == marker]
    assert len(final) == 1


@pytest.mark.parametrize("code", [301, 302, 303])
async def test_cross_origin_post_becomes_get_without_body_or_headers(misbehaving_http: MisbehavingServer,
                                                                     other_origin: MisbehavingServer,
                                                                     env: ProbeEnv, code: int) -> None:
    check = http_check(redirect(misbehaving_http, other_origin.url("/ok"), code), method="POST", body=BODY,
                       headers=HEADERS)
    result = await run_check(check, env)
    assert result.up is True, result.error
    (request,) = arrived(other_origin, "/ok")
    assert request.method == "GET"
    assert request.body == b""
    assert "x-dash-key" not in request.headers and "authorization" not in request.headers
    # The first hop, to the configured URL, had all of it.
    first = arrived(misbehaving_http, "/redirect")[-1]
    assert first.method == "POST" and first.body == BODY.encode() and first.headers["x-dash-key"] == KEY


@pytest.mark.parametrize("code", [307, 308])
async def test_same_origin_307_308_keep_method_body_and_headers(misbehaving_http: MisbehavingServer,
                                                                env: ProbeEnv, code: int) -> None:
    marker = f"keep-{code}-0123456789"
    check = http_check(redirect(misbehaving_http, "/ok", code), method="POST", body=BODY,
                       headers={"X-Dash-Key": marker})
    result = await run_check(check, env)
    assert result.up is True, result.error
    (request,) = [r for r in arrived(misbehaving_http, "/ok") if r.headers.get("x-dash-key") == marker]
    assert request.method == "POST" and request.body == BODY.encode()


@pytest.mark.parametrize("code", [307, 308])
async def test_cross_origin_307_308_with_a_body_is_refused(misbehaving_http: MisbehavingServer,
                                                           other_origin: MisbehavingServer,
                                                           env: ProbeEnv, code: int) -> None:
    check = http_check(redirect(misbehaving_http, other_origin.url("/ok"), code), method="POST", body=BODY,
                       headers=HEADERS)
    error = failure(await run_check(check, env))
    assert f"redirect {code} to another origin" in error and "POST" in error
    assert other_origin.received == []


async def test_cross_origin_307_get_is_followed_without_headers(misbehaving_http: MisbehavingServer,
                                                                other_origin: MisbehavingServer,
                                                                env: ProbeEnv) -> None:
    result = await run_check(http_check(redirect(misbehaving_http, other_origin.url("/ok"), 307), headers=HEADERS),
                             env)
    assert result.up is True, result.error
    (request,) = arrived(other_origin, "/ok")
    assert "x-dash-key" not in request.headers


async def test_redirect_to_another_port_of_the_same_host_name_is_another_origin(
        misbehaving_http: MisbehavingServer, other_origin: MisbehavingServer, env: ProbeEnv) -> None:
    # "localhost" on both sides: only the port differs, and that is enough.
    check = http_check(redirect(misbehaving_http, other_origin.url("/ok", host="localhost")), headers=HEADERS)
    result = await run_check(check, env)
    assert result.up is True, result.error
    assert "x-dash-key" not in arrived(other_origin, "/ok")[0].headers


# -- where a hop may not go ------------------------------------------------------------------------


@pytest.mark.parametrize("location", [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://[fe80::1]/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/",
])
async def test_redirect_to_metadata_address_is_refused_without_connecting(
        misbehaving_http: MisbehavingServer, env: ProbeEnv, connections: list[str], location: str) -> None:
    result = await run_check(http_check(redirect(misbehaving_http, location), headers=HEADERS), env)
    error = failure(result)
    assert "link-local or cloud metadata address" in error and "allow_link_local" in error
    # Only the configured URL was connected to.
    assert connections == ["127.0.0.1"]


async def test_host_name_resolving_to_link_local_is_refused(misbehaving_http: MisbehavingServer, env: ProbeEnv,
                                                            connections: list[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # One public-looking and one link-local address: either could be connected to, so the
    # name is refused. (The resolver is faked; no name is looked up.)
    loop = asyncio.get_running_loop()

    async def resolve(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        assert host == "metadata.test"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))]

    monkeypatch.setattr(loop, "getaddrinfo", resolve)
    error = failure(await run_check(http_check(redirect(misbehaving_http, "http://metadata.test/")), env))
    assert "169.254.169.254 is a link-local or cloud metadata address" in error
    assert connections == ["127.0.0.1"]


async def test_allow_link_local_lets_the_redirect_through(misbehaving_http: MisbehavingServer,
                                                          other_origin: MisbehavingServer, env: ProbeEnv,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # Stand-in for a metadata address that exists on this machine: treat loopback as refused.
    monkeypatch.setattr(fetch_module, "refused_address", lambda address: address.is_loopback)
    monkeypatch.setattr(probe_base, "refused_address", lambda address: address.is_loopback)
    url = redirect(misbehaving_http, other_origin.url("/ok"))
    # The configured URL itself is trusted: it is loopback and it is requested.
    refused = failure(await run_check(http_check(url), env))
    assert "127.0.0.1 is a link-local or cloud metadata address" in refused
    assert other_origin.received == []
    allowed = await run_check(http_check(url, allow_link_local=True), env)
    assert allowed.up is True, allowed.error
    assert len(arrived(other_origin, "/ok")) == 1


async def test_redirect_within_the_configured_origin_is_trusted(misbehaving_http: MisbehavingServer,
                                                                 env: ProbeEnv,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # A check of a metadata endpoint itself (configured, so trusted) may follow that host's
    # own redirects; loopback stands in for the metadata address again.
    monkeypatch.setattr(fetch_module, "refused_address", lambda address: address.is_loopback)
    monkeypatch.setattr(probe_base, "refused_address", lambda address: address.is_loopback)
    result = await run_check(http_check(redirect(misbehaving_http, "/ok")), env)
    assert result.up is True, result.error
    assert result.detail["redirects"] == 1


async def test_connection_to_a_refused_address_is_closed_before_the_request(
        misbehaving_http: MisbehavingServer, env: ProbeEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    # The second line of defence, for a name that resolves differently when aiohttp connects
    # than when the probe checked it: the connector looks at the address it reached.
    monkeypatch.setattr(probe_base, "refused_address", lambda address: address.is_loopback)
    before = len(misbehaving_http.received)
    token = REFUSE_LINK_LOCAL.set(True)
    try:
        with pytest.raises(RefusedAddress, match="127.0.0.1"):
            async with env.http_session().get(misbehaving_http.url("/ok")):
                pass
    finally:
        REFUSE_LINK_LOCAL.reset(token)
    await asyncio.sleep(0.1)
    assert len(misbehaving_http.received) == before  # not even the request line was sent


@pytest.mark.parametrize("address, refused", [
    ("169.254.169.254", True), ("169.254.0.1", True), ("fe80::1", True), ("fd00:ec2::254", True),
    ("::ffff:169.254.169.254", True), ("64:ff9b::a9fe:a9fe", True), ("100.100.100.200", True),
    ("127.0.0.1", False), ("10.0.0.1", False), ("192.168.1.1", False), ("::1", False), ("8.8.8.8", False),
])
def test_refused_addresses(address: str, refused: bool) -> None:
    assert refused_address(ipaddress.ip_address(address)) is refused


# -- how following ends ----------------------------------------------------------------------------


async def test_redirect_loop_gives_a_clear_error(misbehaving_http: MisbehavingServer, env: ProbeEnv) -> None:
    # Was "TooManyRedirects: 0, message=''".
    before = len(arrived(misbehaving_http, "/loop"))
    error = failure(await run_check(http_check(misbehaving_http.url("/loop?n=0")), env))
    assert error == f"more than {MAX_REDIRECTS} redirects (last: {misbehaving_http.url('/loop?n=***')})"
    assert len(arrived(misbehaving_http, "/loop")) - before == MAX_REDIRECTS + 1


async def test_ten_redirects_are_followed(misbehaving_http: MisbehavingServer, env: ProbeEnv) -> None:
    url = misbehaving_http.url("/ok")
    for _ in range(MAX_REDIRECTS):
        url = redirect(misbehaving_http, url)
    result = await run_check(http_check(url), env)
    assert result.up is True, result.error
    assert result.detail["redirects"] == MAX_REDIRECTS
    assert result.detail["body"] == OK_BODY


@pytest.mark.parametrize("location", ["ftp://127.0.0.1/file", "file:///etc/passwd", "javascript:alert(1)"])
async def test_redirect_to_another_scheme_is_refused(misbehaving_http: MisbehavingServer, env: ProbeEnv,
                                                     location: str) -> None:
    error = failure(await run_check(http_check(redirect(misbehaving_http, location)), env))
    assert "only http:// and https:// are followed" in error


async def test_scheme_relative_location_keeps_the_scheme(misbehaving_http: MisbehavingServer,
                                                         other_origin: MisbehavingServer, env: ProbeEnv) -> None:
    location = f"//127.0.0.1:{other_origin.port}/ok"
    result = await run_check(http_check(redirect(misbehaving_http, location)), env)
    assert result.up is True, result.error
    assert result.detail["final_url"] == other_origin.url("/ok")


async def test_redirect_error_masks_query_values(misbehaving_http: MisbehavingServer, env: ProbeEnv) -> None:
    location = "http://169.254.169.254/x?X-Amz-Credential=AKIAEXAMPLE&code=s3cr3t-c0de"
    error = failure(await run_check(http_check(redirect(misbehaving_http, location)), env))
    assert "AKIAEXAMPLE" not in error and "s3cr3t-c0de" not in error
    assert "http://169.254.169.254/x?X-Amz-Credential=***&code=***" in error


async def test_redirect_body_is_not_read_and_final_body_cap_applies(misbehaving_http: MisbehavingServer,
                                                                    env: ProbeEnv) -> None:
    result = await run_check(http_check(redirect(misbehaving_http, "/big"), timeout=5), env)
    assert failure(result) == "response body larger than max_body (1048576 bytes)"
    assert result.detail["redirects"] == 1
