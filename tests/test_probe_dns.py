"""``kind: dns`` through the runner, against a DNS server this test runs on 127.0.0.1.

The server answers from a dict it is given (NXDOMAIN for names it does not know, an empty
NOERROR answer for types it has none of), and can be told to answer SERVFAIL, answer
garbage, or never answer.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any, cast

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from pydantic import ValidationError

from monitor.core.results import Outcome
from monitor.probes.dns import DnsCheck, split_server

from tests.probing import run_timed

Zone = dict[tuple[str, str], list[str]]

ZONE: Zone = {
    ("www.test.", "A"): ["192.0.2.10", "192.0.2.11"],
    ("www.test.", "AAAA"): ["2001:db8::10"],
    ("alias.test.", "CNAME"): ["www.test."],
    ("test.", "MX"): ["10 mail.test.", "20 backup.test."],
    ("test.", "NS"): ["ns1.test.", "ns2.test."],
    ("test.", "TXT"): ['"v=spf1 " "-all"', '"hello world"'],
    ("_sip._tcp.test.", "SRV"): ["10 5 5060 sip.test."],
}


class FakeDns(asyncio.DatagramProtocol):
    """Answers from ``zone``; ``mode`` is "answer", "servfail", "malformed" or "silent"."""

    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        self.mode = "answer"
        self.queries = 0
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's UDP transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)
        self.port = transport.get_extra_info("sockname")[1]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        assert self.transport is not None
        self.queries += 1
        if self.mode == "silent":
            return
        if self.mode == "malformed":
            # The query's ID with the response bit set, then a header cut short and junk.
            self.transport.sendto(data[:2] + b"\x81\x80\x00\x01\x00\x05junk", addr)
            return
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        if self.mode == "servfail":
            response.set_rcode(dns.rcode.SERVFAIL)
        else:
            self._answer(query, response)
        self.transport.sendto(response.to_wire(), addr)

    def _answer(self, query: dns.message.Message, response: dns.message.Message) -> None:
        question = query.question[0]
        name = question.name.to_text()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        if name not in {known for known, _ in self.zone}:
            response.set_rcode(dns.rcode.NXDOMAIN)
            return
        response.flags |= dns.flags.AA
        # Follow a CNAME as a real server does: the alias, then the target's records.
        while (name, rdtype) not in self.zone and (name, "CNAME") in self.zone:
            target = self.zone[(name, "CNAME")][0]
            response.answer.append(dns.rrset.from_text_list(name, 300, "IN", "CNAME", [target]))
            name = target
        records = self.zone.get((name, rdtype))
        if records:
            response.answer.append(dns.rrset.from_text_list(name, 300, "IN", rdtype, records))


@pytest.fixture
async def server() -> AsyncIterator[FakeDns]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: FakeDns({key: list(value) for key, value in ZONE.items()}), local_addr=("127.0.0.1", 0)
    )
    try:
        yield protocol
    finally:
        transport.close()


def dns_check(server: FakeDns | None, query: str, record_type: str = "A", *, timeout: float = 2.0) -> DnsCheck:
    return DnsCheck.model_validate({
        "name": "dns_probe_test", "kind": "dns", "interval": 10.0, "timeout": timeout, "query": query,
        "record_type": record_type, **({"server": f"127.0.0.1:{server.port}"} if server is not None else {}),
    })


# --- each record type ------------------------------------------------------------------------


@pytest.mark.parametrize(("query", "record_type", "answers"), [
    ("www.test", "A", ["192.0.2.10", "192.0.2.11"]),
    ("www.test.", "AAAA", ["2001:db8::10"]),
    ("alias.test", "CNAME", ["www.test."]),
    ("test", "MX", ["10 mail.test.", "20 backup.test."]),
    ("test", "NS", ["ns1.test.", "ns2.test."]),
    ("test", "TXT", ["v=spf1 -all", "hello world"]),
    ("_sip._tcp.test", "SRV", ["10 5 5060 sip.test."]),
])
async def test_each_record_type(server: FakeDns, query: str, record_type: str, answers: list[str]) -> None:
    result, _ = await run_timed(dns_check(server, query, record_type))
    assert result.up is True, result.error
    assert result.outcome is Outcome.SUCCESS
    assert result.error is None
    assert result.value == float(len(answers))
    assert sorted(result.detail["answers"]) == sorted(answers)
    assert set(result.detail) == {"answers"}


async def test_a_through_a_cname_counts_the_addresses(server: FakeDns) -> None:
    result, _ = await run_timed(dns_check(server, "alias.test"))
    assert result.up is True, result.error
    assert result.value == 2.0
    assert sorted(result.detail["answers"]) == ["192.0.2.10", "192.0.2.11"]


# --- failures --------------------------------------------------------------------------------


async def test_nxdomain_is_down_with_zero_answers(server: FakeDns) -> None:
    result, _ = await run_timed(dns_check(server, "missing.test"))
    assert result.up is False
    assert result.outcome is Outcome.FAILURE
    assert result.value == 0.0
    assert result.detail == {"answers": []}
    assert result.error is not None and "NXDOMAIN" in result.error and "missing.test" in result.error


async def test_nodata_is_down(server: FakeDns) -> None:
    result, _ = await run_timed(dns_check(server, "www.test", "MX"))
    assert result.up is False
    assert result.value == 0.0
    assert result.detail == {"answers": []}
    assert result.error is not None and "no MX records" in result.error


async def test_servfail_is_down(server: FakeDns) -> None:
    server.mode = "servfail"
    result, _ = await run_timed(dns_check(server, "www.test"))
    assert result.up is False
    assert result.outcome is Outcome.FAILURE
    assert result.value is None
    assert result.error is not None and "SERVFAIL" in result.error
    assert "\n" not in result.error


async def test_silent_server_is_a_timeout(server: FakeDns) -> None:
    server.mode = "silent"
    result, took = await run_timed(dns_check(server, "www.test", timeout=1.0))
    assert result.up is False
    assert result.value is None
    assert result.outcome is Outcome.TIMEOUT
    assert result.error is not None and result.error.startswith(f"timeout: no valid reply from 127.0.0.1:{server.port}")
    assert server.queries >= 1
    assert took < 1.0 + 5


async def test_malformed_reply_is_down_in_one_line(server: FakeDns) -> None:
    # dnspython drops a reply it cannot parse (a forged one must not end the query), so
    # garbage ends as "no valid reply", with the server named.
    server.mode = "malformed"
    result, took = await run_timed(dns_check(server, "www.test", timeout=1.0))
    assert result.up is False
    assert result.value is None
    assert result.error is not None and "\n" not in result.error
    assert result.outcome is Outcome.TIMEOUT
    assert result.error.startswith(f"timeout: no valid reply from 127.0.0.1:{server.port}")
    assert server.queries >= 1
    assert took < 1.0 + 5


async def test_unreachable_server_is_down(server: FakeDns) -> None:
    # A UDP port nobody listens on: ICMP port unreachable, or silence; either way down.
    port = server.port
    assert server.transport is not None
    server.transport.close()
    await asyncio.sleep(0)
    check = DnsCheck.model_validate({"name": "dns_probe_test", "kind": "dns", "interval": 10.0, "timeout": 1.0,
                                     "query": "www.test", "server": f"127.0.0.1:{port}"})
    result, took = await run_timed(check)
    assert result.up is False
    assert result.error is not None and "\n" not in result.error
    assert took < 1.0 + 5


# --- following changes -----------------------------------------------------------------------


async def test_follows_answers_changing_between_runs(server: FakeDns) -> None:
    first, _ = await run_timed(dns_check(server, "www.test"))
    del server.zone[("www.test.", "A")], server.zone[("www.test.", "AAAA")]
    gone, _ = await run_timed(dns_check(server, "www.test"))
    server.zone[("www.test.", "A")] = ["198.51.100.7"]
    back, _ = await run_timed(dns_check(server, "www.test"))
    assert (first.up, gone.up, back.up) == (True, False, True)
    assert (first.value, gone.value, back.value) == (2.0, 0.0, 1.0)
    assert back.detail == {"answers": ["198.51.100.7"]}


async def test_system_resolver_gives_a_result_in_time() -> None:
    # Whatever /etc/resolv.conf points at here (it may have no network), a run ends with a
    # result of its own, not a crash, within the timeout.
    result, took = await run_timed(dns_check(None, "monitor-probe-test.invalid", timeout=2.0))
    assert result.up is False
    assert result.outcome in (Outcome.FAILURE, Outcome.TIMEOUT)
    assert took < 2.0 + 5


# --- config ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("server", "expected"), [
    ("192.0.2.1", ("192.0.2.1", 53)),
    ("192.0.2.1:5353", ("192.0.2.1", 5353)),
    ("::1", ("::1", 53)),
    ("[::1]:5300", ("::1", 5300)),
    ("[2001:db8::1]", ("2001:db8::1", 53)),
    ("ns.example.com", ("ns.example.com", 53)),
    ("ns.example.com:8053", ("ns.example.com", 8053)),
])
def test_server_forms(server: str, expected: tuple[str, int]) -> None:
    assert split_server(server) == expected


@pytest.mark.parametrize("fields", [
    {"query": "a..b"},
    {"query": "x" * 64 + ".test"},
    {"query": ""},
    {"query": "www.test", "record_type": "PTR"},
    {"query": "www.test", "server": "1.2.3.4:notaport"},
    {"query": "www.test", "server": "[::1"},
    {"query": "www.test", "server": "1.2.3.4:70000"},
])
def test_bad_config_is_one_clear_error(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        DnsCheck.model_validate({"name": "dns_bad", "kind": "dns", "interval": 10.0, "timeout": 1.0, **fields})
    errors = caught.value.errors()
    assert len(errors) == 1
    assert "\n" not in str(errors[0]["msg"])


def test_importing_probes_does_not_import_dnspython() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import monitor.probes, sys; print('dns' in sys.modules)"],
        capture_output=True, text=True, check=True,
    )
    assert out.stdout.strip() == "False"


async def test_server_given_by_name(server: FakeDns) -> None:
    check = DnsCheck.model_validate({"name": "dns_probe_test", "kind": "dns", "interval": 10.0, "timeout": 2.0,
                                     "query": "www.test", "server": f"localhost:{server.port}"})
    result, _ = await run_timed(check)
    assert result.up is True, result.error
    assert result.value == 2.0


async def test_server_name_that_does_not_resolve() -> None:
    check = DnsCheck.model_validate({"name": "dns_probe_test", "kind": "dns", "interval": 10.0, "timeout": 2.0,
                                     "query": "www.test", "server": "no-such-host.invalid"})
    result, _ = await run_timed(check)
    assert result.up is False
    assert result.error is not None and result.error.startswith("cannot resolve server no-such-host.invalid: ")
