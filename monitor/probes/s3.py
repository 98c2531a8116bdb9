"""``kind: s3`` — a bucket is reachable, or an object in it exists and how old it is.

Without ``key``: ``HeadBucket``; value 1. With ``key``: ``HeadObject``; value: seconds since
the object was last modified (a nightly backup that stopped being written grows old),
detail: ``size`` (bytes), ``last_modified``. Down when the bucket or object is missing or
cannot be read (403). Only HEAD requests: nothing is downloaded.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import Field, field_validator

from monitor.aws.calls import call
from monitor.aws.model import AwsError
from monitor.core.results import Result
from monitor.probes.aws_common import AwsCheck, failed, stamp, time_left, when
from monitor.probes.base import ProbeEnv


class S3Check(AwsCheck):
    kind: Literal["s3"]
    bucket: str = Field(min_length=3, max_length=255, pattern=r"^[A-Za-z0-9._-]+$")
    key: str | None = Field(default=None, min_length=1, max_length=1024)

    @field_validator("key")
    @classmethod
    def _no_nul(cls, key: str | None) -> str | None:
        if key is not None and "\0" in key:
            raise ValueError("key must not contain NUL characters")
        return key


async def probe(check: S3Check, deadline: float, env: ProbeEnv) -> Result:
    started = time.perf_counter()
    target = check.target("s3")
    try:
        if check.key is None:
            await call(target, "head_bucket", time_left(deadline), Bucket=check.bucket)
            return Result(up=True, value=1.0, latency=time.perf_counter() - started)
        answer = await call(target, "head_object", time_left(deadline), Bucket=check.bucket, Key=check.key)
    except AwsError as err:
        return failed(_named(err, check), started)
    modified = when(answer.get("LastModified"))
    size = answer.get("ContentLength")
    detail: dict[str, Any] = {"size": size if isinstance(size, int) else None,
                              "last_modified": stamp(answer.get("LastModified"))}
    if modified is None:
        return Result.failed("malformed HeadObject answer: no Last-Modified", time.perf_counter() - started,
                             detail=detail)
    age = round(max(env.clock.time() - modified, 0.0), 3)
    return Result(up=True, value=age, latency=time.perf_counter() - started, detail=detail)


def _named(err: AwsError, check: S3Check) -> AwsError:
    # HEAD answers have no body, so AWS's error code is only the status: say what is missing.
    if err.code == "NotFound":
        if check.key is None:
            return AwsError("NoSuchBucket", f"bucket {check.bucket} does not exist", operation=err.operation,
                            permanent=True, status=err.status)
        return AwsError("NoSuchKey", f"no object {check.key} in bucket {check.bucket} (or no such bucket)",
                        operation=err.operation, permanent=True, status=err.status)
    if err.code == "AccessDenied" and err.message.startswith("HTTP 403"):
        return AwsError("AccessDenied", f"HTTP 403 on {'bucket ' + check.bucket if check.key is None else check.key}"
                        " (missing s3:ListBucket / s3:GetObject permission, or a bucket policy)",
                        operation=err.operation, permanent=True, status=err.status)
    return err
