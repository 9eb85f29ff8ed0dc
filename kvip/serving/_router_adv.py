"""Router Advertisements for a pool's link (RFC 4861 4.2), built and read
without I/O; kvip/actors/_router_adv.py sends them.

kvip is not a router: its advertisements carry a router lifetime of 0 (RFC 4861
6.2.3: hosts then make no default route through it), set the Managed and
Other flags so that hosts ask DHCPv6 for their address and options, and give
the pool's subnet as on-link without autonomous addressing (A=0), so no host
makes an address of its own beside the reserved one.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network

ROUTER_SOLICITATION = 133
ROUTER_ADVERTISEMENT = 134

#: RFC 4861 6.1: neighbour discovery messages must arrive with this hop limit
#: (proof that they were not forwarded by a router).
ND_HOP_LIMIT = 255

MANAGED = 0x80
OTHER = 0x40
ON_LINK = 0x80
AUTONOMOUS = 0x40

OPTION_SOURCE_LINK_LAYER = 1
OPTION_PREFIX_INFORMATION = 3

#: RFC 4861 6.2.1's defaults for AdvValidLifetime and AdvPreferredLifetime.
DEFAULT_VALID_LIFETIME = 2_592_000
DEFAULT_PREFERRED_LIFETIME = 604_800
#: The hop limit hosts are told to use (AdvCurHopLimit; 0 would leave it unsaid).
DEFAULT_CUR_HOP_LIMIT = 64

_HEADER = struct.Struct("!BBHBBHII")
_PREFIX = struct.Struct("!BBBBIII16s")


@dataclass(frozen=True, slots=True, kw_only=True)
class Advertisement:
    """What one Router Advertisement says (the fields kvip sets)."""

    prefix: IPv6Network
    source_mac: bytes
    managed: bool = True
    other: bool = True
    cur_hop_limit: int = DEFAULT_CUR_HOP_LIMIT
    router_lifetime: int = 0
    reachable_time: int = 0
    retrans_timer: int = 0
    on_link: bool = True
    autonomous: bool = False
    valid_lifetime: int = DEFAULT_VALID_LIFETIME
    preferred_lifetime: int = DEFAULT_PREFERRED_LIFETIME


def build_router_advertisement(advert: Advertisement) -> bytes:
    """The ICMPv6 message of `advert`, checksum 0: a raw ICMPv6 socket fills it
    in (Linux computes it for every ICMPv6 message it sends)."""
    if len(advert.source_mac) != 6:
        raise ValueError(f"a source link-layer address is 6 bytes, not {advert.source_mac!r}")
    if advert.preferred_lifetime > advert.valid_lifetime:
        raise ValueError("the preferred lifetime exceeds the valid lifetime (RFC 4861 6.2.1)")
    flags = (MANAGED if advert.managed else 0) | (OTHER if advert.other else 0)
    header = _HEADER.pack(
        ROUTER_ADVERTISEMENT,
        0,
        0,
        advert.cur_hop_limit,
        flags,
        advert.router_lifetime,
        advert.reachable_time,
        advert.retrans_timer,
    )
    prefix_flags = (ON_LINK if advert.on_link else 0) | (AUTONOMOUS if advert.autonomous else 0)
    prefix = _PREFIX.pack(
        OPTION_PREFIX_INFORMATION,
        4,
        advert.prefix.prefixlen,
        prefix_flags,
        advert.valid_lifetime,
        advert.preferred_lifetime,
        0,
        advert.prefix.network_address.packed,
    )
    source = bytes((OPTION_SOURCE_LINK_LAYER, 1)) + advert.source_mac
    return header + prefix + source


def parse_router_advertisement(data: bytes) -> Advertisement | None:
    """The fields of a Router Advertisement kvip would send, read back; None
    when `data` is no RA or lacks a Prefix Information or source link-layer
    option. Unknown options are skipped (RFC 4861 4.6)."""
    if len(data) < _HEADER.size or data[0] != ROUTER_ADVERTISEMENT or data[1] != 0:
        return None
    _, _, _, hop_limit, flags, lifetime, reachable, retrans = _HEADER.unpack_from(data)
    options = dict(_options(data[_HEADER.size :]) or {})
    prefix_option, source = (
        options.get(OPTION_PREFIX_INFORMATION),
        options.get(OPTION_SOURCE_LINK_LAYER),
    )
    if prefix_option is None or source is None or len(prefix_option) != _PREFIX.size:
        return None
    _, _, length, prefix_flags, valid, preferred, _, network = _PREFIX.unpack(prefix_option)
    if length > 128:
        return None
    return Advertisement(
        prefix=IPv6Network((IPv6Address(network), length), strict=False),
        source_mac=source[2:8],
        managed=bool(flags & MANAGED),
        other=bool(flags & OTHER),
        cur_hop_limit=hop_limit,
        router_lifetime=lifetime,
        reachable_time=reachable,
        retrans_timer=retrans,
        on_link=bool(prefix_flags & ON_LINK),
        autonomous=bool(prefix_flags & AUTONOMOUS),
        valid_lifetime=valid,
        preferred_lifetime=preferred,
    )


def is_router_solicitation(data: bytes, *, hop_limit: int, source: IPv6Address) -> bool:
    """Whether `data` is a Router Solicitation a router must answer (RFC 4861
    6.1.1): hop limit 255, code 0, at least 8 bytes, well-formed options, and
    no source link-layer address option when sent from the unspecified address.
    The checksum was checked by the kernel."""
    if hop_limit != ND_HOP_LIMIT or len(data) < 8:
        return False
    if data[0] != ROUTER_SOLICITATION or data[1] != 0:
        return False
    options = _options(data[8:])
    if options is None:
        return False
    return not (source.is_unspecified and any(k == OPTION_SOURCE_LINK_LAYER for k, _ in options))


def _options(data: bytes) -> list[tuple[int, bytes]] | None:
    """Neighbour discovery options (type, whole option); None when one has
    length 0 or runs past the end (RFC 4861 4.6: such a message is dropped)."""
    found, offset = [], 0
    while offset < len(data):
        if offset + 2 > len(data) or data[offset + 1] == 0:
            return None
        end = offset + data[offset + 1] * 8
        if end > len(data):
            return None
        found.append((data[offset], data[offset:end]))
        offset = end
    return found
