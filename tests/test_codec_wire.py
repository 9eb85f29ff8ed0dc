"""The construct declarations themselves: parse(build(x)) == x, build(parse(b)) == b."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address

from hypothesis import given
from hypothesis import strategies as st

from protocol._codec import _ADDRESS_CACHE_SIZE, _ADDRESSES, _address
from protocol._wire import HEADER, MAGIC_COOKIE, OPTION, OPTION_AREA

u8, u16, u32 = st.integers(0, 0xFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF)
header_fields = st.fixed_dictionaries(
    {
        "op": u8, "htype": u8, "hops": u8, "xid": u32, "secs": u16, "flags": u16,
        "ciaddr": u32, "yiaddr": u32, "siaddr": u32, "giaddr": u32,
        "chaddr": st.binary(max_size=16),
        "sname": st.binary(min_size=64, max_size=64),
        "file": st.binary(min_size=128, max_size=128),
    }
)  # fmt: skip


@given(header_fields)
def test_header_declaration_round_trips(fields: dict[str, object]) -> None:
    built = HEADER.build(fields)
    assert len(built) == 240 and built.endswith(MAGIC_COOKIE)
    parsed = HEADER.parse(built)
    assert {name: parsed[name] for name in fields} == fields
    assert parsed.hlen == len(fields["chaddr"])  # type: ignore[arg-type]
    assert HEADER.build(parsed) == built


def test_header_declaration_matches_rfc2131_offsets() -> None:
    built = HEADER.build(
        {
            "op": 2,
            "htype": 1,
            "hops": 3,
            "xid": 0x01020304,
            "secs": 5,
            "flags": 0x8000,
            "ciaddr": 6,
            "yiaddr": 7,
            "siaddr": 8,
            "giaddr": 9,
            "chaddr": b"\xaa" * 6,
            "sname": b"s".ljust(64, b"\0"),
            "file": b"f".ljust(128, b"\0"),
        }
    )
    assert built[:12] == bytes((2, 1, 6, 3, 1, 2, 3, 4, 0, 5, 0x80, 0))
    assert struct.unpack("!IIII", built[12:28]) == (6, 7, 8, 9)
    assert built[28:44] == b"\xaa" * 6 + bytes(10)
    assert built[44:45] == b"s" and built[108:109] == b"f"


@given(st.integers(1, 254), st.binary(max_size=255))
def test_option_declaration_round_trips(code: int, data: bytes) -> None:
    built = OPTION.build({"code": code, "data": data})
    assert built == bytes((code, len(data))) + data
    assert OPTION.parse(built).data == data


def test_pad_and_end_are_a_lone_byte() -> None:
    assert OPTION.build({"code": 0, "data": None}) == b"\0"
    assert OPTION.build({"code": 255, "data": None}) == b"\xff"
    area = OPTION_AREA.parse(b"\x00\x35\x01\x01\xff\x00\x03\x09")
    assert [option.code for option in area.options][:3] == [0, 53, 255]
    assert area.rest == b"\x03\x09"  # a truncated option is left unparsed


def test_header_address_cache_stays_bounded() -> None:
    for value in range(1, 2 * _ADDRESS_CACHE_SIZE):
        assert int(_address(value)) == value
    assert len(_ADDRESSES) <= _ADDRESS_CACHE_SIZE
    assert int(_ADDRESSES[0]) == 0


def test_ipv4address_keeps_its_integer_in__ip() -> None:
    # encode's hot path reads IPv4Address._ip instead of calling int().
    for text in ("0.0.0.0", "198.18.0.1", "255.255.255.255"):
        address = IPv4Address(text)
        assert address._ip == int(address)  # type: ignore[attr-defined]
