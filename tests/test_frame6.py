"""The IPv6/UDP headers a pool's packet socket hands over, taken apart."""

from __future__ import annotations

import struct
from ipaddress import IPv6Address

from hypothesis import given
from hypothesis import strategies as st

from kvip.serving import build_udp6, parse_udp6, split_udp6
from kvip.serving._frame6 import internet_checksum

CLIENT = IPv6Address("fe80::5054:ff:fe00:101")
SERVERS = IPv6Address("ff02::1:2")


def test_a_solicit_frame_is_taken_apart_field_by_field() -> None:
    frame = build_udp6(CLIENT, SERVERS, 546, 547, b"\x01\x00\x00\x01", hop_limit=1)
    datagram = parse_udp6(frame)
    assert datagram is not None
    assert datagram.source == CLIENT
    assert datagram.destination == SERVERS
    assert (datagram.source_port, datagram.destination_port) == (546, 547)
    assert datagram.hop_limit == 1
    assert datagram.payload == b"\x01\x00\x00\x01"


def test_the_checksum_verifies_over_the_pseudo_header() -> None:
    frame = build_udp6(CLIENT, SERVERS, 546, 547, b"hello")
    length = len(frame) - 40
    pseudo = CLIENT.packed + SERVERS.packed + struct.pack("!I3xB", length, 17)
    assert internet_checksum(pseudo + frame[40:]) == 0


def test_link_padding_after_the_payload_is_ignored() -> None:
    frame = build_udp6(CLIENT, SERVERS, 546, 547, b"abc") + b"\0" * 7
    datagram = parse_udp6(frame)
    assert datagram is not None and datagram.payload == b"abc"


def test_frames_that_are_not_plain_ipv6_udp_are_refused() -> None:
    good = bytearray(build_udp6(CLIENT, SERVERS, 546, 547, b"abcd"))
    assert parse_udp6(bytes(good[:47])) is None  # shorter than both headers
    ipv4 = bytearray(good)
    ipv4[0] = 0x45
    assert parse_udp6(bytes(ipv4)) is None
    hop_by_hop = bytearray(good)
    hop_by_hop[6] = 0  # an extension header before UDP
    assert parse_udp6(bytes(hop_by_hop)) is None
    too_long = bytearray(good)
    struct.pack_into("!H", too_long, 4, len(good) - 40 + 1)
    assert parse_udp6(bytes(too_long)) is None
    disagreeing = bytearray(good)
    struct.pack_into("!H", disagreeing, 44, 9)  # UDP length says 1 byte of payload
    assert parse_udp6(bytes(disagreeing)) is None
    tiny = bytearray(good)
    struct.pack_into("!H", tiny, 4, 4)
    assert parse_udp6(bytes(tiny)) is None


def test_a_packet_after_a_link_header_is_split_where_it_starts() -> None:
    """A packet socket that hands over whole Ethernet frames: the packet starts
    at byte 14, and the header's bytes are no part of it."""
    packet = build_udp6(CLIENT, SERVERS, 546, 547, b"abc")
    ethernet = bytes.fromhex("333300010002 525400000101 86dd")
    fields = split_udp6(ethernet + packet + b"\0" * 5, 14)
    assert fields == (CLIENT.packed, 546, SERVERS.packed, 547, b"abc")
    assert split_udp6(ethernet + packet[:-1], 14) is None  # the packet cut short
    assert split_udp6(ethernet + packet, 13) is None  # not where it starts


@given(st.binary(max_size=120), st.integers(0, 20))
def test_split_at_an_offset_is_split_of_the_rest(data: bytes, at: int) -> None:
    assert split_udp6(data, at) == split_udp6(data[at:])


@given(st.binary(max_size=120))
def test_any_bytes_parse_or_are_refused_without_raising(data: bytes) -> None:
    datagram = parse_udp6(data)
    if datagram is not None:
        assert len(datagram.payload) <= len(data) - 48


@given(st.binary(max_size=300), st.integers(0, 65535), st.integers(0, 65535))
def test_build_then_parse_gives_back_what_went_in(payload: bytes, sport: int, dport: int) -> None:
    datagram = parse_udp6(build_udp6(CLIENT, SERVERS, sport, dport, payload))
    assert datagram is not None
    assert (datagram.payload, datagram.source_port, datagram.destination_port) == (
        payload,
        sport,
        dport,
    )
