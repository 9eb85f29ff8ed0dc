"""Router Advertisements as kvip builds them (RFC 4861 4.2, 4.6.1, 4.6.2), read
back byte by byte, and the Router Solicitations it answers (RFC 4861 6.1.1)."""

from __future__ import annotations

import struct
from ipaddress import IPv6Address, IPv6Network

import pytest

from kvip.serving import (
    Advertisement,
    build_router_advertisement,
    is_router_solicitation,
    parse_router_advertisement,
)

SUBNET = IPv6Network("2001:db8:0:1::/64")
MAC = bytes.fromhex("5254000000fe")
LINK_LOCAL = IPv6Address("fe80::1")


def test_the_advertisement_says_managed_other_not_a_router_on_link_not_autonomous() -> None:
    data = build_router_advertisement(Advertisement(prefix=SUBNET, source_mac=MAC))
    assert len(data) == 16 + 32 + 8
    kind, code, checksum, hop_limit, flags, lifetime, reachable, retrans = struct.unpack(
        "!BBHBBHII", data[:16]
    )
    assert (kind, code, checksum) == (134, 0, 0)  # the raw socket fills the checksum in
    assert hop_limit == 64
    assert flags == 0x80 | 0x40  # M and O, nothing else
    assert (lifetime, reachable, retrans) == (0, 0, 0)  # kvip is no default router
    kind, length, prefixlen, pflags, valid, preferred, reserved, prefix = struct.unpack(
        "!BBBBIII16s", data[16:48]
    )
    assert (kind, length, prefixlen) == (3, 4, 64)
    assert pflags == 0x80  # L=1, A=0
    assert (valid, preferred, reserved) == (2_592_000, 604_800, 0)
    assert IPv6Address(prefix) == SUBNET.network_address
    assert data[48:56] == bytes((1, 1)) + MAC


def test_lifetimes_and_flags_travel_as_given_and_read_back() -> None:
    advert = Advertisement(
        prefix=IPv6Network("fd00:1:2::/48"),
        source_mac=MAC,
        managed=False,
        other=True,
        cur_hop_limit=0,
        valid_lifetime=7200,
        preferred_lifetime=3600,
    )
    assert parse_router_advertisement(build_router_advertisement(advert)) == advert


def test_impossible_advertisements_are_refused() -> None:
    with pytest.raises(ValueError, match="6 bytes"):
        build_router_advertisement(Advertisement(prefix=SUBNET, source_mac=b"\0" * 8))
    with pytest.raises(ValueError, match="preferred"):
        build_router_advertisement(
            Advertisement(prefix=SUBNET, source_mac=MAC, valid_lifetime=10, preferred_lifetime=20)
        )


def test_only_well_formed_solicitations_at_hop_limit_255_are_answered() -> None:
    plain = bytes((133, 0, 0, 0, 0, 0, 0, 0))
    with_source = plain + bytes((1, 1)) + MAC
    assert is_router_solicitation(plain, hop_limit=255, source=LINK_LOCAL)
    assert is_router_solicitation(with_source, hop_limit=255, source=LINK_LOCAL)
    assert is_router_solicitation(plain, hop_limit=255, source=IPv6Address("::"))
    assert not is_router_solicitation(plain, hop_limit=254, source=LINK_LOCAL)  # forwarded
    assert not is_router_solicitation(with_source, hop_limit=255, source=IPv6Address("::"))
    assert not is_router_solicitation(plain[:7], hop_limit=255, source=LINK_LOCAL)
    assert not is_router_solicitation(bytes((133, 1)) + plain[2:], hop_limit=255, source=LINK_LOCAL)
    assert not is_router_solicitation(bytes((134,)) + plain[1:], hop_limit=255, source=LINK_LOCAL)
    zero_length = plain + bytes((1, 0)) + MAC
    assert not is_router_solicitation(zero_length, hop_limit=255, source=LINK_LOCAL)
    overrun = plain + bytes((1, 2)) + MAC
    assert not is_router_solicitation(overrun, hop_limit=255, source=LINK_LOCAL)


def test_what_is_no_advertisement_reads_as_none() -> None:
    data = build_router_advertisement(Advertisement(prefix=SUBNET, source_mac=MAC))
    assert parse_router_advertisement(data[:15]) is None
    assert parse_router_advertisement(bytes((133,)) + data[1:]) is None
    assert parse_router_advertisement(data[:48]) is None  # no source link-layer option
    assert parse_router_advertisement(data[:16] + data[48:]) is None  # no prefix option
