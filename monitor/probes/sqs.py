"""``kind: sqs`` — how many messages wait in an SQS queue.

value: ``ApproximateNumberOfMessages`` (visible, waiting to be received). detail:
``in_flight`` (``ApproximateNumberOfMessagesNotVisible``: received, not yet deleted) and
``delayed`` (``ApproximateNumberOfMessagesDelayed``). One ``GetQueueAttributes`` call; down
when it fails (no such queue, access denied, throttled past the timeout...).
"""

from __future__ import annotations

import time
from typing import Literal

from pydantic import field_validator

from monitor.aws.calls import call
from monitor.aws.model import AwsError
from monitor.core.results import Result, one_line
from monitor.probes.aws_common import AwsCheck, failed, time_left
from monitor.probes.base import ProbeEnv

ATTRIBUTES = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
              "ApproximateNumberOfMessagesDelayed"]


class SqsCheck(AwsCheck):
    kind: Literal["sqs"]
    queue_url: str

    @field_validator("queue_url")
    @classmethod
    def _url(cls, url: str) -> str:
        if not url.startswith(("https://", "http://")) or "?" in url or len(url) > 2048:
            raise ValueError(f"queue_url must be the queue's URL (https://sqs.<region>.amazonaws.com/<account>/<name>), "
                             f"got {one_line(url, 200)!r}")
        return url


async def probe(check: SqsCheck, deadline: float, env: ProbeEnv) -> Result:
    started = time.perf_counter()
    try:
        answer = await call(check.target("sqs"), "get_queue_attributes", time_left(deadline),
                            QueueUrl=check.queue_url, AttributeNames=ATTRIBUTES)
    except AwsError as err:
        return failed(err, started)
    attributes = answer.get("Attributes", {})
    try:
        visible, in_flight, delayed = (int(attributes[name]) for name in ATTRIBUTES)
    except (KeyError, ValueError, TypeError):
        return Result.failed("malformed GetQueueAttributes answer: a message count is missing",
                             time.perf_counter() - started)
    return Result(up=True, value=float(visible), latency=time.perf_counter() - started,
                  detail={"in_flight": in_flight, "delayed": delayed})
