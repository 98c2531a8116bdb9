"""``kind: sqs`` against moto in server mode: the message counts, then the queue changes."""

from __future__ import annotations

from monitor.aws.calls import call
from monitor.aws.model import AwsTarget
from monitor.core.results import Outcome

from tests.aws_checks import REGION, aws_check, run, unique


async def test_counts_follow_the_queue(moto_endpoint: str) -> None:
    sqs = AwsTarget("sqs", REGION, moto_endpoint)
    url = (await call(sqs, "create_queue", 30, QueueName=unique("jobs")))["QueueUrl"]
    check = aws_check("sqs", moto_endpoint, queue_url=url)

    empty = await run(check)
    assert empty.up and empty.value == 0 and empty.detail == {"in_flight": 0, "delayed": 0}, empty

    for number in range(5):
        await call(sqs, "send_message", 30, QueueUrl=url, MessageBody=f"job {number}")
    await call(sqs, "send_message", 30, QueueUrl=url, MessageBody="later", DelaySeconds=600)
    grown = await run(check)
    assert grown.up and grown.value == 5 and grown.detail == {"in_flight": 0, "delayed": 1}, grown

    received = await call(sqs, "receive_message", 30, QueueUrl=url, MaxNumberOfMessages=2, VisibilityTimeout=600)
    assert len(received["Messages"]) == 2
    taken = await run(check)
    assert taken.value == 3 and taken.detail["in_flight"] == 2, taken


async def test_missing_queue_is_down_naming_the_error(moto_endpoint: str) -> None:
    check = aws_check("sqs", moto_endpoint, queue_url=f"{moto_endpoint}/123456789012/{unique('nothing')}")
    result = await run(check)
    assert not result.up and result.outcome is Outcome.FAILURE
    assert result.error is not None and "\n" not in result.error
    assert result.error.startswith("GetQueueAttributes: ") and "does not exist" in result.error, result.error


def test_config_errors() -> None:
    import pytest
    from pydantic import ValidationError

    for bad in ({"region": "mars"}, {"queue_url": "jobs"}, {"endpoint_url": "http://sqs.example.com"},
                {"endpoint_url": "https://user:pw@example.com"}, {"role_arn": "admin"}):
        fields = {"queue_url": "https://sqs.us-east-1.amazonaws.com/1/q", **bad}
        with pytest.raises(ValidationError):
            aws_check("sqs", "https://sqs.us-east-1.amazonaws.com", **fields)
