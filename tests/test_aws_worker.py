"""The AWS worker process (monitor/aws/worker.py, monitor/aws/calls.py; docs/architecture.md,
"The AWS worker"): a worker that is killed, hangs or cannot start fails the calls it had with
one line, within their timeouts, and the next call gets a new worker that answers."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import sys
import time
from pathlib import Path

import pytest

from monitor.aws import calls, worker
from monitor.aws.calls import call
from monitor.aws.model import AwsError, AwsTarget

from tests.aws_checks import REGION, unique
from tests.aws_fake import HANG, FakeAws

QUEUE = "http://127.0.0.1:1/123456789012/jobs"


async def _started_worker(moto_endpoint: str) -> int:
    await call(AwsTarget("sqs", REGION, moto_endpoint), "list_queues", 30)
    pid = calls.worker_pid()
    assert pid is not None and pid != os.getpid()
    return pid


async def test_the_worker_runs_below_the_daemons_priority(moto_endpoint: str) -> None:
    pid = await _started_worker(moto_endpoint)
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    assert os.getpriority(os.PRIO_PROCESS, pid) == min(ours + worker.NICENESS, 19)


async def test_a_killed_worker_fails_its_calls_at_once_and_is_replaced(fake_aws: FakeAws, moto_endpoint: str) -> None:
    pid = await _started_worker(moto_endpoint)
    fake_aws.reply("GetQueueAttributes", HANG)
    hanging = asyncio.create_task(call(AwsTarget("sqs", REGION, fake_aws.url), "get_queue_attributes", 20,
                                       QueueUrl=QUEUE))
    while not fake_aws.seen:  # the call is in the worker, waiting on the endpoint
        await asyncio.sleep(0.02)
    started = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(AwsError) as raised:
        await hanging
    assert time.monotonic() - started < 10  # told when the worker died, not at the 20 s timeout
    assert str(raised.value) == ("WorkerExited: the AWS worker process was killed by signal 9; "
                                 "the next call starts a new one")

    await asyncio.sleep(calls.RESTART_EVERY)
    name = unique("after")
    queue = await call(AwsTarget("sqs", REGION, moto_endpoint), "create_queue", 30, QueueName=name)
    assert queue["QueueUrl"].endswith("/" + name)
    assert calls.worker_pid() not in (None, pid)


async def test_a_hung_worker_is_bounded_by_the_timeout_then_replaced(
        moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    pid = await _started_worker(moto_endpoint)
    target = AwsTarget("sqs", REGION, moto_endpoint)
    os.kill(pid, signal.SIGSTOP)  # alive, reading nothing, answering nothing
    try:
        started = time.monotonic()
        with pytest.raises(AwsError) as raised:
            await call(target, "list_queues", 1.0)
        assert time.monotonic() - started < 1.0 + 5
        assert str(raised.value) == "ListQueues: Timeout: no answer from sqs within 1s"

        monkeypatch.setattr(calls, "STUCK_AFTER", 0.2)
        await asyncio.sleep(0.3)
        answer = await call(target, "list_queues", 30)  # the hung worker is killed, a new one answers
        assert isinstance(answer, dict)
        assert calls.worker_pid() not in (None, pid)
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


async def test_a_worker_that_cannot_start_is_one_line_and_not_restarted_in_a_loop(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "python"
    runs = tmp_path / "runs"
    broken.write_text(f"#!/bin/sh\necho run >> {runs}\necho 'no module named boto3' >&2\nexit 3\n")
    broken.chmod(broken.stat().st_mode | stat.S_IEXEC)
    calls.reset()
    monkeypatch.setattr(sys, "executable", str(broken))
    target = AwsTarget("sqs", REGION, "http://127.0.0.1:1")
    errors = []
    for _ in range(5):
        with pytest.raises(AwsError) as raised:
            await call(target, "list_queues", 5)
        errors.append(str(raised.value))
    assert set(errors) == {"WorkerExited: the AWS worker process exited with code 3; the next call starts a new one"}
    assert runs.read_text().count("run") == 1  # five calls within a second: one start
    calls.reset()
