"""Amazon SNS: one ``Publish`` per notification, to a topic, a platform endpoint
(``target_arn``) or a phone number (SMS), with Alertmanager's ``sns_configs`` fields.

The call goes through the shared AWS helper (``monitor.aws.calls``: one bounded deadline, to
the AWS worker process with its cached clients and assumed roles), which starts on the first
call, so a config without an SNS receiver never loads boto3 (docs/architecture.md, "The AWS
worker").
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from monitor.alerting.model import Alert, Notification
from monitor.alerting.receivers.base import (
    DEFAULT_TIMEOUT,
    DeliveryError,
    encode,
    format_value,
    group_title,
    only_wanted,
    scrub,
)
from monitor.alerting.receivers.options import COMMON_IGNORED, Lenient, Url
from monitor.aws.calls import call
from monitor.aws.model import AwsError, AwsTarget
from monitor.core.durations import Duration
from monitor.core.model import Model
from monitor.core.results import one_line
from monitor.core.timestamps import rfc3339
from monitor.probes.base import loopback_host

# SNS's documented limits (docs/notifications.md, "Size limits"). A Publish over any of them
# is refused with InvalidParameter, a permanent error, so the notification would be lost:
# everything is cut to fit instead, and a cut message says so.
SUBJECT_LIMIT = 99  # "less than 100 characters", no line breaks or control characters
# The whole message, attributes included, is at most 256 KiB of UTF-8.
MESSAGE_BYTES = 256 * 1024
# Alertmanager's bound for an SMS (`phone_number`): longer texts are split into many paid
# segments, or refused.
SMS_CHARACTERS = 1600
TRUNCATED_MARK = "\n…[truncated to fit SNS's message limit]"
# What SNS accepts as a message attribute name.
_ATTRIBUTE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,256}$")
_ARN_REGION = re.compile(r"^arn:aws[a-z-]*:sns:([a-z0-9-]+):")
_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]*:\d{12}:\S+$")
_E164 = re.compile(r"^\+[1-9]\d{1,14}$")

# AWS error codes whose retry cannot succeed: the request itself, the topic or the credentials
# are wrong. Everything else that is not in TEMPORARY_CODES falls back to the helper's own
# judgement (AwsError.permanent).
PERMANENT_CODES = frozenset({
    "InvalidParameter", "InvalidParameterValue", "ValidationError", "NotFound",
    "AuthorizationError", "AccessDenied", "AccessDeniedException", "InvalidClientTokenId",
    "UnrecognizedClientException", "SignatureDoesNotMatch", "InvalidSecurity", "OptInRequired",
    "EndpointDisabled", "PlatformApplicationDisabled", "KMSDisabled", "KMSNotFound",
    "KMSInvalidState", "KMSAccessDenied", "KMSOptInRequired", "InvalidAction",
})  # fmt: skip
TEMPORARY_CODES = frozenset({
    "Throttled", "Throttling", "ThrottlingException", "ThrottledException", "TooManyRequestsException",
    "RequestLimitExceeded", "KMSThrottling", "InternalError", "InternalFailure", "ServiceUnavailable",
    "RequestTimeout", "RequestTimeoutException", "ExpiredToken", "ExpiredTokenException", "RequestExpired",
})  # fmt: skip


class SigV4Config(Model):
    """Alertmanager's ``sigv4`` block: where and as whom to sign. Without keys, profile or
    role the default credential chain applies (environment, shared files, container and
    instance roles)."""

    region: str | None = None
    access_key: SecretStr | None = None
    secret_key: SecretStr | None = None
    profile: str | None = None
    role_arn: str | None = None

    @model_validator(mode="after")
    def _keys_in_pairs(self) -> SigV4Config:
        if (self.access_key is None) != (self.secret_key is None):
            raise ValueError("sigv4: access_key and secret_key go together")
        if self.access_key is not None and self.profile is not None:
            raise ValueError("sigv4: give access_key/secret_key or profile, not both")
        return self


class SnsConfig(Lenient):
    """One ``sns_configs`` entry as written (Alertmanager's fields)."""

    # Requests go through boto3, not the shared HTTP client: `http_config` cannot apply.
    ignored_options: ClassVar[frozenset[str]] = COMMON_IGNORED | {"http_config"}

    api_url: Url | None = None  # the SNS endpoint; None: AWS's for the region
    sigv4: SigV4Config = Field(default_factory=SigV4Config)
    topic_arn: str | None = None
    target_arn: str | None = None
    phone_number: str | None = None
    subject: str | None = None  # None: the group title (default_content)
    message: str | None = None  # None: the alert list (default_content)
    attributes: dict[str, str] = Field(default_factory=dict)
    send_resolved: bool = True
    timeout: Duration | None = None

    @field_validator("topic_arn", "target_arn")
    @classmethod
    def _arn(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Checked at load: a mistyped ARN would otherwise fail every notification for good.
        # A template ("{{ ... }}") is left for the renderer.
        if value is not None and "{{" not in value and not _ARN.match(value):
            raise ValueError(f"{info.field_name} must be an SNS ARN (arn:aws:sns:REGION:ACCOUNT:NAME), "
                             f"got {one_line(value, 200)!r}")
        return value

    @field_validator("phone_number")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value is not None and "{{" not in value and not _E164.match(value):
            raise ValueError("phone_number must be in E.164 form, e.g. +4915112345678")
        return value

    @field_validator("api_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        # Requests carry replayable signatures (and a session token): in clear text only to
        # this machine, as for the AWS check kinds' endpoint_url.
        if value is not None and value.startswith("http://"):
            host = urlsplit(value).hostname or ""
            if not loopback_host(host):
                raise ValueError("api_url must be https:// (plain http:// only to a loopback address)")
        return value

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, value: dict[str, str]) -> dict[str, str]:
        for name, item in value.items():
            if (not _ATTRIBUTE_NAME.match(name) or name.lower().startswith(("aws.", "amazon."))
                    or ".." in name or name.startswith(".") or name.endswith(".")):
                raise ValueError(f"attributes: {name!r} is not a valid SNS message attribute name "
                                 "(letters, digits, _ - . ; no leading/trailing/double dot; not AWS. or Amazon.)")
            if not item:
                raise ValueError(f"attributes: {name!r} has an empty value, which SNS refuses")
        return value

    @model_validator(mode="after")
    def _one_destination(self) -> SnsConfig:
        given = [n for n in ("topic_arn", "target_arn", "phone_number") if getattr(self, n)]
        if len(given) != 1:
            raise ValueError("give exactly one of topic_arn, target_arn, phone_number"
                             + (f" (got {', '.join(given)})" if given else ""))
        if self.region is None:
            raise ValueError("sigv4.region is required: the ARN names no region and AWS_REGION is not set")
        return self

    @property
    def region(self) -> str | None:
        """sigv4.region, else the ARN's, else the environment's (AWS_REGION, AWS_DEFAULT_REGION)."""
        if self.sigv4.region:
            return self.sigv4.region
        arn = self.topic_arn or self.target_arn or ""
        if found := _ARN_REGION.match(arn):
            return found.group(1)
        return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


def build(config: SnsConfig) -> SnsIntegration:
    """The integration for one entry; the keys leave their SecretStr only here."""
    sigv4 = config.sigv4
    return SnsIntegration(
        region=config.region or "",
        endpoint_url=config.api_url,
        role_arn=sigv4.role_arn,
        access_key=sigv4.access_key.get_secret_value() if sigv4.access_key else None,
        secret_key=sigv4.secret_key.get_secret_value() if sigv4.secret_key else None,
        profile=sigv4.profile,
        topic_arn=config.topic_arn,
        target_arn=config.target_arn,
        phone_number=config.phone_number,
        subject=config.subject,
        message=config.message,
        attributes=config.attributes,
        send_resolved=config.send_resolved,
        timeout=config.timeout or DEFAULT_TIMEOUT,
    )


class SnsIntegration:
    """One ``sns_configs`` entry. ``subject`` and ``message`` are literal text (rendered
    upstream if templated); without them, :func:`default_content` writes both."""

    name = "sns"
    resends = False

    def __init__(
        self,
        *,
        region: str,
        endpoint_url: str | None = None,
        role_arn: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        profile: str | None = None,
        topic_arn: str | None = None,
        target_arn: str | None = None,
        phone_number: str | None = None,
        subject: str | None = None,
        message: str | None = None,
        attributes: Mapping[str, str] | None = None,
        send_resolved: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.region = region
        self.endpoint_url = endpoint_url
        self.role_arn = role_arn
        self.access_key = access_key
        self.secret_key = secret_key
        self.profile = profile
        self.topic_arn = topic_arn
        self.target_arn = target_arn
        self.phone_number = phone_number
        self.subject = subject
        self.message = message
        self.attributes = dict(attributes or {})
        self.send_resolved = send_resolved
        self.timeout = timeout

    @property
    def sms(self) -> bool:
        return bool(self.phone_number)

    async def notify(self, notification: Notification, client: httpx.AsyncClient) -> None:
        wanted = only_wanted(notification, self.send_resolved)
        if wanted is None:
            return
        params = self.publish_params(wanted)
        try:
            await call(self.target(), "publish", self.timeout, **params)
        except AwsError as err:
            raise self._delivery_error(err.code, err.message, permanent=err.permanent) from None

    def target(self) -> AwsTarget:
        return AwsTarget(service="sns", region=self.region, endpoint_url=self.endpoint_url, role_arn=self.role_arn,
                         profile=self.profile, access_key=self.access_key, secret_key=self.secret_key)

    def publish_params(self, notification: Notification) -> dict[str, Any]:
        """The Publish request for one notification, inside every SNS limit."""
        subject, message = self._content(notification)
        attributes = dict(self.attributes)
        message, cut = fit_message(message, sms=self.sms, reserved=_attributes_bytes(attributes) + 64)
        if cut:
            attributes["truncated"] = "true"  # as Alertmanager marks a cut message
        params: dict[str, Any] = {"Message": message}
        if self.topic_arn:
            params["TopicArn"] = self.topic_arn
            if self.topic_arn.endswith(".fifo"):
                # A FIFO topic needs both. One group per alert group keeps its messages in
                # order; the dedup id is the content's, so an outbox retry of the same
                # notification is dropped by SNS while the next notification is not.
                params["MessageGroupId"] = hashlib.sha256(notification.group_key.encode()).hexdigest()
                params["MessageDeduplicationId"] = hashlib.sha256(
                    encode(notification.to_record(), compact=True)).hexdigest()
        elif self.target_arn:
            params["TargetArn"] = self.target_arn
        else:
            params["PhoneNumber"] = self.phone_number
        subject = fit_subject(subject)
        if subject and not self.sms:  # SMS has no subject
            params["Subject"] = subject
        if attributes:
            params["MessageAttributes"] = {
                name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()
            }
        return params

    def _content(self, notification: Notification) -> tuple[str, str]:
        subject, message = default_content(notification)
        if self.subject is not None:
            subject = self.subject
        if self.message is not None and self.message.strip():
            message = self.message
        return subject, message

    def _delivery_error(self, code: str, message: str, *, permanent: bool) -> DeliveryError:
        if code in PERMANENT_CODES:
            permanent = True
        elif code in TEMPORARY_CODES:
            permanent = False
        secrets = [s for s in (self.secret_key, self.access_key) if s]
        text = scrub(f"SNS Publish failed: {code}: {message}" if message else f"SNS Publish failed: {code}", secrets)
        return DeliveryError(text, permanent=permanent)


# ---- content -------------------------------------------------------------------------------------

def default_content(notification: Notification) -> tuple[str, str]:
    """(subject, message) when the config gives none: Alertmanager's ``sns.default.subject``
    (the group title) and ``sns.default.message`` (common annotations, then every alert's
    labels and annotations, firing first) as plain text.

    The one place the default wording lives, so a template engine can take it over.
    """
    title = group_title(notification)
    common = notification.common_labels
    extra = [common[k] for k in sorted(common) if k not in notification.group_labels and k != "alertname"]
    subject = f"{title} ({' '.join(extra)})" if extra and len(notification.alerts) > 1 else title
    lines = [title]
    annotations = notification.common_annotations
    for key in ("summary", "description"):
        if annotations.get(key):
            lines.append(annotations[key])
    firing = [a for a in notification.alerts if a.status == "firing"]
    resolved = [a for a in notification.alerts if a.status == "resolved"]
    for heading, alerts in (("Alerts Firing:", firing), ("Alerts Resolved:", resolved)):
        if alerts:
            lines += ["", heading]
            for alert in alerts:
                lines += _alert_lines(alert)
    if notification.truncated_alerts:
        lines += ["", f"…and {notification.truncated_alerts} more alerts not listed"]
    if notification.external_url:
        lines += ["", f"Monitor: {notification.external_url}"]
    return subject, "\n".join(lines)


def _alert_lines(alert: Alert) -> list[str]:
    lines = ["Labels:"]
    lines += [f" - {k} = {alert.labels[k]}" for k in sorted(alert.labels)]
    if alert.annotations:
        lines.append("Annotations:")
        lines += [f" - {k} = {alert.annotations[k]}" for k in sorted(alert.annotations)]
    if alert.value is not None:
        lines.append(f"Value: {format_value(alert.value)}")
    lines.append(f"Started: {rfc3339(alert.starts_at)}")
    if alert.ends_at is not None:
        lines.append(f"Ended: {rfc3339(alert.ends_at)}")
    if alert.generator_url:
        lines.append(f"Source: {alert.generator_url}")
    lines.append("")
    return lines


# ---- limits --------------------------------------------------------------------------------------

def fit_subject(subject: str) -> str:
    """One line, no control characters, at most SUBJECT_LIMIT characters (cut with "…").
    Empty when nothing printable is left: SNS refuses an empty Subject, so none is sent."""
    flat = "".join(" " if unicodedata.category(c).startswith("C") else c for c in subject)
    flat = " ".join(flat.split())
    return flat if len(flat) <= SUBJECT_LIMIT else flat[: SUBJECT_LIMIT - 1] + "…"


def fit_message(message: str, *, sms: bool, reserved: int = 0) -> tuple[str, bool]:
    """The message inside SNS's limit, and whether it was cut (then it ends with TRUNCATED_MARK).

    Measured in UTF-8 bytes for topics and endpoints (256 KiB less ``reserved`` for the
    attributes), in characters for SMS; never splits a character. Invalid UTF-8 (a lone
    surrogate) is replaced, as SNS refuses it.
    """
    message = message.encode("utf-8", "replace").decode("utf-8")
    if not message.strip():
        message = "(empty message)"  # SNS refuses an empty Message
    if sms:
        if len(message) <= SMS_CHARACTERS:
            return message, False
        return message[: SMS_CHARACTERS - len(TRUNCATED_MARK)] + TRUNCATED_MARK, True
    limit = MESSAGE_BYTES - reserved
    data = message.encode()
    if len(data) <= limit:
        return message, False
    room = limit - len(TRUNCATED_MARK.encode())
    kept = data[:room].decode("utf-8", "ignore")  # drops a character cut in half
    return kept + TRUNCATED_MARK, True


def _attributes_bytes(attributes: Mapping[str, str]) -> int:
    # SNS counts names, types and values of attributes against the message size.
    return sum(len(k.encode()) + len(v.encode()) + len("String") for k, v in attributes.items()) + len(
        "truncated" + "true" + "String")
