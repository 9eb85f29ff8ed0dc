"""The IPv6 and UDP headers in front of a DHCPv6 message, as a pool's packet
socket hands them over (kvip/actors/_dhcp6_socket.py).

DHCPv6 carries no hardware address of its own, so the server reads its
requests from a packet socket, which tells the link-layer source, and must
take the IPv6 and UDP headers apart itself. Only a UDP header straight after
the fixed IPv6 header is understood: DHCPv6 clients and relays send no
extension headers, and a frame that carries any is not a DHCPv6 request kvip
answers. The UDP checksum is left to the sender's good faith (the kernel did
not check it for a packet socket, and the DHCPv6 decoder rejects garbage).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv6Address

#: The fixed IPv6 header (RFC 8200 3) and the UDP header (RFC 768).
IPV6_HEADER = 40
UDP_HEADER = 8
NEXT_HEADER_UDP = 17

_IPV6 = struct.Struct("!IHBB16s16s")
_UDP = struct.Struct("!HHHH")
_BOTH = struct.Struct("!IHBB16s16sHHHH")


@dataclass(frozen=True, slots=True)
class Datagram6:
    """One UDP datagram over IPv6, headers taken apart."""

    source: IPv6Address
    source_port: int
    destination: IPv6Address
    destination_port: int
    hop_limit: int
    payload: bytes


#: (source address, source port, destination address, destination port,
#: payload), the addresses as 16 bytes.
Udp6Fields = tuple[bytes, int, bytes, int, bytes]


def split_udp6(frame: bytes, at: int = 0) -> Udp6Fields | None:
    """The UDP datagram in the IPv6 packet that starts at byte `at` of `frame`
    (after a link header of that length), cheaply (one unpack, no address
    objects, no copy of the packet: it runs for every request); None when it
    is not IPv6, not UDP right after the fixed header, or when the lengths
    disagree. Bytes after the IPv6 payload length (link padding) are ignored."""
    if len(frame) < at + IPV6_HEADER + UDP_HEADER:
        return None
    first, length, next_header, _, source, destination, sport, dport, udp_length, _ = (
        _BOTH.unpack_from(frame, at)
    )
    if first >> 28 != 6 or next_header != NEXT_HEADER_UDP or udp_length != length:
        return None
    if length < UDP_HEADER or at + IPV6_HEADER + length > len(frame):
        return None
    start = at + IPV6_HEADER
    return source, sport, destination, dport, frame[start + UDP_HEADER : start + length]


def parse_udp6(frame: bytes) -> Datagram6 | None:
    """`split_udp6` with the addresses and hop limit as values."""
    fields = split_udp6(frame)
    if fields is None:
        return None
    source, source_port, destination, destination_port, payload = fields
    return Datagram6(
        source=IPv6Address(source),
        source_port=source_port,
        destination=IPv6Address(destination),
        destination_port=destination_port,
        hop_limit=frame[7],
        payload=payload,
    )


def build_udp6(
    source: IPv6Address,
    destination: IPv6Address,
    source_port: int,
    destination_port: int,
    payload: bytes,
    *,
    hop_limit: int = 64,
) -> bytes:
    """An IPv6 packet carrying `payload` in UDP, with the checksum RFC 8200 8.1
    asks for (what tests and the lab put on a wire as a client would)."""
    length = UDP_HEADER + len(payload)
    udp = _UDP.pack(source_port, destination_port, length, 0) + payload
    checksum = internet_checksum(
        source.packed + destination.packed + struct.pack("!I3xB", length, NEXT_HEADER_UDP) + udp
    )
    udp = udp[:6] + struct.pack("!H", checksum or 0xFFFF) + udp[8:]
    header = _IPV6.pack(
        6 << 28, length, NEXT_HEADER_UDP, hop_limit, source.packed, destination.packed
    )
    return header + udp


def internet_checksum(data: bytes) -> int:
    """The ones' complement sum of RFC 1071 over `data` (padded to even length)."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
