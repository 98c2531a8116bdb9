"""The main file (``monitor.yaml``) and the ``MONITOR_*`` environment settings."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from monitor.core.durations import Duration
from monitor.core.model import Model

LogFormat = Literal["auto", "json", "console"]
LogLevel = Literal["debug", "info", "warning", "error"]


def split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"listen must be host:port, got {listen!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


class GlobalConfig(Model):
    listen: str = "127.0.0.1:9464"
    state: str = "sqlite:///state/monitor.db"
    external_url: str | None = None
    api_token: SecretStr | None = None
    default_interval: Duration = 30.0
    default_timeout: Duration = 10.0
    # Probes running at once; more wait (inside their own deadline) for a slot.
    max_concurrent_probes: int = Field(default=2000, ge=1, le=100_000)
    # How much of each check's history rules can look back over, and a hard cap on samples.
    history: Duration = 3600.0
    history_max_samples: int = Field(default=4096, ge=16, le=1_000_000)
    log_level: LogLevel = "info"
    log_format: LogFormat = "auto"

    @field_validator("listen")
    @classmethod
    def _listen(cls, listen: str) -> str:
        split_listen(listen)
        return listen

    @field_validator("api_token")
    @classmethod
    def _empty_is_unset(cls, token: SecretStr | None) -> SecretStr | None:
        # `${MONITOR_API_TOKEN:-}` expands to "" when unset: that means "no token".
        return token if token is not None and token.get_secret_value() else None


class MainConfig(Model):
    global_: GlobalConfig = Field(default_factory=GlobalConfig, alias="global")
    check_files: list[str] = Field(default_factory=lambda: ["checks/*.yaml"])
    rule_files: list[str] = Field(default_factory=lambda: ["alert_rules/*.yaml"])
    # Alertmanager-format sections; their models arrive with the notification pipeline.
    receivers: list[dict[str, Any]] = Field(default_factory=list)
    route: dict[str, Any] | None = None
    inhibit_rules: list[dict[str, Any]] = Field(default_factory=list)
    time_intervals: list[dict[str, Any]] = Field(default_factory=list)
    templates: list[str] = Field(default_factory=list)


class EnvSettings(BaseSettings):
    """Settings that belong to where the daemon runs; they override ``global:`` in the file."""

    model_config = SettingsConfigDict(env_prefix="MONITOR_", extra="ignore")

    listen: str | None = None
    state: str | None = None
    external_url: str | None = None
    log_level: str | None = None
    log_format: str | None = None

    def overrides(self) -> dict[str, str]:
        fields = ("listen", "state", "external_url", "log_level", "log_format")
        return {name: value for name in fields if (value := getattr(self, name)) is not None}
