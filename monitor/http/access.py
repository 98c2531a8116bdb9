"""Who may call what: the ``Host`` allow-list (every request), and for mutating calls the
cross-site refusal and the credentials (the API token, or a heartbeat check's push key).

The daemon usually listens on loopback or inside a pod, where "only local clients can reach
it" is not a defence against a browser: a page on any site can send a simple cross-site
POST to 127.0.0.1, and a DNS name the attacker controls can be re-pointed (DNS rebinding)
at the daemon's address so the browser treats the daemon as that site. So:

- a request whose ``Host`` is a name we were not told about is refused (rebinding needs a
  name; an IP address literal cannot be rebound, so kubelet probes and Prometheus scrapes
  by pod IP keep working);
- a mutation a browser marks as cross-site (``Sec-Fetch-Site``, ``Origin``) is refused;
- a mutation with a body must say ``Content-Type: application/json``, which a cross-site
  form or ``fetch`` cannot send without a CORS preflight we never answer;
- and with no token configured, mutations are refused altogether unless the operator opts
  out, and even then only loopback peers may mutate.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pydantic import SecretStr

from monitor.config.main import GlobalConfig, is_ip, split_listen

# Browsers send this on every request; these two values mean "not from another site"
# (`none` is a URL typed in or a bookmark).
_SAME_SITE_FETCH = frozenset({"same-origin", "none"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def split_host(value: str) -> tuple[str, int | None]:
    """``Host`` (or an origin's authority) as (lowercase name without trailing dot, port).

    ``[::1]:9464`` gives ("::1", 9464). A port that is not a number leaves the whole value
    as the name, which then matches nothing."""
    value = value.strip().lower()
    if value.startswith("["):
        name, bracket, rest = value[1:].partition("]")
        if not bracket:
            return value, None
        port = rest[1:] if rest.startswith(":") else ""
        if rest and not (rest.startswith(":") and port.isdigit()):
            return value, None
        return name, int(port) if port else None
    name, colon, port = value.rpartition(":")
    if not colon:
        return value.rstrip("."), None
    if ":" in name or not port.isdigit():  # a bare IPv6 address, or garbage
        return value, None
    return name.rstrip("."), int(port)


def is_loopback(remote: str | None) -> bool:
    """127.0.0.0/8 or ::1 (also as an IPv4-mapped IPv6 address)."""
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


@dataclass(frozen=True)
class AllowedHosts:
    """The ``Host`` values requests may carry. Ports are ignored: the name is what DNS
    rebinding forges."""

    names: frozenset[str]
    any_host: bool = False

    @classmethod
    def from_settings(cls, settings: GlobalConfig) -> AllowedHosts:
        if "*" in settings.allowed_hosts:
            return cls(frozenset(), any_host=True)
        names = {"localhost", *settings.allowed_hosts}
        # The URL notifications link to (set, or derived from `listen`): people follow it.
        names.add((urlsplit(settings.public_url).hostname or "").rstrip("."))
        names.add(split_listen(settings.listen)[0].lower().rstrip("."))
        # IP literals are allowed anyway; the list names only names.
        return cls(frozenset(name for name in names if name and not is_ip(name)))

    def allows(self, host_header: str | None) -> bool:
        if self.any_host or host_header is None:
            # No Host at all is an HTTP/1.0 client, never a browser (they always send it).
            return True
        name, _ = split_host(host_header)
        return name in self.names or is_ip(name)

    def describe(self) -> str:
        if self.any_host:
            return "any host"
        return ", ".join(["IP addresses", "localhost", *sorted(self.names - {"localhost"})])


@dataclass(frozen=True)
class AccessPolicy:
    """What guards mutations, as configured now (the daemon builds a new one on reload)."""

    token: SecretStr | None = field(repr=False)
    unauthenticated_api: bool
    hosts: AllowedHosts

    @classmethod
    def from_settings(cls, settings: GlobalConfig) -> AccessPolicy:
        return cls(settings.api_token, settings.unauthenticated_api, AllowedHosts.from_settings(settings))

    @property
    def mode(self) -> str:
        """For the log: ``token``, ``disabled`` or ``unauthenticated-loopback``."""
        if self.token is not None:
            return "token"
        return "unauthenticated-loopback" if self.unauthenticated_api else "disabled"

    @property
    def open_on_loopback(self) -> bool:
        """The operator's opt-out is in force: no token, and loopback peers may mutate.
        A configured token always wins over the opt-out."""
        return self.token is None and self.unauthenticated_api


def cross_site(sec_fetch_site: str | None, origin: str | None, host: str) -> str | None:
    """Why a mutation looks like it was sent by a page of another site, or None.

    ``Sec-Fetch-Site`` is set by the browser and cannot be forged by the page; ``Origin``
    covers browsers too old to send it. Tools such as curl send neither."""
    if sec_fetch_site is not None and sec_fetch_site.strip().lower() not in _SAME_SITE_FETCH:
        return f"cross-site request refused (Sec-Fetch-Site: {sec_fetch_site.strip()[:40]})"
    if origin is None:
        return None
    parts = urlsplit(origin.strip())
    try:
        origin_port = parts.port
    except ValueError:
        origin_port = -1
    if not parts.hostname or origin_port == -1:
        return f"cross-site request refused (Origin: {origin.strip()[:100]})"
    origin_name = parts.hostname.lower().rstrip(".")
    host_name, host_port = split_host(host)
    default = _DEFAULT_PORTS.get(parts.scheme.lower())
    same_port = (origin_port or default) == (host_port or default)
    if origin_name != host_name or not same_port:
        return f"cross-site request refused (Origin {origin.strip()[:100]} is not this server)"
    return None


def bearer(authorization: str | None) -> bytes | None:
    """The credential of ``Authorization: Bearer <credential>``; None when the header is
    absent, b"" when it is there but not a bearer credential (so it matches nothing).

    Bytes, because a header may hold any bytes: aiohttp hands non-UTF-8 ones over as lone
    surrogates, which ``str.encode()`` refuses; ``surrogatepass`` never fails."""
    if authorization is None:
        return None
    scheme, _, credential = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return b""
    return credential.strip().encode("utf-8", "surrogatepass")


def matches(given: bytes, secrets: Iterable[SecretStr | None]) -> bool:
    """Whether ``given`` equals one of ``secrets``, in time independent of where they
    differ (and of their lengths: both sides are hashed first)."""
    given_digest = hashlib.sha256(given).digest()
    found = False
    for secret in secrets:
        if secret is None:
            continue
        expected = hashlib.sha256(secret.get_secret_value().encode("utf-8", "surrogatepass")).digest()
        found |= hmac.compare_digest(given_digest, expected)
    return found
