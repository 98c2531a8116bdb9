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

from monitor.aws import calls, wire, worker
from monitor.aws.calls import call
from monitor.aws.model import AwsError, AwsTarget
from monitor.core.results import Outcome
from monitor.probes.aws_common import failed

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


async def test_a_hung_worker_is_replaced_even_when_it_holds_every_share(
        moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(calls, "PER_ENDPOINT", 1)  # this test's event loop: one call per endpoint at once
    monkeypatch.setattr(calls, "STUCK_AFTER", 0.2)
    monkeypatch.setattr(calls, "PING_GRACE", 0.3)
    pid = await _started_worker(moto_endpoint)
    target = AwsTarget("sqs", REGION, moto_endpoint)
    os.kill(pid, signal.SIGSTOP)  # alive, reading nothing, answering nothing
    try:
        started = time.monotonic()
        with pytest.raises(AwsError) as raised:
            await call(target, "list_queues", 1.0)
        assert time.monotonic() - started < 1.0 + 5
        assert str(raised.value) == "ListQueues: Timeout: no answer from sqs within 1s"

        # That call keeps the endpoint's only share: the next one waits for it in vain, and
        # the worker, a call now past its deadline, is pinged.
        await asyncio.sleep(0.3)
        with pytest.raises(AwsError) as waited:
            await call(target, "list_queues", 1.0)
        assert str(waited.value) == "ListQueues: Timeout: waited for a free AWS call slot past the 1s timeout"

        await asyncio.sleep(0.4)  # no answer to the ping: the next call ends the worker first
        answer = await call(target, "list_queues", 30)
        assert isinstance(answer, dict)
        assert calls.worker_pid() not in (None, pid)
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


async def test_one_call_stuck_in_a_healthy_worker_does_not_end_it(
        fake_aws: FakeAws, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(calls, "STUCK_AFTER", -60.0)  # every call counts as long overdue: pings all along
    monkeypatch.setattr(calls, "PING_GRACE", 0.2)
    pid = await _started_worker(moto_endpoint)
    fake_aws.reply("GetQueueAttributes", HANG)
    hanging = asyncio.create_task(call(AwsTarget("sqs", REGION, fake_aws.url), "get_queue_attributes", 4,
                                       QueueUrl=QUEUE))
    while not fake_aws.seen:
        await asyncio.sleep(0.02)
    for _ in range(6):  # each call checks the worker; it answers every ping
        await call(AwsTarget("sqs", REGION, moto_endpoint), "list_queues", 10)
        await asyncio.sleep(0.25)
    assert calls.worker_pid() == pid
    with pytest.raises(AwsError) as raised:
        await hanging
    assert raised.value.code in ("Timeout", "ReadTimeout")  # the endpoint's hang, not the worker's end


async def test_an_answer_the_daemon_cannot_read_ends_the_worker(
        moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real_read = wire.read

    def out_of_step(stream: object) -> object:
        message = real_read(stream)  # type: ignore[arg-type]
        if message is not None and message[0] == "answer":
            raise wire.FrameError("not a message")
        return message

    calls.reset()  # the next worker's reader reads through out_of_step from its first frame
    monkeypatch.setattr(wire, "read", out_of_step)
    with pytest.raises(AwsError) as raised:
        await call(AwsTarget("sqs", REGION, moto_endpoint), "list_queues", 30)
    assert str(raised.value) == ("WorkerExited: the AWS worker process sent what the daemon could not read "
                                 "(FrameError) and was stopped; the next call starts a new one")
    monkeypatch.setattr(wire, "read", real_read)
    await asyncio.sleep(calls.RESTART_EVERY)
    assert isinstance(await call(AwsTarget("sqs", REGION, moto_endpoint), "list_queues", 30), dict)
    assert calls.worker_pid() is not None


async def test_parameters_that_cannot_be_sent_are_a_parameter_error(moto_endpoint: str) -> None:
    with pytest.raises(AwsError) as raised:
        await call(AwsTarget("sqs", REGION, moto_endpoint), "list_queues", 5, QueueNamePrefix=lambda: "x")
    assert raised.value.code == "ParamValidation" and raised.value.permanent
    assert str(raised.value).startswith("ListQueues: ParamValidation: the parameters cannot be sent to the AWS worker")


async def test_a_credential_process_cannot_read_the_workers_requests(
        tmp_path: Path, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # botocore runs a profile's credential_process with the worker's stdin: it must be
    # /dev/null, not the pipe the daemon's requests arrive on.
    seen = tmp_path / "stdin-seen"
    helper = tmp_path / "credentials.sh"
    helper.write_text(f"#!/bin/sh\ncat > {seen}\n"
                      "printf '{\"Version\": 1, \"AccessKeyId\": \"AKIDHELPER\", \"SecretAccessKey\": \"x\"}'\n")
    helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
    config = tmp_path / "aws-config"
    config.write_text(f"[profile helper]\ncredential_process = {helper}\n")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "helper")
    calls.reset()
    try:
        answer = await call(AwsTarget("sts", REGION, moto_endpoint), "get_caller_identity", 20)
        assert "Arn" in answer
        assert seen.read_bytes() == b""
    finally:
        calls.reset()


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


def test_a_worker_failure_is_the_checks_own_error_not_the_targets() -> None:
    started = time.perf_counter()
    own = failed(AwsError("WorkerExited", "the AWS worker process was killed by signal 9"), started)
    assert not own.up and own.outcome is Outcome.ERROR
    target = failed(AwsError("AccessDenied", "not authorized", operation="GetQueueAttributes"), started)
    assert not target.up and target.outcome is Outcome.FAILURE
