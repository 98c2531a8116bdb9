"""Receivers: one class per integration, each with one ``notify()`` that either returns or
raises :class:`DeliveryError` marked permanent or temporary (healthchecks' transports)."""

from monitor.alerting.receivers.alertmanager import AlertmanagerIntegration
from monitor.alerting.receivers.base import DeliveryError, Integration, classify, parse_retry_after, safe_url
from monitor.alerting.receivers.pagerduty import PagerDutyIntegration
from monitor.alerting.receivers.slack import SlackIntegration
from monitor.alerting.receivers.webhook import WebhookIntegration, sign

__all__ = [
    "AlertmanagerIntegration",
    "DeliveryError",
    "Integration",
    "PagerDutyIntegration",
    "SlackIntegration",
    "WebhookIntegration",
    "classify",
    "parse_retry_after",
    "safe_url",
    "sign",
]
