"""The shared AWS call path (monitor/aws/calls.py to the worker process, monitor/aws/clients.py
in it): failures from the endpoint become one-line errors within the timeout, a hanging
endpoint cannot starve other checks, assumed roles are used and refreshed before they expire,
and what a caller drops never leaves the worker.

The tests that move the credentials' clock or look into the client cache run the worker's
code (``clients.call_blocking``) in this process, in a thread, as the worker runs it."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from monitor.aws import calls, clients
from monitor.aws.calls import PER_ENDPOINT, call
from monitor.aws.model import AwsError, AwsTarget, error_from_dict
from monitor.core.results import Outcome

from tests.aws_checks import REGION, aws_check, run, run_timed, unique
from tests.aws_fake import HANG, FakeAws, aws_json_error, query_error
from tests.moto_server import fake_credentials

ROLE = "arn:aws:iam::123456789012:role/monitor-reader"
QUEUE = "http://127.0.0.1:1/123456789012/jobs"


def _sqs(fake: FakeAws, timeout: float = 3.0, name: str = "sqs_test") -> object:
    return aws_check("sqs", fake.url, timeout=timeout, name=name, queue_url=QUEUE)


def _one_line(text: str | None) -> str:
    assert text is not None and "\n" not in text and len(text) <= 500, text
    return text


async def test_throttling_is_retried_then_named(fake_aws: FakeAws) -> None:
    fake_aws.reply("GetQueueAttributes", aws_json_error("ThrottlingException", "Rate exceeded"))
    result, took = await run_timed(_sqs(fake_aws, timeout=3.0))  # type: ignore[arg-type]
    assert not result.up and result.outcome is Outcome.FAILURE
    assert _one_line(result.error).startswith("GetQueueAttributes: ThrottlingException: Rate exceeded ("), result
    assert took < 3.0 + 5
    assert 2 <= len(fake_aws.seen) <= clients.MAX_ATTEMPTS  # retried, within the attempt budget

    with pytest.raises(AwsError) as raised:
        await call(AwsTarget("sqs", REGION, fake_aws.url), "get_queue_attributes", 3, QueueUrl=QUEUE)
    assert raised.value.throttled and not raised.value.permanent and raised.value.code == "ThrottlingException"


async def test_server_errors_are_retried_and_temporary(fake_aws: FakeAws) -> None:
    fake_aws.reply("GetQueueAttributes", aws_json_error("ServiceUnavailable", "Service is unavailable", status=503))
    with pytest.raises(AwsError) as raised:
        await call(AwsTarget("sqs", REGION, fake_aws.url), "get_queue_attributes", 10, QueueUrl=QUEUE)
    error = raised.value
    assert error.code == "ServiceUnavailable" and error.status == 503 and not error.permanent and not error.throttled
    assert str(error) == "GetQueueAttributes: ServiceUnavailable: Service is unavailable (after 3 attempts)"
    assert len(fake_aws.seen) == clients.MAX_ATTEMPTS

    # A 5xx that is an HTML page (a load balancer in front) names the status, not the page.
    fake_aws.reply("GetQueueAttributes", (502, "<html><body><h1>502 Bad Gateway</h1></body></html>"))
    result = await run(_sqs(fake_aws, timeout=10.0))  # type: ignore[arg-type]
    assert not result.up and "<" not in _one_line(result.error), result.error


async def test_expired_token_is_one_line_and_not_permanent(fake_aws: FakeAws) -> None:
    fake_aws.reply("GetQueueAttributes", aws_json_error(
        "ExpiredTokenException", "The security token included in the request is expired"))
    result, took = await run_timed(_sqs(fake_aws))  # type: ignore[arg-type]
    assert not result.up and took < 3.0 + 5
    assert result.error == "GetQueueAttributes: ExpiredTokenException: The security token included in the request " \
                           "is expired"
    assert len(fake_aws.seen) == 1  # not retried: the same token would be sent again
    with pytest.raises(AwsError) as raised:
        await call(AwsTarget("sqs", REGION, fake_aws.url), "get_queue_attributes", 3, QueueUrl=QUEUE)
    assert not raised.value.permanent  # refreshed credentials may succeed: an outbox retries


async def test_permanent_errors(fake_aws: FakeAws) -> None:
    fake_aws.reply("GetQueueAttributes", aws_json_error(
        "AccessDenied", "User: arn:aws:sts::123456789012:assumed-role/x/AKIAIOSFODNN7EXAMPLE is not authorized",
        status=403))
    with pytest.raises(AwsError) as raised:
        await call(AwsTarget("sqs", REGION, fake_aws.url), "get_queue_attributes", 3, QueueUrl=QUEUE)
    assert raised.value.permanent and raised.value.code == "AccessDenied"
    assert "AKIAIOSFODNN7EXAMPLE" not in str(raised.value)  # no access key ids in errors
    with pytest.raises(AwsError) as bad_param:
        await call(AwsTarget("sqs", REGION, fake_aws.url), "get_queue_attributes", 3, QueueUrl=7)
    assert bad_param.value.code == "ParamValidation" and bad_param.value.permanent
    with pytest.raises(AwsError) as unknown:
        await call(AwsTarget("sqs", REGION, fake_aws.url), "no_such_operation", 3)
    assert unknown.value.code == "UnknownOperation"


async def test_hanging_endpoint_times_out_and_starves_nobody(fake_aws: FakeAws, moto_endpoint: str) -> None:
    fake_credentials_ok = await call(AwsTarget("sqs", REGION, moto_endpoint), "create_queue", 30,
                                     QueueName=unique("healthy"))
    healthy = aws_check("sqs", moto_endpoint, name="healthy", timeout=20.0, queue_url=fake_credentials_ok["QueueUrl"])
    fake_aws.reply("GetQueueAttributes", HANG)
    hanging = [_sqs(fake_aws, timeout=4.0, name=f"hanging_{n}") for n in range(PER_ENDPOINT + 8)]
    finished: list[str] = []

    async def timed(check: object) -> object:
        result = await run(check)  # type: ignore[arg-type]
        finished.append(check.name)  # type: ignore[attr-defined]
        return result

    started = time.monotonic()
    results = await asyncio.gather(*(timed(check) for check in hanging), timed(healthy))
    took = time.monotonic() - started

    good = results[-1]
    assert good.up, good  # type: ignore[attr-defined]
    assert finished[0] == "healthy", finished  # answered while every hanging call was still waiting
    for result in results[:-1]:
        assert not result.up and result.outcome in (Outcome.TIMEOUT, Outcome.FAILURE)  # type: ignore[attr-defined]
        assert "Timeout" in _one_line(result.error), result.error  # type: ignore[attr-defined]
    # Bounded by the 4 s timeout, not by the hang; the slack is for a loaded CI machine.
    assert took < 4.0 + 16.0
    # The hanging endpoint held at most its share of the pool's threads.
    assert fake_aws.most_active <= PER_ENDPOINT

    # While those threads are still blocked in their sockets, other endpoints still answer.
    again = await run(healthy)
    assert again.up


async def test_role_is_assumed_and_used(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_endpoint)
    calls.reset()
    identity = await call(AwsTarget("sts", REGION, moto_endpoint, role_arn=ROLE), "get_caller_identity", 30)
    assert identity["Arn"] == "arn:aws:sts::123456789012:assumed-role/monitor-reader/monitor"
    plain = await call(AwsTarget("sts", REGION, moto_endpoint), "get_caller_identity", 30)
    assert "assumed-role" not in plain["Arn"]
    calls.reset()


async def in_process(target: AwsTarget, method: str, timeout: float = 10.0, **params: object) -> dict[str, object]:
    """What the worker does for one call, in a thread of this process."""
    state = clients.CallState(time.monotonic() + timeout, method)
    return await asyncio.to_thread(clients.call_blocking, target, method, timeout, state, None, params)


def _access_key(fake: FakeAws, index: int = -1) -> str:
    header = fake.seen[index].headers["Authorization"]
    return header.split("Credential=", 1)[1].split("/", 1)[0]


async def test_assumed_credentials_are_refreshed_before_they_expire(
        fake_aws: FakeAws, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_endpoint)
    clients.reset()
    shift = timedelta()
    monkeypatch.setattr(clients, "now", lambda: datetime.now(UTC) + shift)
    fake_aws.reply("GetQueueAttributes", (200, {"Attributes": {"ApproximateNumberOfMessages": "3",
                                                               "ApproximateNumberOfMessagesNotVisible": "0",
                                                               "ApproximateNumberOfMessagesDelayed": "0"}}))
    target = AwsTarget("sqs", REGION, fake_aws.url, role_arn=ROLE)

    async def run_in_process() -> dict[str, object]:
        return await in_process(target, "get_queue_attributes", QueueUrl=QUEUE, AttributeNames=["All"])

    assert (await run_in_process())["Attributes"] == {"ApproximateNumberOfMessages": "3",
                                                    "ApproximateNumberOfMessagesNotVisible": "0",
                                                    "ApproximateNumberOfMessagesDelayed": "0"}
    first = _access_key(fake_aws)
    assert first != "testing" and "X-Amz-Security-Token" in fake_aws.seen[-1].headers  # the role's, not the chain's

    shift = timedelta(minutes=30)  # halfway through the hour the credentials last
    await run_in_process()
    assert _access_key(fake_aws) == first

    shift = timedelta(minutes=46)  # inside the 15 minutes before expiry: refreshed, still valid
    await run_in_process()
    second = _access_key(fake_aws)
    assert second != first

    # moto dated the new credentials from its own (unshifted) clock: an hour from the real now.
    shift = timedelta()
    await run_in_process()
    assert _access_key(fake_aws) == second  # kept until they near their expiry, not fetched per call
    clients.reset()


async def test_failed_assume_role_names_the_sts_error(fake_aws: FakeAws, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", fake_aws.url)
    calls.reset()
    fake_aws.reply("AssumeRole", query_error("ExpiredToken", "The security token included in the request is expired"))
    result, took = await run_timed(aws_check("ses", fake_aws.url, role_arn=ROLE, timeout=5.0))
    assert not result.up and took < 6.0 + 5
    assert result.error == "AssumeRole: ExpiredToken: The security token included in the request is expired"
    assert "GetAccount" not in fake_aws.operations()  # nothing sent without the role's credentials
    calls.reset()


async def test_no_credentials(fake_aws: FakeAws, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    calls.reset()
    result = await run(_sqs(fake_aws))  # type: ignore[arg-type]
    assert not result.up and _one_line(result.error).startswith("GetQueueAttributes: NoCredentials: ")
    assert fake_aws.seen == []
    calls.reset()


async def test_unreachable_endpoint(monkeypatch: pytest.MonkeyPatch, closed_port: int) -> None:
    fake_credentials(monkeypatch)
    result, took = await run_timed(aws_check("sqs", f"http://127.0.0.1:{closed_port}", timeout=3.0,
                                             queue_url=QUEUE))
    assert not result.up and took < 3.0 + 5
    assert _one_line(result.error).startswith("GetQueueAttributes: EndpointConnectionError: could not connect to "
                                              f"http://127.0.0.1:{closed_port}/"), result.error


async def test_keep_drops_the_rest_inside_the_thread(moto_endpoint: str) -> None:
    sm = AwsTarget("secretsmanager", REGION, moto_endpoint)
    name = unique("kept")
    await call(sm, "create_secret", 30, Name=name, SecretString="do-not-keep-this")
    answer = await call(sm, "get_secret_value", 30, keep=("ARN", "VersionId"), SecretId=name)
    assert set(answer) == {"ARN", "VersionId"}


async def test_clients_are_cached_per_target(moto_endpoint: str) -> None:
    target = AwsTarget("sqs", REGION, moto_endpoint)
    await in_process(target, "list_queues", timeout=9.9)
    await in_process(target, "list_queues", timeout=9.5)  # a slightly different time left: the same client
    await in_process(target, "list_queues", timeout=5.1)
    cached = [key for key in clients._clients if key[0] == target]
    assert len(cached) == 1, cached
    clients.reset()


def test_classification_of_status_only_answers() -> None:
    error = error_from_dict({}, 404, "HeadObject")
    assert (error.code, error.permanent, str(error)) == ("NotFound", True, "HeadObject: NotFound: HTTP 404")
    throttled = error_from_dict({"Code": "SlowDown", "Message": "Please reduce"}, 503, "PutObject")
    assert throttled.throttled and not throttled.permanent
    assert error_from_dict({"Code": "Whatever"}, 429, "X").throttled
    assert not error_from_dict({"Code": "RequestTimeTooSkewed"}, 403, "X").permanent
    assert clients._socket_timeout(9.87) == 5.0 and clients._socket_timeout(0.2) == 0.5


async def test_hanging_sts_is_bounded_by_the_check_timeout(fake_aws: FakeAws, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", fake_aws.url)
    calls.reset()
    fake_aws.reply("AssumeRole", HANG)
    result, took = await run_timed(aws_check("ses", fake_aws.url, role_arn=ROLE, timeout=2.0))
    assert not result.up and took < 3.0 + 5
    assert "Timeout" in _one_line(result.error), result.error
    assert fake_aws.operations() == ["AssumeRole"]  # one attempt begun; none after the deadline
    calls.reset()
