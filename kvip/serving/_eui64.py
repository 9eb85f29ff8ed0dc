"""The MAC inside a link-local IPv6 address, when the host built the address
from it.

A pool that cannot read frames (no CAP_NET_RAW, so no packet socket: see
kvip/actors/_dhcp6_socket.py) never sees a request's Ethernet source. What it
still sees is the source address, and a DHCPv6 client sends from its
link-local address (RFC 8415 13.1). Many hosts form that address from the
NIC's MAC as a modified EUI-64 interface identifier (RFC 4291 2.5.1 and
appendix A): the MAC's first three octets with the universal/local bit
inverted, then ff:fe, then its last three octets. Read backwards, such an
address names the NIC that sent the request.
"""

from __future__ import annotations

#: fe80::/64, the link-local prefix hosts use (RFC 4291 2.5.6: 54 zero bits).
_LINK_LOCAL_PREFIX = b"\xfe\x80" + bytes(6)
#: The octets a modified EUI-64 inserts in the middle of a 48-bit MAC.
_EUI64_FILLER = b"\xff\xfe"
#: RFC 4291 appendix A: the universal/local bit, inverted in the identifier.
_UNIVERSAL_LOCAL = 0x02
#: The individual/group bit: set in multicast MACs, which no NIC sends from.
_GROUP = 0x01


def eui64_mac(address: bytes) -> bytes | None:
    """The 6-byte MAC that the link-local `address` (16 bytes, as packed by
    inet_pton) was formed from as a modified EUI-64 interface identifier:
    fe80::/64 with xx:xx:xx:ff:fe:xx:xx:xx in its last 8 octets, U/L bit
    flipped back. None for any other address: one outside fe80::/64 (a
    global or unique local address says nothing of the link), and every
    interface identifier that is not an EUI-64 of a MAC, notably stable
    privacy addresses (RFC 7217, systemd-networkd's and NetworkManager's
    stable-privacy, Windows' default), temporary ones (RFC 8981) and those
    an operator set by hand: from these no MAC can be learned.

    An identifier that merely looks like an EUI-64 (a random one with ff:fe
    in the middle, 1 in 65536) yields a MAC the NIC never had; a pool finds
    no reservation for it and goes on to the client's DUID.
    """
    if len(address) != 16 or address[:8] != _LINK_LOCAL_PREFIX:
        return None
    if address[11:13] != _EUI64_FILLER:
        return None
    first = address[8] ^ _UNIVERSAL_LOCAL
    if first & _GROUP:
        return None
    return bytes((first, address[9], address[10])) + address[13:16]
