"""scripts/capture_corpus6.py without a lab: how it reads a capture, files each
packet, and refuses packets that are not safe to publish."""

from __future__ import annotations

import socket
import struct
from ipaddress import IPv6Address
from uuid import UUID

from protocol import dhcp6
from scripts import corpus6_packets as capture

LINK_LOCAL = IPv6Address("fe80::1")


def frame(src_mac: str, sport: int, dport: int, payload: bytes) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip6 = struct.pack("!IHBB", 6 << 28, len(udp), 17, 1) + LINK_LOCAL.packed + bytes(16)
    return bytes(6) + bytes.fromhex(src_mac.replace(":", "")) + b"\x86\xdd" + ip6 + udp


def pcap(*frames: bytes) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for data in frames:
        out += struct.pack("<IIII", 0, 0, len(data), len(data)) + data
    return out


def message(kind: dhcp6.MessageType, *options: dhcp6.Option) -> bytes:
    return dhcp6.encode(dhcp6.Message(msg_type=kind, transaction_id=1, options=options))


SOLICIT = message(dhcp6.MessageType.SOLICIT, dhcp6.ClientId(dhcp6.DuidLL(1, b"RT\x00\x1b\x00\x01")))
REPLY = message(dhcp6.MessageType.REPLY, dhcp6.ServerId(dhcp6.DuidLL(1, b"RT\x00\x00\x00\xfe")))
FORWARD = dhcp6.encode(
    dhcp6.RelayMessage(
        msg_type=dhcp6.MessageType.RELAY_FORW,
        hop_count=0,
        link_address=IPv6Address("2001:db8:0:2::1"),
        peer_address=LINK_LOCAL,
        options=(dhcp6.RelayMessageOption(dhcp6.decode(SOLICIT)),),
    )
)


def test_packets_are_filed_under_the_client_mac_the_server_or_the_relay() -> None:
    capture_bytes = pcap(
        frame("52:54:00:1b:00:01", 546, 547, SOLICIT),
        frame("52:54:00:00:00:fe", 547, 546, REPLY),
        frame("52:54:00:00:01:fe", 547, 547, FORWARD),
        frame("52:54:00:77:00:01", 546, 547, SOLICIT),  # no lab tool owns this MAC
    )
    packets = capture.classify(capture_bytes, server="dnsmasq")
    assert [(p.source, p.kind, p.payload) for p in packets] == [
        ("dhclient", "solicit", SOLICIT),
        ("dnsmasq", "reply", REPLY),
        ("dnsmasq-relay", "relay-forw", FORWARD),
    ]


def packet(data: bytes) -> capture.Packet:
    return capture.Packet("dhclient", "solicit", data, dhcp6.decode(data))


def test_only_lab_addresses_macs_and_duids_are_published() -> None:
    assert capture.unsafe(packet(SOLICIT)) is None
    assert capture.unsafe(packet(FORWARD)) is None
    foreign_mac = message(dhcp6.MessageType.SOLICIT, dhcp6.ClientId(dhcp6.DuidLL(1, bytes(6))))
    assert capture.unsafe(packet(foreign_mac)) is not None
    uuid = dhcp6.ClientId(dhcp6.DuidUUID(UUID(int=7)))
    assert capture.unsafe(packet(message(dhcp6.MessageType.SOLICIT, uuid))) is not None
    lab_uuid = dhcp6.ClientId(capture._duid(capture.DUID_UUID))  # type: ignore[arg-type]
    assert capture.unsafe(packet(message(dhcp6.MessageType.SOLICIT, lab_uuid))) is None
    outside = dhcp6.DnsServers((IPv6Address("2606:4700::1111"),))
    assert capture.unsafe(packet(message(dhcp6.MessageType.REPLY, outside))) is not None
    named = dhcp6.RawOption(39, socket.gethostname().encode())
    assert capture.unsafe(packet(message(dhcp6.MessageType.SOLICIT, named))) is not None


def test_a_reply_is_kept_for_each_client_and_kind_of_request_it_answers() -> None:
    def exchange(kind: dhcp6.MessageType, xid: int) -> tuple[bytes, bytes]:
        client = dhcp6.ClientId(dhcp6.DuidLL(1, b"RT\x00\x1b\x00\x01"))
        request = dhcp6.Message(msg_type=kind, transaction_id=xid, options=(client,))
        reply = dhcp6.Message(msg_type=dhcp6.MessageType.REPLY, transaction_id=xid,
                              options=(client,))  # fmt: skip
        return dhcp6.encode(request), dhcp6.encode(reply)

    frames = []
    for kind, xid in ((dhcp6.MessageType.REQUEST, 7), (dhcp6.MessageType.RENEW, 8)):
        request, reply = exchange(kind, xid)
        frames += [frame("52:54:00:1b:00:01", 546, 547, request),
                   frame("52:54:00:00:00:fe", 547, 546, reply)]  # fmt: skip
    packets = capture.classify(pcap(*frames), server="kea")
    replies = [p for p in packets if p.source == "kea"]
    assert [p.answers for p in replies] == ["dhclient request", "dhclient renew"]
    # Same options, different transactions: both kept, one per request, none more.
    kept = capture.select(replies, per_kind=0)
    assert [p.answers for p in kept] == ["dhclient request", "dhclient renew"]
    assert capture.select(replies[:1] * 2, per_kind=0) == replies[:1]
