"""Forward alerts to an Alertmanager (``POST /api/v2/alerts``), for sites that already route,
silence and page from one there."""

from __future__ import annotations

from typing import Any, ClassVar

import httpx

from monitor.core.timestamps import rfc3339
from monitor.alerting.model import Alert, Notification
from monitor.alerting.receivers.base import DEFAULT_TIMEOUT, RESEND_INTERVAL, encode, only_wanted, post
from monitor.alerting.receivers.http_options import HttpConfig, HttpReceiver
from monitor.alerting.receivers.options import COMMON_IGNORED, Url
from monitor.core.clock import Clock, SystemClock
from monitor.core.durations import Duration

# Prometheus marks each firing alert it sends valid for four resend periods: an
# Alertmanager that stops hearing about an alert (because this daemon died) resolves it by
# itself a few minutes later instead of paging forever.
VALID_FOR = 4 * RESEND_INTERVAL


class AlertmanagerForwardConfig(HttpReceiver):
    """One ``alertmanager_configs`` entry: forward alerts to an Alertmanager (its
    ``/api/v2/alerts``). Our extension; Alertmanager itself has no such receiver."""

    ignored_options: ClassVar[frozenset[str]] = COMMON_IGNORED

    url: Url
    send_resolved: bool = True
    timeout: Duration | None = None


def build(config: AlertmanagerForwardConfig) -> AlertmanagerIntegration:
    """The integration for one entry (nothing here is a secret)."""
    return AlertmanagerIntegration(config.url, timeout=config.timeout or DEFAULT_TIMEOUT,
                                   send_resolved=config.send_resolved, http=config.http_config)


class AlertmanagerIntegration:
    """Posts every alert of the notification, firing and resolved, as Prometheus does.

    Resolved alerts carry their real ``endsAt`` so Alertmanager resolves them now. Firing
    ones carry ``endsAt`` = send time + VALID_FOR; the notifier re-sends them every
    RESEND_INTERVAL while they fire (``resends = True``).
    """

    name = "alertmanager"
    resends = True

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT, send_resolved: bool = True,
                 clock: Clock | None = None, http: HttpConfig | None = None) -> None:
        self.url = url
        self.http = http
        self.timeout = timeout
        self.send_resolved = send_resolved
        self._clock = clock or SystemClock()

    @property
    def endpoint(self) -> str:
        return self.url.rstrip("/") + "/api/v2/alerts"

    async def notify(self, notification: Notification, client: httpx.AsyncClient) -> None:
        wanted = only_wanted(notification, self.send_resolved)
        if wanted is None:
            return
        body = encode(self.payload(wanted))
        await post(client, self.endpoint, content=body, timeout=self.timeout, http=self.http)

    def payload(self, notification: Notification) -> list[dict[str, Any]]:
        valid_until = self._clock.time() + VALID_FOR
        return [postable(a, valid_until) for a in notification.alerts]


def postable(alert: Alert, valid_until: float) -> dict[str, Any]:
    body: dict[str, Any] = {
        # Alertmanager rejects empty label values (400); in Prometheus an empty label is an
        # absent one, so dropping them changes nothing and keeps the alert deliverable.
        "labels": {k: v for k, v in alert.labels.items() if v != ""},
        "annotations": alert.annotations,
        "startsAt": rfc3339(alert.starts_at),
        "generatorURL": alert.generator_url,
    }
    body["endsAt"] = rfc3339(alert.ends_at if alert.ends_at is not None else valid_until)
    return body
