"""``kind: dns`` — resolve ``query`` as ``record_type`` through ``server`` or the system resolver.

value: the number of records in the answer. detail: ``answers``, each record as text (MX as
``10 mail.example.com.``, SRV as ``priority weight port target``, TXT as its strings joined).

dnspython is imported inside the functions that need it, so a config without a dns check
never loads it (its rdata modules are sizeable).
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

from pydantic import field_validator

from monitor.probes.base import CheckBase, ProbeEnv, parse_address
from monitor.core.results import Outcome, Result, describe_exception

if TYPE_CHECKING:
    import dns.rdata

DNS_PORT = 53
DEADLINE_MARGIN = 0.05  # seconds before the runner's deadline that this probe gives up itself
ATTEMPT_TIMEOUT = 2.0  # seconds one query waits before it is sent again (dig waits 5 s, 3 times)
RecordType = Literal["A", "AAAA", "CNAME", "MX", "TXT", "NS", "SRV"]


class DnsCheck(CheckBase):
    kind: Literal["dns"]
    query: str
    record_type: RecordType = "A"
    server: str | None = None  # host[:port]; none means the system resolver (/etc/resolv.conf)

    @field_validator("query")
    @classmethod
    def _valid_name(cls, query: str) -> str:
        # Only runs when a dns check is configured, so the lazy import still holds.
        import dns.exception
        import dns.name

        if not query.strip():
            raise ValueError("query must be a domain name")
        try:
            dns.name.from_text(query)
        except (dns.exception.DNSException, UnicodeError) as err:
            raise ValueError(f"invalid domain name {query!r}: {err}") from None
        return query

    @field_validator("server")
    @classmethod
    def _host_port(cls, server: str | None) -> str | None:
        if server is not None:
            host, port = split_server(server)
            if not host or not 0 < port < 65536:
                raise ValueError(f"server must be host or host:port ([v6]:port), got {server!r}")
        return server


def split_server(server: str) -> tuple[str, int]:
    """``1.1.1.1``, ``1.1.1.1:5353``, ``[::1]:53``, ``::1``, ``ns.example:53`` -> (host, port)."""
    server = server.strip()
    if parse_address(server) is not None:  # a bare address, IPv6 included
        return server, DNS_PORT
    if server.startswith("["):
        host, bracket, rest = server[1:].partition("]")
        if not bracket or parse_address(host) is None or (rest and not rest.startswith(":")):
            return "", 0
        return host, _port(rest[1:]) if rest else DNS_PORT
    host, colon, port = server.partition(":")
    if ":" in port:
        return "", 0
    return host, _port(port) if colon else DNS_PORT


def _port(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


async def probe(check: DnsCheck, deadline: float, env: ProbeEnv) -> Result:
    import dns.exception
    import dns.resolver

    started = time.perf_counter()
    try:
        resolver = await _resolver(check)
    except OSError as err:
        return Result.failed(f"cannot resolve server {check.server}: {describe_exception(err)}",
                             time.perf_counter() - started)
    except dns.exception.DNSException as err:  # no usable /etc/resolv.conf
        return Result.failed(f"system resolver: {describe_exception(err)}", time.perf_counter() - started)
    # The resolution (retries, TCP fallback) gets the time the runner left, so nothing
    # outlives the run; a little less, so that a silent server gets this probe's error naming
    # it rather than the runner's bare "timeout". dnspython checks its lifetime only between
    # attempts (after a back-off sleep), so our own scope enforces the budget exactly. One
    # attempt waits at most ATTEMPT_TIMEOUT, so a lost UDP datagram is asked again.
    budget = max(deadline - time.monotonic() - DEADLINE_MARGIN, 0.001)
    resolver.lifetime = budget
    resolver.timeout = min(budget, ATTEMPT_TIMEOUT)
    try:
        async with asyncio.timeout(budget):
            answer = await resolver.resolve(check.query, check.record_type, search=False)
    except dns.resolver.NXDOMAIN:
        return Result.failed(f"NXDOMAIN: {check.query} does not exist", time.perf_counter() - started,
                             {"answers": []}, value=0.0)
    except dns.resolver.NoAnswer:
        return Result.failed(f"no {check.record_type} records for {check.query} (NOERROR, empty answer)",
                             time.perf_counter() - started, {"answers": []}, value=0.0)
    except (dns.resolver.LifetimeTimeout, TimeoutError):
        # dnspython drops replies it cannot parse (they could be forged), so a server that
        # only answers garbage ends here too.
        # Counted as a timeout, like the runner's own (the `result` label of the run metrics).
        failed = Result.failed(f"timeout: no valid reply from {_servers(resolver)} within {budget:.3g}s",
                               time.perf_counter() - started)
        return replace(failed, outcome=Outcome.TIMEOUT)
    except dns.resolver.NoNameservers as err:
        # SERVFAIL or REFUSED (or a malformed reply over TCP) from every server; dnspython's
        # message names each server and its answer.
        return Result.failed(f"no usable answer: {err}", time.perf_counter() - started)
    except (dns.exception.DNSException, OSError) as err:
        return Result.failed(describe_exception(err), time.perf_counter() - started)
    answers = [_text(rdata) for rdata in answer.rrset or ()]
    return Result(up=True, value=float(len(answers)), latency=time.perf_counter() - started,
                  detail={"answers": answers})


async def _resolver(check: DnsCheck) -> Any:
    import dns.asyncresolver

    if check.server is None:
        # A fresh resolver reads /etc/resolv.conf each run, so a changed system resolver is
        # followed; no cache, so every run asks.
        return dns.asyncresolver.Resolver(configure=True)
    host, port = split_server(check.server)
    if parse_address(host) is None:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        host = str(infos[0][4][0])
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [host]
    resolver.port = port
    return resolver


def _servers(resolver: Any) -> str:
    port = resolver.port
    shown = [f"[{ns}]:{port}" if ":" in str(ns) else f"{ns}:{port}" for ns in resolver.nameservers]
    return ", ".join(shown) or "the system resolver"


def _text(rdata: dns.rdata.Rdata) -> str:
    """One record as text; TXT as its strings joined (quotes and splitting at 255 bytes are
    wire details), everything else in zone-file form (MX ``10 mx.``, SRV ``10 5 443 host.``)."""
    strings = getattr(rdata, "strings", None)
    if strings is not None:
        return b"".join(strings).decode("utf-8", "replace")
    return str(rdata.to_text())
