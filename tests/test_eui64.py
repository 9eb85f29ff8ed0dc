"""The MAC a pool without CAP_NET_RAW learns from a request's link-local source
address (modified EUI-64, RFC 4291), and what the Responder6 makes of it
beside the client's DUID."""

from __future__ import annotations

import socket
from ipaddress import IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

import kvip.serving
from kvip.serving import eui64_mac
from protocol.dhcp6 import IANA, DuidEN, DuidLLT, MessageType
from tests.lab.dhcp6checks import eui64_link_local
from tests.lab.responder6 import (
    IP,
    MAC,
    OTHER_IP,
    OTHER_MAC,
    answer,
    ask,
    client,
    holds_reservation,
    responder,
)


def packed(address: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, address)


@pytest.mark.parametrize(
    ("address", "mac"),
    [
        # As Linux forms them (addr_gen_mode eui64; the lab clients show it on the wire).
        ("fe80::5054:ff:fe06:14", "52:54:00:06:00:14"),
        ("fe80::5054:ff:fe12:3456", "52:54:00:12:34:56"),
        # A universally administered MAC: the U/L bit is set in the identifier.
        ("fe80::21b:21ff:fe3c:4d5e", "00:1b:21:3c:4d:5e"),
        ("fe80::ff:fe00:1", "02:00:00:00:00:01"),
    ],
)
def test_an_eui64_link_local_gives_back_its_mac(address: str, mac: str) -> None:
    assert eui64_mac(packed(address)) == bytes.fromhex(mac.replace(":", ""))


@pytest.mark.parametrize(
    "address",
    [
        "fe80::8d4f:2c1a:9b3e:7f01",  # stable privacy (RFC 7217): random-looking
        "fe80::1",  # set by hand
        "2001:db8:0:1:5054:ff:fe06:14",  # an EUI-64, but global: not the link's word
        "fd00::5054:ff:fe06:14",  # unique local: likewise
        "fe80:1::5054:ff:fe06:14",  # fe80::/10 but not the fe80::/64 hosts use
        "fe80::300:ff:fe00:1",  # would be 01:00:00:00:00:01, a group MAC
        "::",
    ],
)
def test_other_addresses_give_no_mac(address: str) -> None:
    assert eui64_mac(packed(address)) is None


def test_only_a_whole_ipv6_address_is_read() -> None:
    assert eui64_mac(packed("fe80::5054:ff:fe06:14")[:15]) is None
    assert eui64_mac(b"") is None


@given(st.binary(min_size=6, max_size=6).filter(lambda b: not b[0] & 1))
def test_every_unicast_mac_survives_the_round_trip(mac: bytes) -> None:
    assert eui64_mac(eui64_link_local(mac.hex(":")).packed) == mac


@given(st.binary(min_size=16, max_size=16))
def test_a_mac_is_found_only_in_an_eui64_link_local(address: bytes) -> None:
    mac = eui64_mac(address)
    if mac is not None:
        assert IPv6Address(address) == eui64_link_local(mac.hex(":"))


def test_eui64_mac_is_part_of_the_public_face() -> None:
    assert "eui64_mac" in kvip.serving.__all__


# -- the Responder6 given the address's MAC in place of the frame's -----------------


def source(mac: bytes) -> tuple[str, int, int, int]:
    return (str(eui64_link_local(mac.hex(":"))), 546, 0, 7)


def test_a_duid_en_client_is_known_by_its_eui64_link_local() -> None:
    solicit = client(MessageType.SOLICIT, IANA(iaid=1), duid=DuidEN(32473, b"vm-1"))
    address = source(OTHER_MAC)
    reply = answer(responder(), solicit, source=address, source_mac=eui64_mac(packed(address[0])))
    assert holds_reservation(reply.ia_nas[0], OTHER_IP)


def test_a_duid_en_client_with_a_stable_privacy_link_local_is_unknown() -> None:
    r = responder()
    solicit = client(MessageType.SOLICIT, IANA(iaid=1), duid=DuidEN(32473, b"vm-1"))
    address = "fe80::8d4f:2c1a:9b3e:7f01"
    assert (
        ask(r, solicit, source=(address, 546, 0, 7), source_mac=eui64_mac(packed(address))) is None
    )
    assert r.counters.unknown_mac == 1


def test_two_nics_sharing_a_host_duid_are_told_apart_by_their_link_locals() -> None:
    """A DUID-LLT made from the first NIC is sent on both; each NIC's EUI-64
    link-local names it, as its frames would. A stable-privacy link-local
    names nothing: the DUID's NIC answers, as without a frame."""
    r = responder()
    solicit = client(MessageType.SOLICIT, IANA(iaid=2), duid=DuidLLT(1, 0x2F000000, MAC))
    for mac, ip in ((OTHER_MAC, OTHER_IP), (MAC, IP)):
        address = source(mac)
        reply = answer(r, solicit, source=address, source_mac=eui64_mac(packed(address[0])))
        assert holds_reservation(reply.ia_nas[0], ip)
    private = ("fe80::8d4f:2c1a:9b3e:7f01", 546, 0, 7)
    reply = answer(r, solicit, source=private, source_mac=eui64_mac(packed(private[0])))
    assert holds_reservation(reply.ia_nas[0], IP)
