"""The main file (``monitor.yaml``) and the ``MONITOR_*`` environment settings."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from monitor.alerting.receivers.defaults import ReceiverDefaults
from monitor.core.durations import Duration
from monitor.core.model import Model

LogFormat = Literal["auto", "json", "console"]
LogLevel = Literal["debug", "info", "warning", "error"]


def split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"listen must be host:port, got {listen!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


class GlobalConfig(ReceiverDefaults):
    """The daemon's settings, beside Alertmanager's (``ReceiverDefaults``) in one ``global:``."""

    listen: str = "127.0.0.1:9464"
    state: str = "sqlite:///state/monitor.db"
    external_url: str | None = None
    # Guards every mutating call (silences, reload, heartbeats). Unset means those calls
    # are refused, unless `unauthenticated_api` opts out for loopback clients.
    api_token: SecretStr | None = None
    unauthenticated_api: bool = False
    # Host names (besides localhost, IP addresses and the hosts of `external_url` and
    # `listen`) that requests may carry in `Host`; ["*"] allows any. A browser led to the
    # daemon by DNS rebinding sends the attacker's name, which is not on this list.
    allowed_hosts: list[str] = Field(default_factory=list)
    # Open API connections at once; past it, the one waiting longest for a request is
    # closed, so a flood of clients cannot use up the file handles probes need.
    max_connections: int = Field(default=256, ge=1, le=1_000_000)
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

    @property
    def public_url(self) -> str:
        """``external_url``, or when it is not set, one derived from ``listen`` as Prometheus
        derives its external URL: ``http://<host>:<port>`` with the listen address's host, or
        this machine's host name when it listens on every address. So the URL in notifications
        (and the silence command they print) follows ``listen``/``MONITOR_LISTEN``."""
        if self.external_url:
            return self.external_url
        return listen_url(self.listen, wildcard_host=socket.gethostname())

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, hosts: list[str]) -> list[str]:
        names = []
        for host in hosts:
            name = host.strip().lower().rstrip(".")
            if name.startswith("[") and name.endswith("]"):
                name = name[1:-1]
            if name != "*" and not is_ip(name) and (not name or any(c in name for c in ":/@ ")):
                raise ValueError(f"{host!r} is not a host name: write it without scheme, port or path,"
                                 " e.g. monitor.example.com, or \"*\" for any")
            names.append(name)
        return names

    @field_validator("api_token")
    @classmethod
    def _empty_is_unset(cls, token: SecretStr | None) -> SecretStr | None:
        # `${MONITOR_API_TOKEN:-}` expands to "" when unset: that means "no token".
        return token if token is not None and token.get_secret_value() else None


def listen_url(listen: str, wildcard_host: str = "127.0.0.1") -> str:
    """``http://host:port`` for a ``listen`` address; a wildcard (``0.0.0.0``, ``::``, no host)
    becomes ``wildcard_host``: for a client on the same machine, the loopback address."""
    raw_host = listen.rpartition(":")[0].strip("[]")
    host, port = split_listen(listen)
    if not raw_host or host in ("0.0.0.0", "::"):
        host = wildcard_host
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class MainConfig(Model):
    global_: GlobalConfig = Field(default_factory=GlobalConfig, alias="global")
    check_files: list[str] = Field(default_factory=lambda: ["checks/*.yaml"])
    rule_files: list[str] = Field(default_factory=lambda: ["alert_rules/*.yaml"])
    # Alertmanager-format sections; their models arrive with the notification pipeline.
    receivers: list[dict[str, Any]] = Field(default_factory=list)
    route: dict[str, Any] | None = None
    inhibit_rules: list[dict[str, Any]] = Field(default_factory=list)
    time_intervals: list[dict[str, Any]] = Field(default_factory=list)
    mute_time_intervals: list[dict[str, Any]] = Field(default_factory=list)
    templates: list[str] = Field(default_factory=list)
    # Alertmanager's tracing exporter: accepted so its file loads; reported, no traces are sent.
    tracing: dict[str, Any] | None = None


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
