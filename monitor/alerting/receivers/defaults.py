"""Alertmanager's ``global:`` fields: defaults every integration of that kind inherits
unless it sets its own (``docs/configuration.md#global``).

They sit in the same ``global:`` block as the daemon's own settings (the main file's model
extends this one), so an ``alertmanager.yml``'s ``global:`` loads unchanged. Fields of
integrations this daemon does not have (OpsGenie, WeChat, VictorOps, Telegram, Webex, Jira,
Rocket.Chat, Mattermost, Slack apps) are accepted and reported as warnings when set.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import SecretStr, field_validator, model_validator

from monitor.alerting.receivers.http_options import HttpConfig, TLSOptions, readable_file
from monitor.alerting.receivers.options import SecretUrl, Url
from monitor.core.durations import Duration
from monitor.core.model import Model

PAGERDUTY_V2_URL = "https://events.pagerduty.com/v2/enqueue"


class ReceiverDefaults(Model):
    """The Alertmanager part of ``global:``."""

    # Alertmanager resolves an alert posted without endsAt after this long. Every alert here
    # comes from this daemon's own rules, which always say when it ended: read, no effect.
    resolve_timeout: Duration = 300.0
    http_config: HttpConfig | None = None

    smtp_from: str | None = None
    smtp_hello: str = "localhost"
    smtp_smarthost: str | None = None
    smtp_auth_username: str | None = None
    smtp_auth_password: SecretStr | None = None
    smtp_auth_password_file: str | None = None
    smtp_auth_secret: SecretStr | None = None
    smtp_auth_secret_file: str | None = None
    smtp_auth_identity: str | None = None
    smtp_require_tls: bool = True
    smtp_tls_config: TLSOptions | None = None
    smtp_force_implicit_tls: bool | None = None

    slack_api_url: SecretUrl | None = None
    slack_api_url_file: str | None = None
    pagerduty_url: Url = PAGERDUTY_V2_URL

    # Integrations this daemon does not deliver to: accepted, and a warning when set.
    slack_app_token: SecretStr | None = None
    slack_app_token_file: str | None = None
    slack_app_url: str | None = None
    opsgenie_api_url: str | None = None
    opsgenie_api_key: SecretStr | None = None
    opsgenie_api_key_file: str | None = None
    wechat_api_url: str | None = None
    wechat_api_secret: SecretStr | None = None
    wechat_api_secret_file: str | None = None
    wechat_api_corp_id: str | None = None
    victorops_api_url: str | None = None
    victorops_api_key: SecretStr | None = None
    victorops_api_key_file: str | None = None
    telegram_api_url: str | None = None
    telegram_bot_token: SecretStr | None = None
    telegram_bot_token_file: str | None = None
    webex_api_url: str | None = None
    jira_api_url: str | None = None
    rocketchat_api_url: str | None = None
    rocketchat_token: SecretStr | None = None
    rocketchat_token_file: str | None = None
    rocketchat_token_id: SecretStr | None = None
    rocketchat_token_id_file: str | None = None
    mattermost_webhook_url: SecretStr | None = None
    mattermost_webhook_url_file: str | None = None

    # Field prefix -> the integration it configures, for fields of integrations we lack.
    UNSUPPORTED: ClassVar[dict[str, str]] = {
        "slack_app_": "Slack apps (chat.postMessage with a bot token; use slack_api_url)",
        "opsgenie_": "OpsGenie", "wechat_": "WeChat", "victorops_": "VictorOps", "telegram_": "Telegram",
        "webex_": "Webex", "jira_": "Jira", "rocketchat_": "Rocket.Chat", "mattermost_": "Mattermost",
    }  # fmt: skip

    _files = field_validator("smtp_auth_password_file", "smtp_auth_secret_file", "slack_api_url_file")(readable_file)

    @field_validator("smtp_smarthost")
    @classmethod
    def _smarthost(cls, value: str | None) -> str | None:
        if value:
            split_hostport(value)
        return value or None

    @model_validator(mode="after")
    def _exclusive(self) -> ReceiverDefaults:
        for name in ("smtp_auth_password", "smtp_auth_secret", "slack_api_url"):
            if getattr(self, name) is not None and getattr(self, f"{name}_file") is not None:
                raise ValueError(f"at most one of {name} and {name}_file may be set")
        return self

    def unsupported_set(self) -> list[tuple[str, str]]:
        """(field, integration) for every field set here that configures an integration we lack."""
        out = []
        for name in self.model_fields_set:
            for prefix, integration in self.UNSUPPORTED.items():
                if name.startswith(prefix):
                    out.append((name, integration))
        return sorted(out)


def split_hostport(value: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:25`` for IPv6), the port required, as Alertmanager's smarthost."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} must be host:port (e.g. smtp.example.org:587)")
    return host.strip("[]"), int(port)
