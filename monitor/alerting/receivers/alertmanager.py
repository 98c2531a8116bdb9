"""Forward alerts to an Alertmanager (``POST /api/v2/alerts``), for sites that already route,
silence and page from one there."""

from __future__ import annotations

import json
from typing import Any

import httpx

from monitor.alerting.model import Alert, Notification
from monitor.alerting.receivers.base import DEFAULT_TIMEOUT, post, rfc3339


class AlertmanagerIntegration:
    """Posts every alert of the notification, firing and resolved.

    Resolved alerts are sent with ``endsAt`` so Alertmanager resolves them now instead of
    after its resolve_timeout. Firing ones go without it; Alertmanager then expects them
    re-sent periodically, which the outbox's repeat_interval does.
    """

    name = "alertmanager"

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url = url
        self.timeout = timeout

    @property
    def endpoint(self) -> str:
        return self.url.rstrip("/") + "/api/v2/alerts"

    async def notify(self, notification: Notification, client: httpx.AsyncClient) -> None:
        if not notification.alerts:
            return
        body = json.dumps(self.payload(notification), ensure_ascii=False).encode()
        await post(client, self.endpoint, content=body, timeout=self.timeout)

    def payload(self, notification: Notification) -> list[dict[str, Any]]:
        return [postable(a) for a in notification.alerts]


def postable(alert: Alert) -> dict[str, Any]:
    body: dict[str, Any] = {
        # Alertmanager rejects empty label values (400); in Prometheus an empty label is an
        # absent one, so dropping them changes nothing and keeps the alert deliverable.
        "labels": {k: v for k, v in alert.labels.items() if v != ""},
        "annotations": alert.annotations,
        "startsAt": rfc3339(alert.starts_at),
        "generatorURL": alert.generator_url,
    }
    if alert.ends_at is not None:
        body["endsAt"] = rfc3339(alert.ends_at)
    return body
