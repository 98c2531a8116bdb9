"""``kind: secretsmanager`` — a secret exists, is not being deleted, and (with ``read``) can be read.

value: days since the secret last changed (``LastChangedDate``, else ``CreatedDate``), so a
rule can alert on a secret that should rotate and has not. detail: ``rotation_enabled``,
``last_rotated``, ``last_changed``, ``next_rotation``. One ``DescribeSecret``; with
``read: true`` also a ``GetSecretValue``, the way an application reads it (this catches a
KMS key policy or a resource policy that shuts the application out, which DescribeSecret
does not). The value is dropped inside the AWS worker process that received it
(``monitor.aws.calls.call``'s ``keep``): it never reaches the daemon's process, a result, a
log line or the store.

Down when the secret is missing, scheduled for deletion, or (with ``read``) unreadable.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import Field

from monitor.aws.calls import call
from monitor.aws.model import AwsError
from monitor.core.results import Result
from monitor.probes.aws_common import AwsCheck, failed, stamp, time_left, when
from monitor.probes.base import ProbeEnv

DAY = 86400.0
# What of a GetSecretValue answer may leave the worker thread: not SecretString/SecretBinary.
_READ_KEEP = ("ARN", "Name", "VersionId", "CreatedDate")


class SecretsmanagerCheck(AwsCheck):
    kind: Literal["secretsmanager"]
    secret_id: str = Field(min_length=1, max_length=2048)  # the secret's name or ARN
    read: bool = False


async def probe(check: SecretsmanagerCheck, deadline: float, env: ProbeEnv) -> Result:
    started = time.perf_counter()
    target = check.target("secretsmanager")
    try:
        described = await call(target, "describe_secret", time_left(deadline), SecretId=check.secret_id)
    except AwsError as err:
        return failed(err, started)
    changed = when(described.get("LastChangedDate")) or when(described.get("CreatedDate"))
    detail: dict[str, Any] = {
        "rotation_enabled": bool(described.get("RotationEnabled", False)),
        "last_rotated": stamp(described.get("LastRotatedDate")),
        "last_changed": stamp(described.get("LastChangedDate") or described.get("CreatedDate")),
        "next_rotation": stamp(described.get("NextRotationDate")),
    }
    value = None if changed is None else round(max(env.clock.time() - changed, 0.0) / DAY, 4)
    deleted = described.get("DeletedDate")
    if deleted is not None:
        return Result.failed(f"secret {check.secret_id} is scheduled for deletion (deleted {stamp(deleted)})",
                             time.perf_counter() - started, detail=detail, value=value)
    if check.read:
        try:
            await call(target, "get_secret_value", time_left(deadline), keep=_READ_KEEP, SecretId=check.secret_id)
        except AwsError as err:
            return failed(err, started, detail)
    return Result(up=True, value=value, latency=time.perf_counter() - started, detail=detail)
