"""What every check has, and what every probe is given to run with."""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Awaitable, Callable, Hashable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
from pydantic import Field, ValidationInfo, field_validator, model_validator

from monitor.core.clock import Clock, SystemClock
from monitor.core.durations import Duration, to_seconds
from monitor.core.labels import RESERVED_LABELS, is_label_name
from monitor.core.model import Model
from monitor.core.results import Result
from monitor.core.slo import SloConfig
from monitor.core.units import Unit

NAME_PATTERN = r"^[a-z0-9_]+$"
_State = TypeVar("_State")


class CheckBase(Model):
    """Fields shared by all kinds; each probe module subclasses this with its own fields."""

    name: str = Field(pattern=NAME_PATTERN, max_length=200)
    kind: str
    interval: Duration
    timeout: Duration
    labels: dict[str, str] = Field(default_factory=dict)
    description: str = ""
    slo: SloConfig | None = None  # success of this check's runs as a service level objective
    unit: Unit | None = None  # what `value` measures, when the kind's own unit does not say (VALUE_UNITS)

    @model_validator(mode="before")
    @classmethod
    def _defaults_from_global(cls, data: Any, info: ValidationInfo) -> Any:
        # interval/timeout default to `global:` values, passed in as validation context.
        if isinstance(data, dict) and info.context:
            data = dict(data)
            data.setdefault("interval", info.context.get("default_interval", 30.0))
            if "timeout" not in data:
                data["timeout"] = _default_timeout(data["interval"], info.context.get("default_timeout", 10.0))
        return data

    @field_validator("interval")
    @classmethod
    def _interval_positive(cls, value: float) -> float:
        if value < 0.1:
            raise ValueError("interval must be at least 100ms")
        return value

    @field_validator("labels")
    @classmethod
    def _label_names(cls, labels: dict[str, str]) -> dict[str, str]:
        for name in labels:
            if not is_label_name(name) or name.startswith("__"):
                raise ValueError(f"invalid label name {name!r} (use [a-zA-Z_][a-zA-Z0-9_]*)")
            if name in RESERVED_LABELS:
                raise ValueError(f"label {name!r} is set by the daemon and cannot be used on a check")
        return labels

    @model_validator(mode="after")
    def _timeout_within_interval(self) -> CheckBase:
        # A run longer than the interval would overlap the next one; those are skipped,
        # so such a check would silently run half as often as configured.
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")
        if self.timeout > self.interval:
            raise ValueError(f"timeout ({self.timeout:g}s) must not exceed interval ({self.interval:g}s)")
        return self


def _default_timeout(interval: Any, default: float) -> Any:
    try:
        return min(float(to_seconds(interval)), default)
    except ValueError:
        return default  # the interval's own error is reported instead


# The TLS peers met while one probe runs (one per hop of a redirect chain). Set per probe
# task; the connector below appends to it. Reading the certificate from the response is
# not enough: aiohttp releases a connection as soon as a small body has arrived, so
# `response.connection` is usually None by the time the probe looks.
PEER_CERTIFICATES: ContextVar[list[tuple[bytes, str]] | None] = ContextVar("peer_certificates", default=None)


# Set by a probe while it follows a redirect it was not configured with: the connection
# must then not reach a link-local or cloud metadata address (see `refused_address`).
REFUSE_LINK_LOCAL: ContextVar[bool] = ContextVar("refuse_link_local", default=False)

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Metadata services outside the link-local ranges: AWS's IPv6 endpoint, Alibaba Cloud's.
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def refused_address(address: IpAddress) -> bool:
    """Link-local (169.254.0.0/16, fe80::/10, where cloud metadata services answer with
    instance credentials) or a known metadata address, also when spelled as an IPv4-mapped
    or NAT64 IPv6 address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif address in _NAT64:
            address = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.is_link_local or address in METADATA_ADDRESSES


def parse_address(text: str) -> IpAddress | None:
    """An IP address, or None; an IPv6 zone (``fe80::1%eth0``) is ignored."""
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


class RefusedAddress(aiohttp.ClientConnectionError):
    """A connection reached an address this request must not reach."""


class _CertificateRecordingConnector(aiohttp.TCPConnector):
    async def connect(self, req: aiohttp.ClientRequest, traces: list[Any], timeout: aiohttp.ClientTimeout) -> Any:
        connection = await super().connect(req, traces, timeout)
        if REFUSE_LINK_LOCAL.get():
            # The probe checked the redirect target's addresses before connecting; this is
            # the address actually reached (DNS may answer differently the second time).
            # Closing here, before the request is written, sends it neither headers nor path.
            peer = connection.transport.get_extra_info("peername") if connection.transport is not None else None
            address = parse_address(str(peer[0])) if peer else None
            if address is not None and refused_address(address):
                connection.close()
                raise RefusedAddress(f"connected to {address}, a link-local or cloud metadata address; refused")
        sink = PEER_CERTIFICATES.get()
        transport = connection.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        if sink is not None and ssl_object is not None:
            der = ssl_object.getpeercert(binary_form=True)
            if der:
                sink.append((der, ssl_object.version() or ""))
        return connection


@dataclass
class ProbeEnv:
    """Shared, long-lived things probes use: one HTTP connector, cached TLS contexts, push state."""

    clock: Clock = field(default_factory=SystemClock)
    started_at: float = 0.0  # wall time the daemon started; heartbeat ages count from here
    # Heartbeat pushes: check name -> (wall time, failed?). Written by the HTTP API.
    heartbeats: dict[str, tuple[float, bool]] = field(default_factory=dict)
    _session: aiohttp.ClientSession | None = None

    def __post_init__(self) -> None:
        if not self.started_at:
            self.started_at = self.clock.time()
    _tls: dict[tuple[str | None, bool], ssl.SSLContext] = field(default_factory=dict)
    # What a kind keeps for one check from run to run (a metrics check's scraped series):
    # check name -> (the config it was built for, the state).
    _check_state: dict[str, tuple[Hashable, Any]] = field(default_factory=dict)

    def check_state(self, name: str, key: Hashable, create: Callable[[], _State]) -> _State:
        """The state kept for check ``name``, made by ``create`` on first use and again
        whenever ``key`` (the parts of its config the state depends on) changes."""
        held = self._check_state.get(name)
        if held is None or held[0] != key:
            held = (key, create())
            self._check_state[name] = held
        state: _State = held[1]
        return state

    def keep_check_state(self, names: Iterable[str]) -> None:
        """Drop the state of checks no longer configured (after a reload)."""
        keep = set(names)
        for name in [n for n in self._check_state if n not in keep]:
            del self._check_state[name]

    def http_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # force_close: every probe opens its own connection, as blackbox_exporter does.
            # A kept-alive connection would hide a listener that stopped accepting and would
            # turn a server-side idle close into a false failure.
            connector = _CertificateRecordingConnector(limit=0, force_close=True, ttl_dns_cache=10)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None),  # the runner's deadline governs
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=True,
                trust_env=False,
            )
        return self._session

    def tls_context(self, ca_file: str | None, verify: bool) -> ssl.SSLContext:
        key = (ca_file, verify)
        ctx = self._tls.get(key)
        if ctx is None:
            ctx = ssl.create_default_context(cafile=ca_file)
            if not verify:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            self._tls[key] = ctx
        return ctx

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


# A probe: (its check's config, monotonic deadline, shared env) -> one Result.
Probe = Callable[[Any, float, ProbeEnv], Awaitable[Result]]


def loopback_host(host: str) -> bool:
    """``localhost`` or a loopback address: where a credential may travel over plain HTTP
    (a local test double or mock), and nowhere else."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def loadable_ca_file(path: str | None) -> str | None:
    """A CA bundle that TLS can load, checked when the config loads rather than at 3 a.m."""
    if path is not None:
        try:
            ssl.create_default_context(cafile=path)
        except (OSError, ssl.SSLError) as err:
            raise ValueError(f"ca_file {path!r} cannot be loaded: {err}") from None
    return path


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) as (host, port); ("", 0) when it is not one."""
    host, _, port = address.rpartition(":")
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        return "", 0


def host_port(address: str) -> str:
    """Validate ``host:port`` for a config field; the text itself is kept."""
    host, port = split_address(address)
    if not host or not 0 < port < 65536:
        raise ValueError(f"address must be host:port, got {address!r}")
    return address
