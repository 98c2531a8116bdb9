"""Generic webhook: Alertmanager's webhook payload, version "4", so existing Alertmanager
webhook consumers work unchanged; optionally signed with HMAC-SHA256 over the body bytes."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, ClassVar

import httpx
from pydantic import Field, SecretStr, field_validator, model_validator

from monitor.core.timestamps import rfc3339
from monitor.alerting.model import Alert, Notification
from monitor.alerting.receivers.base import DEFAULT_TIMEOUT, ZERO_TIME, DeliveryError, encode, only_wanted, post
from monitor.alerting.receivers.http_options import (
    CredentialError,
    HttpConfig,
    HttpReceiver,
    read_secret_file,
    readable_file,
)
from monitor.alerting.receivers.options import COMMON_IGNORED, SecretUrl
from monitor.core.durations import Duration

SIGNATURE_HEADER = "X-Monitor-Signature"


def sign(secret: str, body: bytes) -> str:
    """The header value a receiver recomputes: ``sha256=<hex HMAC-SHA256(secret, body)>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookConfig(HttpReceiver):
    """One ``webhook_configs`` entry as written: Alertmanager's generic webhook (payload
    version 4), optionally HMAC-signed."""

    ignored_options: ClassVar[frozenset[str]] = COMMON_IGNORED

    url: SecretUrl | None = None  # a secret, as it often embeds a token (docs/configuration.md)
    url_file: str | None = None
    hmac_secret: SecretStr | None = None
    send_resolved: bool = True
    max_alerts: int = Field(default=0, ge=0)  # 0: no limit, as in Alertmanager
    timeout: Duration | None = None

    _file = field_validator("url_file")(readable_file)

    @model_validator(mode="after")
    def _one_url(self) -> WebhookConfig:
        if (self.url is None) == (self.url_file is None):
            raise ValueError("exactly one of url and url_file must be set")
        return self


def build(config: WebhookConfig) -> WebhookIntegration:
    """The integration for one entry; the URL and HMAC key leave their SecretStr only here."""
    secret = config.hmac_secret.get_secret_value() if config.hmac_secret is not None else None
    url = config.url.get_secret_value() if config.url is not None else ""
    return WebhookIntegration(url, hmac_secret=secret, send_resolved=config.send_resolved,
                              max_alerts=config.max_alerts, timeout=config.timeout or DEFAULT_TIMEOUT,
                              url_file=config.url_file, http=config.http_config)


class WebhookIntegration:
    """One ``webhook_configs`` entry. ``max_alerts`` > 0 caps ``alerts[]`` (the rest are counted
    in ``truncatedAlerts``), as Alertmanager's option of the same name."""

    name = "webhook"
    resends = False

    def __init__(
        self,
        url: str,
        hmac_secret: str | None = None,
        send_resolved: bool = True,
        max_alerts: int = 0,
        timeout: float = DEFAULT_TIMEOUT,
        url_file: str | None = None,
        http: HttpConfig | None = None,
    ) -> None:
        self.url = url
        self.url_file = url_file  # read at every send
        self.http = http
        self.hmac_secret = hmac_secret
        self.send_resolved = send_resolved
        self.max_alerts = max_alerts
        self.timeout = timeout

    async def notify(self, notification: Notification, client: httpx.AsyncClient) -> None:
        wanted = only_wanted(notification, self.send_resolved)
        if wanted is None:
            return
        # Serialise once and sign those exact bytes: a receiver verifies what arrived, and
        # any re-encoding between signing and sending (key order, spacing) would break it.
        body = encode(self.payload(wanted), compact=True)
        headers = {SIGNATURE_HEADER: sign(self.hmac_secret, body)} if self.hmac_secret else {}
        secrets = [self.hmac_secret] if self.hmac_secret else []
        try:
            url = read_secret_file(self.url_file, "url_file") if self.url_file else self.url
        except CredentialError as err:
            raise DeliveryError(str(err), permanent=False) from None
        await post(client, url, content=body, headers=headers, secrets=secrets, timeout=self.timeout, http=self.http)

    def payload(self, notification: Notification) -> dict[str, Any]:
        alerts = notification.alerts
        truncated = notification.truncated_alerts
        if self.max_alerts > 0 and len(alerts) > self.max_alerts:
            truncated += len(alerts) - self.max_alerts
            alerts = alerts[: self.max_alerts]
        # status/commonLabels/commonAnnotations describe the whole group (docs/notifications.md).
        # Alertmanager computes them from the kept alerts only, so there a cut that keeps only
        # resolved alerts reports a still-firing group as "resolved"; ours cannot.
        return {
            "version": "4",
            "groupKey": notification.group_key,
            "truncatedAlerts": truncated,
            "status": notification.status,
            "receiver": notification.receiver,
            "groupLabels": notification.group_labels,
            "commonLabels": notification.common_labels,
            "commonAnnotations": notification.common_annotations,
            "externalURL": notification.external_url,
            "alerts": [alert_v4(a) for a in alerts],
        }


def alert_v4(alert: Alert) -> dict[str, Any]:
    return {
        "status": alert.status,
        "labels": alert.labels,
        "annotations": alert.annotations,
        "startsAt": rfc3339(alert.starts_at),
        "endsAt": rfc3339(alert.ends_at) if alert.ends_at is not None else ZERO_TIME,
        "generatorURL": alert.generator_url,
        "fingerprint": alert.fingerprint,
    }
