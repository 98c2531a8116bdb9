"""What the AWS kinds share: the ``region``/``endpoint_url``/``role_arn`` fields, the time a
call may take, and turning an :class:`AwsError` into a result (docs/configuration.md, "AWS
credentials"). The calls themselves go through ``monitor.aws.calls`` to the AWS worker
process, which imports boto3; the daemon's own process never does.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

from pydantic import field_validator
from yarl import URL

from monitor.aws.model import WORKER_CODES, AwsError, AwsTarget
from monitor.core.results import Outcome, Result, one_line
from monitor.core.timestamps import rfc3339
from monitor.probes.base import CheckBase, loopback_host

# us-east-1, eu-central-2, us-gov-west-1, cn-north-1, us-isob-east-1...
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
# Left for the probe after the call's own bound, so that the call reports its own error
# (the AWS error code, what it waited for) before the runner's deadline cuts the run off.
_MARGIN = 0.1


class AwsCheck(CheckBase):
    """Fields every AWS kind has."""

    region: str
    endpoint_url: str | None = None
    role_arn: str | None = None

    @field_validator("region")
    @classmethod
    def _region(cls, region: str) -> str:
        if not _REGION.fullmatch(region):
            raise ValueError(f"region must be an AWS region such as us-east-1, got {one_line(region, 80)!r}")
        return region

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, endpoint: str | None) -> str | None:
        if endpoint is None:
            return None
        try:
            url = URL(endpoint)
        except (ValueError, TypeError):
            raise ValueError(f"invalid endpoint_url {one_line(endpoint, 200)!r}") from None
        if url.scheme not in ("http", "https") or not url.host or url.user or url.query_string or url.fragment:
            raise ValueError("endpoint_url must be an http(s) URL with a host and no credentials, query or fragment")
        # Requests carry a session token and replayable signatures: in clear text only to
        # this machine (a local test double).
        if url.scheme == "http" and not loopback_host(url.host):
            raise ValueError("endpoint_url must be https:// (plain http:// only to a loopback address)")
        return endpoint.rstrip("/")

    @field_validator("role_arn")
    @classmethod
    def _role(cls, role_arn: str | None) -> str | None:
        if role_arn is not None and not _ROLE_ARN.fullmatch(role_arn):
            raise ValueError(f"role_arn must be an IAM role ARN (arn:aws:iam::<account>:role/<name>), "
                             f"got {one_line(role_arn, 200)!r}")
        return role_arn

    def target(self, service: str) -> AwsTarget:
        return AwsTarget(service=service, region=self.region, endpoint_url=self.endpoint_url, role_arn=self.role_arn)


def time_left(deadline: float) -> float:
    """Seconds one call may take: what is left of the run, less a small margin."""
    left = deadline - time.monotonic()
    return max(left - min(_MARGIN, left / 10), 0.0)


def failed(err: AwsError, started: float, detail: dict[str, Any] | None = None) -> Result:
    """The result of a run whose call failed: its one-line error names the AWS error code."""
    latency = time.perf_counter() - started
    if err.code == "Timeout":
        return Result(up=False, error=str(err), latency=latency, outcome=Outcome.TIMEOUT, detail=detail or {})
    if err.code in WORKER_CODES:  # the daemon's AWS worker failed, not the target
        return Result(up=False, error=str(err), latency=latency, outcome=Outcome.ERROR, detail=detail or {})
    return Result.failed(str(err), latency, detail=detail)


def when(value: Any) -> float | None:
    """Unix seconds of a timestamp botocore parsed (a datetime), or None."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return None


def stamp(value: Any) -> str | None:
    """A botocore timestamp as RFC 3339, or None."""
    seconds = when(value)
    return None if seconds is None else rfc3339(seconds)
