"""A small reader for classic pcap files: the UDP/IPv4 datagrams in a capture.

Enough for what tcpdump writes in the lab (Ethernet or Linux cooked capture,
optional 802.1Q tags, IPv4 without fragmentation); anything else is skipped.
Packet formats: pcap (tcpdump's savefile), IEEE 802.3, RFC 791, RFC 768.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
LINKTYPE_ETHERNET = 1
LINKTYPE_LINUX_SLL = 113
_ETH_IPV4 = 0x0800
_ETH_VLAN = (0x8100, 0x88A8)
_IPPROTO_UDP = 17


class PcapError(Exception):
    """Not a pcap file this reader understands."""


@dataclass(frozen=True, slots=True)
class UdpDatagram:
    time: float
    src_mac: str | None
    src: ipaddress.IPv4Address
    dst: ipaddress.IPv4Address
    sport: int
    dport: int
    payload: bytes


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def read_records(data: bytes) -> Iterator[tuple[int, float, bytes]]:
    """(link type, timestamp, frame) for each record."""
    if len(data) < 24 or data[:4] not in _MAGIC:
        raise PcapError("no pcap magic number")
    order, unit = _MAGIC[data[:4]]
    linktype = struct.unpack_from(order + "I", data, 20)[0] & 0x0FFFFFFF
    offset = 24
    while offset + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack_from(order + "IIII", data, offset)
        offset += 16
        frame = data[offset : offset + caplen]
        if len(frame) < caplen:
            raise PcapError("truncated record")
        offset += caplen
        yield linktype, sec + frac * unit, frame


def _ipv4_of_frame(linktype: int, frame: bytes) -> tuple[str | None, bytes] | None:
    """(source MAC, IPv4 packet) or None for anything that is not IPv4."""
    src_mac: str | None
    if linktype == LINKTYPE_ETHERNET:
        src_mac, offset = _mac(frame[6:12]), 12
    elif linktype == LINKTYPE_LINUX_SLL:
        halen = struct.unpack_from(">H", frame, 4)[0]
        src_mac = _mac(frame[6 : 6 + halen]) if halen == 6 else None
        offset = 14
    else:
        raise PcapError(f"link type {linktype} not supported")
    if len(frame) < offset + 2:
        return None
    ethertype = struct.unpack_from(">H", frame, offset)[0]
    while ethertype in _ETH_VLAN and len(frame) >= offset + 6:
        offset += 4
        ethertype = struct.unpack_from(">H", frame, offset)[0]
    if ethertype != _ETH_IPV4:
        return None
    return src_mac, frame[offset + 2 :]


def udp_datagrams(data: bytes) -> Iterator[UdpDatagram]:
    """Every complete, unfragmented UDP/IPv4 datagram in the capture ``data``."""
    for linktype, stamp, frame in read_records(data):
        found = _ipv4_of_frame(linktype, frame)
        if found is None:
            continue
        src_mac, packet = found
        if len(packet) < 20 or packet[0] >> 4 != 4:
            continue
        ihl = (packet[0] & 0x0F) * 4
        total, frag, proto = struct.unpack_from(">H2xH1xB", packet, 2)
        if proto != _IPPROTO_UDP or frag & 0x3FFF or len(packet) < total:
            continue  # not UDP, a fragment, or cut short by the snap length
        udp = packet[ihl:total]
        if len(udp) < 8:
            continue
        sport, dport, length = struct.unpack_from(">HHH", udp)
        yield UdpDatagram(
            time=stamp,
            src_mac=src_mac,
            src=ipaddress.IPv4Address(packet[12:16]),
            dst=ipaddress.IPv4Address(packet[16:20]),
            sport=sport,
            dport=dport,
            payload=bytes(udp[8:length]),
        )


def read_udp(path: Path) -> list[UdpDatagram]:
    return list(udp_datagrams(path.read_bytes()))
