"""From the receivers section to the integrations that deliver: one target per config entry.

A receiver with a Slack and a PagerDuty config is two targets, each with its own queue in
the outbox, so Slack being down delays nothing PagerDuty should get.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.alerting.config import AlertingConfig
from monitor.alerting.receivers import RECEIVERS, Integration, Lenient
from monitor.alerting.templating import TemplateSet


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
        return self.integration.timeout

    @property
    def resends(self) -> bool:
        """Whether it must keep hearing about firing alerts (Alertmanager forwarding)."""
        return self.integration.resends


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
            Target(target_name(receiver.name, key, index), receiver.name,
                   build_integration(key, entry, config.templates))
            for key, index, entry in receiver.integrations()
        ]
    return out


def build_integration(config_key: str, entry: Lenient, templates: TemplateSet | None = None) -> Integration:
    """The integration for one entry of ``config_key`` (``slack_configs``...), built by its module.

    An integration with templated fields has a ``templates`` attribute: it gets the config's
    template set (the defaults and the ``templates:`` files) to render them with.
    """
    integration = RECEIVERS[config_key].build(entry)
    if templates is not None and hasattr(integration, "templates"):
        setattr(integration, "templates", templates)  # noqa: B010 - not part of the Integration protocol
    return integration
