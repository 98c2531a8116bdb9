"""``kind: s3`` against moto in server mode: a bucket, an object's age and size, then both removed."""

from __future__ import annotations

from monitor.aws.calls import call
from monitor.aws.model import AwsTarget
from monitor.core.clock import FakeClock
from monitor.core.results import Outcome

from tests.aws_checks import REGION, aws_check, run, unique


async def test_bucket_then_object_then_gone(moto_endpoint: str) -> None:
    s3 = AwsTarget("s3", REGION, moto_endpoint)
    bucket = unique("backups")
    await call(s3, "create_bucket", 30, Bucket=bucket)
    bucket_check = aws_check("s3", moto_endpoint, bucket=bucket)
    object_check = aws_check("s3", moto_endpoint, bucket=bucket, key="nightly/db.dump")

    reachable = await run(bucket_check)
    assert reachable.up and reachable.value == 1, reachable

    missing = await run(object_check)
    assert not missing.up and missing.outcome is Outcome.FAILURE
    assert missing.error == f"HeadObject: NoSuchKey: no object nightly/db.dump in bucket {bucket} (or no such bucket)"

    await call(s3, "put_object", 30, Bucket=bucket, Key="nightly/db.dump", Body=b"x" * 1234)
    head = await call(s3, "head_object", 30, Bucket=bucket, Key="nightly/db.dump")
    written = head["LastModified"].timestamp()
    clock = FakeClock(start=written + 3600)  # an hour after the write
    fresh = await run(object_check, clock)
    assert fresh.up and fresh.value == 3600.0, fresh
    assert fresh.detail["size"] == 1234 and fresh.detail["last_modified"].endswith("Z"), fresh.detail
    clock.advance(86400)
    assert (await run(object_check, clock)).value == 90000.0

    await call(s3, "delete_object", 30, Bucket=bucket, Key="nightly/db.dump")
    deleted = await run(object_check)
    assert not deleted.up and deleted.error is not None and "NoSuchKey" in deleted.error

    await call(s3, "delete_bucket", 30, Bucket=bucket)
    gone = await run(bucket_check)
    assert not gone.up and gone.error == f"HeadBucket: NoSuchBucket: bucket {bucket} does not exist", gone
