"""What both sides of an AWS call know (docs/configuration.md, "AWS credentials"): where a
call goes (:class:`AwsTarget`) and how it failed (:class:`AwsError`). No botocore here: the
daemon's process holds these while boto3 itself lives in the AWS worker process
(``monitor.aws.worker``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from monitor.core.results import one_line

# Error codes AWS uses for "slow down" (botocore's retry handler's list plus S3's SlowDown).
THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException", "TransactionInProgressException",
    "RequestLimitExceeded", "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled",
    "SlowDown", "PriorRequestNotComplete", "EC2ThrottledException",
})  # fmt: skip
# 4xx codes that are not a final answer: the request may succeed as sent once credentials
# refresh, the clock is corrected or the service catches up.
_TRANSIENT_CLIENT_CODES = frozenset({
    "ExpiredToken", "ExpiredTokenException", "RequestExpired", "RequestTimeTooSkewed",
    "RequestTimeout", "RequestTimeoutException", "IDPCommunicationError", "InvalidIdentityToken",
})  # fmt: skip
# Codes of the daemon's own AWS machinery, not of AWS: the call was never answered because the
# worker process failed, so a check reports it as its own error, not as the target's failure.
WORKER_CODES = frozenset({"WorkerExited", "WorkerStart", "UnreadableAnswer"})
# AWS access key ids are not secrets, but they name a credential and have no place in an error.
_ACCESS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA|AGPA|ANPA|ANVA|APKA)[A-Z0-9]{12,}\b")
_STATUS_CODES = {301: "PermanentRedirect", 400: "BadRequest", 403: "AccessDenied", 404: "NotFound",
                 429: "TooManyRequests", 500: "InternalError", 502: "BadGateway", 503: "ServiceUnavailable",
                 504: "GatewayTimeout"}


@dataclass(frozen=True)
class AwsTarget:
    """Where a call goes: the client cache key (with the role)."""

    service: str  # botocore's name: "sqs", "cloudwatch", "sesv2", ...
    region: str
    endpoint_url: str | None = None  # another endpoint, e.g. a VPC endpoint or a local test double
    role_arn: str | None = None  # assumed through STS before the call
    # Instead of the default chain (the SNS receiver's sigv4): a named profile of the shared
    # config files, or static keys. Not in the repr, which must never show a key.
    profile: str | None = None
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)


class AwsError(Exception):
    """A call that gave no answer. ``str()`` is ``"<Operation>: <Code>: <message>"``, one line.

    ``throttled``: AWS asked to slow down (429 or a throttling code). ``permanent``: sending the
    same request again will not help (a 4xx that is not throttling, an expired token or a
    timeout; a bad parameter) — what a notification outbox needs to decide on a retry.
    """

    def __init__(self, code: str, message: str, *, operation: str = "", throttled: bool = False,
                 permanent: bool = False, status: int | None = None) -> None:
        self.code = code
        self.operation = operation
        self.message = _clean(message) or code
        self.throttled = throttled
        self.permanent = permanent
        self.status = status
        super().__init__(self.__str__())

    def __str__(self) -> str:
        prefix = f"{self.operation}: " if self.operation else ""
        return one_line(f"{prefix}{self.code}: {self.message}")

    def after(self, note: str) -> AwsError:
        """The same error with a note on how the call ended ("retried until the 5s timeout")."""
        return AwsError(self.code, f"{self.message} ({note})", operation=self.operation, throttled=self.throttled,
                        permanent=self.permanent, status=self.status)

    def fields(self) -> dict[str, Any]:
        """What crosses from the worker process: plain values, rebuilt by :meth:`from_fields`."""
        return {"code": self.code, "message": self.message, "operation": self.operation,
                "throttled": self.throttled, "permanent": self.permanent, "status": self.status}

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> AwsError:
        return cls(str(fields["code"]), str(fields["message"]), operation=str(fields.get("operation", "")),
                   throttled=bool(fields.get("throttled")), permanent=bool(fields.get("permanent")),
                   status=fields.get("status"))


def error_from_dict(error: dict[str, Any], status: Any, operation: str) -> AwsError:
    """An AWS error answer (``{"Code", "Message"}`` and the HTTP status) as an :class:`AwsError`."""
    status = status if isinstance(status, int) else None
    code = str(error.get("Code") or "")
    if not code or code.isdigit():
        # HEAD answers have no body: S3's HeadObject/HeadBucket give only the status.
        code = _STATUS_CODES.get(status or 0, f"HTTP{status}" if status else "UnknownError")
    message = str(error.get("Message") or error.get("message") or "").strip()
    if message.startswith("<"):
        message = ""  # an HTML error page (a proxy, a wrong endpoint), not an AWS error
    if not message and status:
        message = f"HTTP {status}"
    throttled = code in THROTTLING_CODES or status == 429
    permanent = (status is not None and 400 <= status < 500 and not throttled
                 and code not in _TRANSIENT_CLIENT_CODES)
    return AwsError(code, message, operation=operation, throttled=throttled, permanent=permanent, status=status)


def operation_name(method: str) -> str:
    """boto3's ``get_queue_attributes`` as AWS names it: ``GetQueueAttributes``."""
    return "".join(part.capitalize() for part in method.split("_"))


def seconds(value: float) -> str:
    return f"{round(value, 1):g}s"


def _clean(text: str) -> str:
    return one_line(_ACCESS_KEY_ID.sub("***", str(text)), 300)
