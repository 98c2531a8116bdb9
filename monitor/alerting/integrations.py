"""From the receivers section to the integrations that deliver: one target per config entry.

A receiver with a Slack and a PagerDuty config is two targets, each with its own queue in
the outbox, so Slack being down delays nothing PagerDuty should get.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.alerting.config import (
    AlertingConfig,
    AlertmanagerForwardConfig,
    Lenient,
    PagerDutyConfig,
    SlackConfig,
    WebhookConfig,
)
from monitor.alerting.receivers import (
    AlertmanagerIntegration,
    Integration,
    PagerDutyIntegration,
    SlackIntegration,
    WebhookIntegration,
)
from monitor.alerting.receivers.base import DEFAULT_TIMEOUT


@dataclass(frozen=True)
class Target:
    """One integration of one receiver, e.g. ``oncall/pagerduty_configs/0``."""

    name: str
    receiver: str
    integration: Integration

    @property
    def kind(self) -> str:
        """The integration's short name for metrics and logs: slack, pagerduty, webhook..."""
        return self.integration.name

    @property
    def timeout(self) -> float:
        return float(getattr(self.integration, "timeout", DEFAULT_TIMEOUT))

    @property
    def resends(self) -> bool:
        """Whether it must keep hearing about firing alerts (Alertmanager forwarding)."""
        return bool(getattr(self.integration, "resends", False))


def target_name(receiver: str, config_key: str, index: int) -> str:
    """``oncall/pagerduty_configs/0``: the name outbox entries are stored under."""
    return f"{receiver}/{config_key}/{index}"


def target_labels(name: str) -> tuple[str, str]:
    """(receiver, integration) from a target name, for an entry whose target this config no
    longer has: "oncall/webhook_configs/0" -> ("oncall", "webhook")."""
    receiver, _, config_key = name.rpartition("/")[0].rpartition("/")
    return receiver, config_key.removesuffix("_configs")


def build_targets(config: AlertingConfig) -> dict[str, list[Target]]:
    """Every receiver's targets, by receiver name (a receiver with no integration has none)."""
    out: dict[str, list[Target]] = {}
    for receiver in config.receivers:
        out[receiver.name] = [
            Target(target_name(receiver.name, key, index), receiver.name, build_integration(entry))
            for key, index, entry in receiver.integrations()
        ]
    return out


def build_integration(entry: Lenient) -> Integration:
    timeout = getattr(entry, "timeout", None) or DEFAULT_TIMEOUT
    if isinstance(entry, SlackConfig):
        return SlackIntegration(entry.api_url.get_secret_value(), channel=entry.channel,
                                send_resolved=entry.send_resolved, title=entry.title, text=entry.text,
                                timeout=timeout)
    if isinstance(entry, PagerDutyConfig):
        return PagerDutyIntegration(entry.routing_key.get_secret_value(), url=entry.url, severity=entry.severity,
                                    send_resolved=entry.send_resolved, timeout=timeout)
    if isinstance(entry, WebhookConfig):
        secret = entry.hmac_secret.get_secret_value() if entry.hmac_secret is not None else None
        return WebhookIntegration(entry.url.get_secret_value(), hmac_secret=secret,
                                  send_resolved=entry.send_resolved, max_alerts=entry.max_alerts, timeout=timeout)
    if isinstance(entry, AlertmanagerForwardConfig):
        return AlertmanagerIntegration(entry.url, timeout=timeout, send_resolved=entry.send_resolved)
    raise TypeError(f"no integration for {type(entry).__name__}")
