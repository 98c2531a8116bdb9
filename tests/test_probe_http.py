"""The HTTP probe against a local server that misbehaves on purpose.

Every run goes through ``run_check`` so the runner's hard deadline applies exactly as in
the daemon. Servers come from ``tests/conftest.py`` (``misbehaving_http``,
``misbehaving_https``, ``trustme_ca_file``, ``closed_port``).
"""

from __future__ import annotations

import asyncio
import resource
import time
import tracemalloc
from urllib.parse import quote
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import ValidationError

from monitor.probes.base import ProbeEnv
from monitor.probes.http import HttpCheck
from monitor.core.results import Outcome, Result
from monitor.scheduling.runner import run_check
from tests.misbehaving_server import OK_BODY, MisbehavingServer


def http_check(url: str, **fields: Any) -> HttpCheck:
    config: dict[str, Any] = {"name": "t", "kind": "http", "url": url, "interval": 10, "timeout": 2}
    config.update(fields)
    return HttpCheck.model_validate(config)


@pytest.fixture
async def env() -> AsyncIterator[ProbeEnv]:
    probe_env = ProbeEnv()
    yield probe_env
    await probe_env.close()


def assert_one_line_failure(result: Result) -> str:
    assert result.up is False
    assert result.outcome is Outcome.FAILURE
    assert result.error, "a failure must say why"
    assert "\n" not in result.error and "Traceback" not in result.error
    return result.error


# -- status and body ---------------------------------------------------------------------------


async def test_ok_is_up_with_status_value_parsed_body_and_latency(misbehaving_http: MisbehavingServer,
                                                                  env: ProbeEnv) -> None:
    result = await run_check(http_check(misbehaving_http.url("/ok")), env)
    assert result.up is True
    assert result.outcome is Outcome.SUCCESS
    assert result.error is None
    assert result.value == 200
    assert result.latency > 0
    assert result.detail["status"] == 200
    assert result.detail["body"] == OK_BODY
    assert result.detail["headers"]["content-type"] == "application/json"
    assert result.detail["redirects"] == 0
    assert result.at > 0  # the runner stamps the wall-clock start


async def test_5xx_is_down_and_error_names_the_status(misbehaving_http: MisbehavingServer, env: ProbeEnv) -> None:
    result = await run_check(http_check(misbehaving_http.url("/status/503")), env)
    error = assert_one_line_failure(result)
    assert "503" in error and "2xx" in error
    assert result.value == 503
    assert result.detail["status"] == 503
    assert result.detail["body"] == {"code": 503}


async def test_404_is_down_by_default(misbehaving_http: MisbehavingServer, env: ProbeEnv) -> None:
    result = await run_check(http_check(misbehaving_http.url("/no/such/path")), env)
    assert "404" in assert_one_line_failure(result)
    assert result.value == 404


@pytest.mark.parametrize("path, wanted, up", [
    ("/status/503", [503], True),
    ("/status/503", [200, 503], True),
    ("/status/204", [200], False),  # 2xx but not listed: the list replaces the 2xx default
    ("/ok", [201, 204], False),
])
async def test_expect_status_list(misbehaving_http: MisbehavingServer, env: ProbeEnv,
                                  path: str, wanted: list[int], up: bool) -> None:
    result = await run_check(http_check(misbehaving_http.url(path), expect={"status": wanted}), env)
    assert result.up is up
    if not up:
        error = assert_one_line_failure(result)
        assert f"status {result.value:g}" in error
        assert str(wanted) in error


async def test_body_contains(misbehaving_http: MisbehavingServer, env: ProbeEnv) -> None:
    url = misbehaving_http.url("/ok")
    assert (await run_check(http_check(url, expect={"body_contains": "healthy"}), env)).up is True
    result = await run_check(http_check(url, expect={"body_contains": "degraded"}), env)
    assert "'degraded'" in assert_one_line_failure(result)


# -- expect.cel ----------------------------------------------------------------------------------


async def test_cel_true_is_up(misbehaving_http: MisbehavingServer, env: ProbeEnv) -> None:
    cel = 'status == 200 && body.status == "healthy" && body.services.redis == "healthy" && latency < 5.0'
    result = await run_check(http_check(misbehaving_http.url("/ok"), expect={"cel": cel}), env)
    assert result.up is True, result.error
    assert result.value == 200


async def test_cel_false_is_down_and_quotes_the_expression(misbehaving_http: MisbehavingServer,
                                                           env: ProbeEnv) -> None:
    cel = 'body.status == "degraded"'
    result = await run_check(http_check(misbehaving_http.url("/ok"), expect={"cel": cel}), env)
    error = assert_one_line_failure(result)
    assert error == f"expect.cel is False: {cel}"
    assert result.value == 200  # the status is still reported
    assert result.detail["body"] == OK_BODY  # and the body, to see why


async def test_cel_non_boolean_result_is_down(misbehaving_http: MisbehavingServer, env: ProbeEnv) -> None:
    # Only `true` passes; a truthy non-bool (here the string "healthy") must not.
    result = await run_check(http_check(misbehaving_http.url("/ok"), expect={"cel": "body.status"}), env)
    error = assert_one_line_failure(result)
    assert error.startswith("expect.cel is 'healthy'")


async def test_cel_missing_key_is_a_failure_naming_the_key(misbehaving_http: MisbehavingServer,
                                                           env: ProbeEnv) -> None:
    cel = 'body.services.postgres == "healthy"'
    result = await run_check(http_check(misbehaving_http.url("/ok"), expect={"cel": cel}), env)
    error = assert_one_line_failure(result)  # FAILURE, not ERROR: the probe did not crash
    assert error.startswith("expect.cel: ")
    assert "postgres" in error
    assert result.value == 200


async def test_cel_missing_key_error_says_what_went_wrong(misbehaving_http: MisbehavingServer,
                                                          env: ProbeEnv) -> None:
    # MONITOR BUG (see report): the error is just "expect.cel: 'postgres'" — the str() of the
    # KeyError the CEL library raises — which does not tell an operator the key is missing.
    cel = 'body.services.postgres == "healthy"'
    result = await run_check(http_check(misbehaving_http.url("/ok"), expect={"cel": cel}), env)
    error = assert_one_line_failure(result)
    assert "key" in error.lower(), f"unclear error text: {error!r}"


async def test_cel_type_error_is_a_failure(misbehaving_http: MisbehavingServer, env: ProbeEnv) -> None:
    result = await run_check(http_check(misbehaving_http.url("/ok"), expect={"cel": "body.status > 1"}), env)
    error = assert_one_line_failure(result)
    assert error.startswith("expect.cel: ") and "overload" in error


async def test_cel_can_use_headers(misbehaving_http: MisbehavingServer, env: ProbeEnv) -> None:
    cel = 'headers["content-type"].startsWith("application/json")'
    result = await run_check(http_check(misbehaving_http.url("/ok"), expect={"cel": cel}), env)
    assert result.up is True, result.error


# -- invalid JSON ---------------------------------------------------------------------------------


async def test_invalid_json_with_cel_on_body_fails(misbehaving_http: MisbehavingServer, env: ProbeEnv) -> None:
    cel = 'body.status == "healthy"'
    result = await run_check(http_check(misbehaving_http.url("/badjson"), expect={"cel": cel}), env)
    error = assert_one_line_failure(result)
    assert error.startswith("invalid JSON body: ")
    assert result.value == 200
    assert result.detail["body"] == '{"status": '  # the raw text is kept for the operator


async def test_invalid_json_without_cel_is_up(misbehaving_http: MisbehavingServer, env: ProbeEnv) -> None:
    result = await run_check(http_check(misbehaving_http.url("/badjson")), env)
    assert result.up is True, result.error
    assert result.detail["body"] == '{"status": '


async def test_invalid_json_with_cel_not_using_body_is_up(misbehaving_http: MisbehavingServer,
                                                          env: ProbeEnv) -> None:
    result = await run_check(http_check(misbehaving_http.url("/badjson"), expect={"cel": "status == 200"}), env)
    assert result.up is True, result.error


# -- redirects ------------------------------------------------------------------------------------


async def test_redirect_is_followed(misbehaving_http: MisbehavingServer, env: ProbeEnv) -> None:
    result = await run_check(http_check(misbehaving_http.url("/redirect")), env)
    assert result.up is True, result.error
    assert result.value == 200
    assert result.detail["redirects"] == 1
    assert result.detail["final_url"] == misbehaving_http.url("/ok")
    assert result.detail["body"] == OK_BODY


async def test_redirect_not_followed_fails_the_2xx_default(misbehaving_http: MisbehavingServer,
                                                           env: ProbeEnv) -> None:
    result = await run_check(http_check(misbehaving_http.url("/redirect"), follow_redirects=False), env)
    error = assert_one_line_failure(result)
    assert "302" in error
    assert result.value == 302
    assert result.detail["redirects"] == 0
    assert result.detail["headers"]["location"] == "/ok"


async def test_redirect_not_followed_can_be_expected(misbehaving_http: MisbehavingServer, env: ProbeEnv) -> None:
    check = http_check(misbehaving_http.url("/redirect"), follow_redirects=False, expect={"status": [301, 302]})
    result = await run_check(check, env)
    assert result.up is True, result.error
    assert result.value == 302


# -- slow, hanging, broken servers ----------------------------------------------------------------


async def test_slow_within_timeout_is_up(misbehaving_http: MisbehavingServer, env: ProbeEnv) -> None:
    result = await run_check(http_check(misbehaving_http.url("/slow?ms=300")), env)
    assert result.up is True, result.error
    assert result.latency >= 0.25  # the wait is part of the latency


async def test_slow_beyond_timeout_times_out(misbehaving_http: MisbehavingServer, env: ProbeEnv) -> None:
    result = await run_check(http_check(misbehaving_http.url("/slow?ms=3000"), timeout="500ms"), env)
    assert result.outcome is Outcome.TIMEOUT
    assert result.error == "timeout"


async def test_hang_times_out_at_the_deadline(misbehaving_http: MisbehavingServer, env: ProbeEnv) -> None:
    timeout = 1.0
    started = time.monotonic()
    result = await run_check(http_check(misbehaving_http.url("/hang"), timeout=timeout), env)
    elapsed = time.monotonic() - started
    assert result.up is False
    assert result.outcome is Outcome.TIMEOUT
    assert result.error == "timeout"
    assert result.value is None
    assert timeout * 0.5 <= elapsed < timeout + 2  # loose: it waited, and it did not wait forever
    assert result.latency < timeout + 2


async def test_reset_is_a_failure_not_a_crash(misbehaving_http: MisbehavingServer, env: ProbeEnv) -> None:
    result = await run_check(http_check(misbehaving_http.url("/reset")), env)
    error = assert_one_line_failure(result)  # FAILURE, not ERROR (which would mean the probe broke)
    assert any(word in error for word in ("reset", "Disconnected", "Connection")), error


async def test_trickle_with_short_timeout_times_out(misbehaving_http: MisbehavingServer, env: ProbeEnv) -> None:
    # Headers arrive at once; the body never completes. Only the overall deadline ends this.
    started = time.monotonic()
    result = await run_check(http_check(misbehaving_http.url("/trickle"), timeout=1), env)
    assert result.outcome is Outcome.TIMEOUT
    assert result.error == "timeout"
    assert time.monotonic() - started < 3


async def test_big_body_fails_without_buffering_it(misbehaving_http: MisbehavingServer, env: ProbeEnv) -> None:
    check = http_check(misbehaving_http.url("/big"), timeout=5)
    await run_check(http_check(misbehaving_http.url("/ok")), env)  # warm up imports and the session
    rss_before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    tracemalloc.start()
    try:
        result = await run_check(check, env)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rss_growth_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before_kib) / 1024

    error = assert_one_line_failure(result)
    assert error == "response body larger than max_body (1048576 bytes)"
    assert result.value == 200
    assert "body" not in result.detail
    # 50 MB were on offer; reading stops just past max_body (1 MiB). Loose bounds.
    assert peak_bytes < 20 * 1024 * 1024, f"peak Python allocation {peak_bytes / 2**20:.1f} MiB"
    assert rss_growth_mib < 20, f"peak RSS grew by {rss_growth_mib:.1f} MiB"


async def test_max_body_is_configurable(misbehaving_http: MisbehavingServer, env: ProbeEnv) -> None:
    result = await run_check(http_check(misbehaving_http.url("/ok"), max_body="10B"), env)
    assert "larger than max_body (10 bytes)" in assert_one_line_failure(result)


async def test_hanging_server_does_not_delay_a_concurrent_check(misbehaving_http: MisbehavingServer,
                                                                env: ProbeEnv) -> None:
    hanging = http_check(misbehaving_http.url("/hang"), timeout=2)
    fast = http_check(misbehaving_http.url("/ok"), timeout=2)

    async def timed(check: HttpCheck) -> tuple[Result, float]:
        started = time.monotonic()
        result = await run_check(check, env)
        return result, time.monotonic() - started

    (slow_result, _), (fast_result, fast_elapsed) = await asyncio.gather(timed(hanging), timed(fast))
    assert slow_result.outcome is Outcome.TIMEOUT
    assert fast_result.up is True, fast_result.error
    assert fast_result.latency < 1.0
    assert fast_elapsed < 1.0  # finished long before the hanging one's 2 s deadline


async def test_connection_refused_is_a_one_line_failure(closed_port: int, env: ProbeEnv) -> None:
    result = await run_check(http_check(f"http://127.0.0.1:{closed_port}/ok"), env)
    error = assert_one_line_failure(result)
    assert str(closed_port) in error
    assert result.value is None
    assert result.latency < 2


# -- TLS ------------------------------------------------------------------------------------------


async def test_untrusted_certificate_fails_mentioning_certificate(misbehaving_https: MisbehavingServer,
                                                                  env: ProbeEnv) -> None:
    result = await run_check(http_check(misbehaving_https.url("/ok")), env)
    error = assert_one_line_failure(result)
    assert error.startswith("TLS error: ")
    assert "certificate" in error.lower()


async def test_ca_file_makes_it_trusted(misbehaving_https: MisbehavingServer, trustme_ca_file: str,
                                        env: ProbeEnv) -> None:
    result = await run_check(http_check(misbehaving_https.url("/ok"), tls={"ca_file": trustme_ca_file}), env)
    assert result.up is True, result.error
    assert result.value == 200
    assert result.detail["body"] == OK_BODY


async def test_ca_file_reports_days_to_expiry(misbehaving_https: MisbehavingServer, trustme_ca_file: str,
                                              env: ProbeEnv) -> None:
    # MONITOR BUG (see report): for a response whose body arrives with its headers (most health
    # endpoints), aiohttp has already released the connection when the request returns, so
    # `response.connection` is None and detail["tls"] is silently missing.
    result = await run_check(http_check(misbehaving_https.url("/ok"), tls={"ca_file": trustme_ca_file}), env)
    assert result.up is True, result.error
    assert "tls" in result.detail, "HTTPS result has no tls detail"
    days = result.detail["tls"]["days_to_expiry"]
    assert isinstance(days, (int, float)) and days > 0


async def test_cel_can_check_certificate_expiry(misbehaving_https: MisbehavingServer, trustme_ca_file: str,
                                               env: ProbeEnv) -> None:
    # The user-visible side of the missing tls detail: `tls` is {} in the expression, so a
    # certificate-expiry condition fails on a perfectly valid certificate (trustme's lasts to 3000).
    check = http_check(misbehaving_https.url("/ok"), tls={"ca_file": trustme_ca_file},
                       expect={"cel": "tls.days_to_expiry > 14.0"})
    result = await run_check(check, env)
    assert result.up is True, result.error


async def test_tls_detail_present_when_connection_still_open(misbehaving_https: MisbehavingServer,
                                                             trustme_ca_file: str, env: ProbeEnv) -> None:
    # With a body still streaming, the connection is held, so the certificate can be read.
    check = http_check(misbehaving_https.url("/big"), tls={"ca_file": trustme_ca_file}, timeout=5)
    result = await run_check(check, env)
    assert "larger than max_body" in assert_one_line_failure(result)
    tls = result.detail["tls"]
    assert tls["days_to_expiry"] > 0
    assert "trustme" in tls["issuer"]
    assert tls["version"].startswith("TLS")


async def test_insecure_skip_verify_is_up(misbehaving_https: MisbehavingServer, env: ProbeEnv) -> None:
    result = await run_check(http_check(misbehaving_https.url("/ok"), tls={"insecure_skip_verify": True}), env)
    assert result.up is True, result.error
    assert result.value == 200


async def test_hostname_mismatch_fails_even_with_trusted_ca(trustme_ca_file: str, env: ProbeEnv) -> None:
    import ssl

    import trustme

    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("other.example").configure_cert(context)
    ca_path = trustme_ca_file + ".other.pem"
    ca.cert_pem.write_to_path(ca_path)
    with MisbehavingServer(ssl_context=context) as server:
        result = await run_check(http_check(server.url("/ok"), tls={"ca_file": ca_path}), env)
    error = assert_one_line_failure(result)
    assert error.startswith("TLS error: ")
    assert "127.0.0.1" in error or "hostname" in error.lower()


async def test_uppercase_https_scheme_still_verifies_the_certificate(misbehaving_https: MisbehavingServer,
                                                                     env: ProbeEnv) -> None:
    # MONITOR BUG (see report): the probe decides on TLS with `check.url.startswith("https")`,
    # so "HTTPS://..." (a valid URL; schemes are case-insensitive) is requested with ssl=False,
    # i.e. with certificate verification silently switched off.
    url = misbehaving_https.url("/ok").replace("https://", "HTTPS://")
    result = await run_check(http_check(url), env)
    error = assert_one_line_failure(result)
    assert "certificate" in error.lower()


async def test_redirect_from_http_to_untrusted_https_fails(misbehaving_http: MisbehavingServer,
                                                           misbehaving_https: MisbehavingServer,
                                                           env: ProbeEnv) -> None:
    # MONITOR BUG (see report): same root cause; for an http:// URL the probe passes ssl=False,
    # which aiohttp applies to every hop, so the https:// redirect target is never verified.
    url = misbehaving_http.url("/redirect?to=" + quote(misbehaving_https.url("/ok"), safe=""))
    result = await run_check(http_check(url), env)
    error = assert_one_line_failure(result)
    assert "certificate" in error.lower()


async def test_redirect_from_http_to_trusted_https_is_up(misbehaving_http: MisbehavingServer,
                                                         misbehaving_https: MisbehavingServer,
                                                         trustme_ca_file: str, env: ProbeEnv) -> None:
    url = misbehaving_http.url("/redirect?to=" + quote(misbehaving_https.url("/ok"), safe=""))
    result = await run_check(http_check(url, tls={"ca_file": trustme_ca_file}), env)
    assert result.up is True, result.error
    assert result.detail["redirects"] == 1
    assert result.detail["final_url"] == misbehaving_https.url("/ok")


async def test_plain_http_to_tls_port_fails(misbehaving_https: MisbehavingServer, env: ProbeEnv) -> None:
    url = misbehaving_https.url("/ok").replace("https://", "http://")
    result = await run_check(http_check(url), env)
    assert_one_line_failure(result)  # the TLS server hangs up on plaintext; a failure, not a probe error


# -- config validation ----------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "127.0.0.1:8080/ok", "file:///etc/passwd", "http://"])
def test_url_must_be_http_with_host(url: str) -> None:
    with pytest.raises(ValidationError, match="url must be http:// or https:// with a host"):
        http_check(url)


def test_url_credentials_are_redacted_in_the_message() -> None:
    # The config loader shows each error's "msg" (pydantic's own str() also echoes the input).
    with pytest.raises(ValidationError) as info:
        http_check("ftp://user:hunter2@127.0.0.1/x")
    messages = [error["msg"] for error in info.value.errors()]
    assert messages and all("hunter2" not in message for message in messages)
    assert any("***@127.0.0.1" in message for message in messages)


@pytest.mark.parametrize("codes", [[99], [600], [200, 1000], [-1]])
def test_invalid_status_codes_are_rejected(codes: list[int]) -> None:
    with pytest.raises(ValidationError, match="invalid HTTP status code"):
        http_check("http://127.0.0.1/ok", expect={"status": codes})


def test_empty_status_list_is_rejected() -> None:
    with pytest.raises(ValidationError, match="at least one code"):
        http_check("http://127.0.0.1/ok", expect={"status": []})


def test_cel_unknown_variable_is_rejected() -> None:
    with pytest.raises(ValidationError, match=r"unknown variable respnse") as info:
        http_check("http://127.0.0.1/ok", expect={"cel": "respnse.status == 200"})
    assert "available: body, headers, latency, status, tls" in str(info.value)


def test_cel_syntax_error_is_rejected() -> None:
    with pytest.raises(ValidationError, match="invalid CEL expression"):
        http_check("http://127.0.0.1/ok", expect={"cel": 'body.status == "healthy" &&'})


def test_cel_unknown_function_is_rejected() -> None:
    with pytest.raises(ValidationError, match="unknown function"):
        http_check("http://127.0.0.1/ok", expect={"cel": "healthy(body)"})


def test_unknown_expect_key_is_rejected() -> None:
    with pytest.raises(ValidationError):
        http_check("http://127.0.0.1/ok", expect={"staus": [200]})


def test_missing_ca_file_is_rejected(tmp_path: Any) -> None:
    with pytest.raises(ValidationError, match="cannot be loaded"):
        http_check("https://127.0.0.1/ok", tls={"ca_file": str(tmp_path / "nope.pem")})


def test_timeout_longer_than_interval_is_rejected() -> None:
    with pytest.raises(ValidationError, match="must not exceed interval"):
        http_check("http://127.0.0.1/ok", interval="5s", timeout="10s")


def test_durations_accept_strings() -> None:
    check = http_check("http://127.0.0.1/ok", interval="1m", timeout="1500ms", max_body="2MiB")
    assert check.interval == 60.0
    assert check.timeout == 1.5
    assert int(check.max_body) == 2 * 1024 * 1024
