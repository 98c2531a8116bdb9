"""``kind: secretsmanager`` against moto in server mode: age, rotation, reading, deletion.

The secret's value must never appear anywhere: not in a result, not in a log line, even with
the root logger at DEBUG (where botocore would log whole response bodies).
"""

from __future__ import annotations

import logging
import uuid
import pytest

from monitor.aws.calls import call
from monitor.aws.model import AwsTarget
from monitor.core.clock import FakeClock
from monitor.core.results import Outcome

from tests.aws_checks import REGION, aws_check, run, unique
from tests.aws_fake import FakeAws


async def test_age_read_and_deletion_followed(moto_endpoint: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sm = AwsTarget("secretsmanager", REGION, moto_endpoint)
    name = unique("prod/db")
    value = f"s3cr3t-{uuid.uuid4().hex}"
    await call(sm, "create_secret", 30, Name=name, SecretString=value)
    described = await call(sm, "describe_secret", 30, SecretId=name)
    changed = (described.get("LastChangedDate") or described["CreatedDate"]).timestamp()
    clock = FakeClock(start=changed + 3 * 86400)
    check = aws_check("secretsmanager", moto_endpoint, secret_id=name, read=True)

    fine = await run(check, clock)
    assert fine.up and fine.value == 3.0, fine
    assert fine.detail["rotation_enabled"] is False and fine.detail["last_rotated"] is None, fine.detail
    assert fine.detail["last_changed"].endswith("Z")

    await call(sm, "put_secret_value", 30, SecretId=name, SecretString=value + "-next")
    after = await call(sm, "describe_secret", 30, SecretId=name)
    new_changed = (after.get("LastChangedDate") or after["CreatedDate"]).timestamp()
    changed_again = await run(check, FakeClock(start=new_changed + 86400 / 2))
    assert changed_again.up and changed_again.value == 0.5, changed_again

    await call(sm, "delete_secret", 30, SecretId=name, RecoveryWindowInDays=7)
    doomed = await run(check, clock)
    assert not doomed.up and doomed.outcome is Outcome.FAILURE
    assert doomed.error is not None and f"secret {name} is scheduled for deletion" in doomed.error, doomed

    await call(sm, "restore_secret", 30, SecretId=name)
    assert (await run(check, clock)).up

    for text in (repr(fine), repr(changed_again), repr(doomed), caplog.text):
        assert value not in text


async def test_unreadable_with_read_but_fine_without(moto_endpoint: str) -> None:
    sm = AwsTarget("secretsmanager", REGION, moto_endpoint)
    name = unique("empty")
    await call(sm, "create_secret", 30, Name=name)  # no value yet: describable, not readable
    assert (await run(aws_check("secretsmanager", moto_endpoint, secret_id=name))).up
    unreadable = await run(aws_check("secretsmanager", moto_endpoint, secret_id=name, read=True))
    assert not unreadable.up
    assert unreadable.error is not None and unreadable.error.startswith("GetSecretValue: ResourceNotFoundException: ")
    assert unreadable.detail["rotation_enabled"] is False  # what DescribeSecret said is kept


async def test_missing_secret(moto_endpoint: str) -> None:
    result = await run(aws_check("secretsmanager", moto_endpoint, secret_id=unique("nope")))
    assert not result.up and result.value is None
    assert result.error is not None and result.error.startswith("DescribeSecret: ResourceNotFoundException: ")


async def test_rotation_detail(fake_aws: FakeAws) -> None:
    # moto's RotateSecret runs the rotation Lambda (in Docker): the rotation fields come from
    # a local endpoint speaking Secrets Manager's JSON protocol instead.
    fake = fake_aws
    fake.reply("DescribeSecret", (200, {
        "ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:rotated-AbCdEf", "Name": "rotated",
        "RotationEnabled": True, "LastRotatedDate": 1_700_000_000, "LastChangedDate": 1_700_000_000,
        "NextRotationDate": 1_702_592_000, "CreatedDate": 1_600_000_000}))
    result = await run(aws_check("secretsmanager", fake.url, secret_id="rotated"),
                       FakeClock(start=1_700_000_000 + 10 * 86400))
    assert result.up and result.value == 10.0, result
    assert result.detail == {"rotation_enabled": True, "last_rotated": "2023-11-14T22:13:20Z",
                             "last_changed": "2023-11-14T22:13:20Z", "next_rotation": "2023-12-14T22:13:20Z"}
    assert fake.seen[0].body == {"SecretId": "rotated"} and fake.operations() == ["DescribeSecret"]
