"""The receiver registry: one module per integration, one table from its config key to (config
model, how to build the integration from it).

Each integration is a class with one ``notify()`` that either returns or raises
:class:`DeliveryError` marked permanent or temporary (healthchecks' transports). Adding one
touches two places: its module (config model, ``build``, integration class), and the table
below. The ``receivers:`` entry model is generated from the table
(``monitor.alerting.config.ReceiverConfig``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from monitor.alerting.receivers import alertmanager, email, pagerduty, slack, sns, webhook
from monitor.alerting.receivers.alertmanager import AlertmanagerIntegration
from monitor.alerting.receivers.base import DeliveryError, Integration, classify, parse_retry_after, safe_url
from monitor.alerting.receivers.options import Lenient
from monitor.alerting.receivers.pagerduty import PagerDutyIntegration
from monitor.alerting.receivers.slack import SlackIntegration
from monitor.alerting.receivers.sns import SnsIntegration
from monitor.alerting.receivers.webhook import WebhookIntegration, sign

C = TypeVar("C", bound=Lenient)


@dataclass(frozen=True)
class ReceiverKind:
    """One kind of integration: its config model, and the function that turns one validated
    entry of it into the integration that delivers."""

    model: type[Lenient]
    build: Callable[[Any], Integration]  # takes an instance of `model`, which a field cannot say

    @classmethod
    def of(cls, model: type[C], build: Callable[[C], Integration]) -> ReceiverKind:
        """The row for ``model``, with mypy checking that ``build`` takes exactly that model."""
        return cls(model, build)


# Table order is the order a receiver's integrations are listed (targets, warnings, notify-test).
RECEIVERS: dict[str, ReceiverKind] = {
    "slack_configs": ReceiverKind.of(slack.SlackConfig, slack.build),
    "pagerduty_configs": ReceiverKind.of(pagerduty.PagerDutyConfig, pagerduty.build),
    "webhook_configs": ReceiverKind.of(webhook.WebhookConfig, webhook.build),
    "alertmanager_configs": ReceiverKind.of(alertmanager.AlertmanagerForwardConfig, alertmanager.build),
    "sns_configs": ReceiverKind.of(sns.SnsConfig, sns.build),
    "email_configs": ReceiverKind.of(email.EmailConfig, email.build),
}

__all__ = [
    "RECEIVERS",
    "AlertmanagerIntegration",
    "DeliveryError",
    "Integration",
    "Lenient",
    "PagerDutyIntegration",
    "ReceiverKind",
    "SlackIntegration",
    "SnsIntegration",
    "WebhookIntegration",
    "classify",
    "parse_retry_after",
    "safe_url",
    "sign",
]
