"""Known packets, byte by byte: what decode reads and encode writes."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv4Network

import pytest

from protocol import (
    ClasslessRoute,
    DecodeError,
    EncodeError,
    Message,
    MessageTooBig,
    MessageType,
    Op,
    Options,
    RelayAgentInformation,
    decode,
    encode,
)

MAC = bytes.fromhex("525400aabbcc")
COOKIE = bytes((99, 130, 83, 99))


def bootp(
    *,
    op: int = 1,
    hlen: int = 6,
    chaddr: bytes = MAC,
    sname: bytes = b"",
    file: bytes = b"",
    flags: int = 0,
    ciaddr: int = 0,
    yiaddr: int = 0,
    giaddr: int = 0,
) -> bytes:
    """The 236-byte BOOTP header plus the cookie, packed by hand."""
    return struct.pack(
        "!BBBBIHHIIII16s64s128s",
        op, 1, hlen, 0, 0xDEADBEEF, 7, flags, ciaddr, yiaddr, 0, giaddr, chaddr, sname, file,
    ) + COOKIE  # fmt: skip


def tlv(code: int, data: bytes) -> bytes:
    return bytes((code, len(data))) + data


def test_a_hand_built_discover_decodes_to_its_fields() -> None:
    options = (
        tlv(53, b"\x01")
        + tlv(61, b"\x01" + MAC)
        + tlv(55, bytes((1, 3, 6, 15, 119, 121)))
        + tlv(12, b"vm-0\0")  # NUL-terminated, as some clients send it
        + tlv(57, b"\x05\xdc")
        + b"\xff"
    )
    packet = bootp(flags=0x8000) + options
    packet += bytes(300 - len(packet))
    message = decode(packet)
    assert message.op is Op.BOOTREQUEST
    assert (message.xid, message.secs, message.htype, message.hops) == (0xDEADBEEF, 7, 1, 0)
    assert message.chaddr == MAC and message.mac == "52:54:00:aa:bb:cc"
    assert message.broadcast is True
    assert message.message_type is MessageType.DISCOVER
    assert message.ciaddr == message.yiaddr == message.giaddr == IPv4Address(0)
    assert message.sname == b"" and message.file == b""
    assert list(message.options) == [53, 61, 55, 12, 57]
    assert message.options[61] == b"\x01" + MAC
    assert message.options[55] == (1, 3, 6, 15, 119, 121)
    assert message.options[12] == "vm-0"
    assert message.options.raw(12) == b"vm-0\0"
    assert message.max_message_size == 1500
    assert message.parameter_request_list == (1, 3, 6, 15, 119, 121)
    # The client's own bytes come back: option data is re-encoded unchanged.
    assert encode(message) == packet


def test_short_requests_pad_anywhere_and_a_missing_end_are_accepted() -> None:
    # perfdhcp sends 262-byte requests; some clients end the buffer without END.
    packet = bootp() + b"\0\0" + tlv(53, b"\x03") + b"\0" + tlv(50, bytes((198, 18, 0, 9)))
    message = decode(packet)
    assert len(packet) < 300
    assert message.message_type is MessageType.REQUEST
    assert message.requested_ip == IPv4Address("198.18.0.9")


def test_bytes_after_end_are_ignored() -> None:
    packet = bootp() + tlv(53, b"\x01") + b"\xff" + b"\x03\x09garbage"
    assert dict(decode(packet).options) == {53: MessageType.DISCOVER}


def test_sname_and_file_lose_trailing_nuls_only() -> None:
    packet = bootp(sname=b"srv\0x", file=b"pxelinux.0") + b"\xff"
    message = decode(packet)
    assert (message.sname, message.file) == (b"srv\0x", b"pxelinux.0")


def test_repeated_options_are_joined_rfc3396() -> None:
    packet = bootp() + tlv(43, b"abc") + tlv(53, b"\x01") + tlv(43, b"def") + b"\xff"
    message = decode(packet)
    assert message.options[43] == b"abcdef"
    assert list(message.options) == [43, 53]


def test_overload_reads_file_then_sname_rfc2131() -> None:
    file = tlv(43, b"from-file") + tlv(3, bytes((10, 0, 0, 1))) + b"\xff"
    sname = tlv(43, b"+sname") + tlv(15, b"example.com") + b"\xff"
    packet = bootp(sname=sname, file=file) + tlv(53, b"\x05") + tlv(43, b"main:") + tlv(52, b"\x03")
    message = decode(packet + b"\xff")
    assert message.options[43] == b"main:from-file+sname"
    assert message.options[3] == (IPv4Address("10.0.0.1"),)
    assert message.options[15] == "example.com"
    assert 52 not in message.options
    assert message.sname == b"" and message.file == b""


def test_overload_of_file_only_keeps_sname() -> None:
    packet = bootp(sname=b"server", file=tlv(15, b"lab") + b"\xff") + tlv(52, b"\x01") + b"\xff"
    message = decode(packet)
    assert (message.sname, message.file, message.options[15]) == (b"server", b"", "lab")


def test_rfc3397_example_compresses_and_decodes() -> None:
    # RFC 3397 section 3: "eng.apple.com" and "marketing.apple.com".
    wire = b"\x03eng\x05apple\x03com\x00\x09marketing\xc0\x04"
    message = decode(bootp() + tlv(119, wire) + b"\xff")
    assert message.options[119] == ("eng.apple.com", "marketing.apple.com")
    assert Options({119: ["eng.apple.com", "marketing.apple.com."]}).raw(119) == wire


def test_rfc3442_routes_use_significant_octets() -> None:
    router = bytes((198, 18, 0, 1))
    wire = b"\x00" + router + b"\x08\x0a" + router + b"\x18\xc0\xa8\x01" + router
    routes = decode(bootp() + tlv(121, wire) + b"\xff").options[121]
    gateway = IPv4Address("198.18.0.1")
    assert routes == (
        ClasslessRoute(IPv4Network("0.0.0.0/0"), gateway),
        ClasslessRoute(IPv4Network("10.0.0.0/8"), gateway),
        ClasslessRoute(IPv4Network("192.168.1.0/24"), gateway),
    )
    assert Options({121: routes}).raw(121) == wire


def test_route_bits_past_the_width_are_masked() -> None:
    wire = b"\x09\x0a\xff" + bytes(4)  # 10.255/9: the low 7 bits are not part of the prefix
    route = decode(bootp() + tlv(121, wire) + b"\xff").options[121]
    assert route == (ClasslessRoute(IPv4Network("10.128.0.0/9"), IPv4Address(0)),)


def test_relay_agent_information_keeps_suboptions_in_order() -> None:
    wire = tlv(2, b"remote") + tlv(1, b"eth0/1") + tlv(1, b"again")
    info = decode(bootp() + tlv(82, wire) + b"\xff").relay_agent_info
    assert info == RelayAgentInformation(((2, b"remote"), (1, b"eth0/1"), (1, b"again")))
    assert (info.circuit_id, info.remote_id, info.get(9)) == (b"eth0/1", b"remote", None)


def reply(options: dict[int, object], **fields: object) -> Message:
    return Message(op=Op.BOOTREPLY, xid=0x01020304, chaddr=MAC, options=Options(options), **fields)  # type: ignore[arg-type]


def options_of(packet: bytes) -> list[tuple[int, bytes]]:
    """The TLVs of the options field, in order, up to END."""
    out, pos = [], 240
    while packet[pos] != 255:
        if packet[pos] == 0:
            pos += 1
            continue
        out.append((packet[pos], packet[pos + 2 : pos + 2 + packet[pos + 1]]))
        pos += 2 + packet[pos + 1]
    return out


def test_encode_writes_53_first_and_82_last_then_pads_to_300() -> None:
    info = RelayAgentInformation(((1, b"c"),))
    packet = encode(reply({82: info, 1: IPv4Address("255.255.0.0"), 53: MessageType.ACK, 51: 3600}))
    assert [code for code, _ in options_of(packet)] == [53, 1, 51, 82]
    assert len(packet) == 300
    assert packet[:4] == bytes((2, 1, 6, 0))
    assert packet[236:240] == COOKIE


def test_long_values_are_split_into_255_byte_parts() -> None:
    value = bytes(range(256)) * 2  # 512 bytes
    packet = encode(reply({53: 2, 43: value}))
    parts = [data for code, data in options_of(packet) if code == 43]
    assert [len(part) for part in parts] == [255, 255, 2]
    assert decode(packet).options[43] == value


def test_max_size_moves_options_into_file_then_sname() -> None:
    options = {53: 2, 43: bytes(200), 60: bytes(100), 15: "x" * 40, 12: "y" * 20}
    packet = encode(reply(options), max_size=576)
    assert len(packet) <= 576 - 28
    assert packet[240 + 3 :].find(bytes((52, 1))) >= 0
    assert decode(packet) == reply(options)
    # Without the limit nothing is overloaded.
    assert 52 not in [code for code, _ in options_of(encode(reply(options)))]


def test_overload_does_not_touch_a_used_file_field() -> None:
    options = {53: 2, 43: bytes(300), 60: bytes(40)}
    message = reply(options, file=b"pxelinux.0")
    packet = encode(message, max_size=576)
    assert packet[108:118] == b"pxelinux.0"
    assert decode(packet) == message


def test_options_that_do_not_fit_raise_message_too_big() -> None:
    with pytest.raises(MessageTooBig, match="options need") as raised:
        encode(reply({53: 2, 43: bytes(1000)}), max_size=576)
    assert isinstance(raised.value, EncodeError)  # a caller catching EncodeError sees it
    # Without the limit the same message encodes: only its size was the problem.
    assert len(encode(reply({53: 2, 43: bytes(1000)}))) > 1000


def test_max_size_below_576_counts_as_576() -> None:
    message = reply({53: 2, 43: bytes(280)})
    assert encode(message, max_size=300) == encode(message, max_size=576)


@pytest.mark.parametrize(
    ("packet", "error"),
    [
        (bytes(120), "truncated header: 120 bytes, need 236"),
        (bootp()[:238], "no magic cookie"),
        (bootp()[:236] + b"\x63\x82\x53\x64", "bad magic cookie"),
        (bootp(hlen=17), "hlen 17 > 16"),
        (bootp(op=3) + b"\xff", "op 3"),
        (bootp() + b"\x03\x09" + bytes(4) + b"\xff", "option 3 length 9 runs past the end"),
        (bootp() + b"\x03", "option 3 has no length byte"),
        (bootp() + tlv(3, bytes(5)) + b"\xff", "option 3 length 5, must be a multiple of 4"),
        (bootp() + tlv(1, bytes(3)) + b"\xff", "option 1 length 3, must be 4"),
        (bootp() + tlv(51, bytes(3)) + b"\xff", "option 51 length 3, must be 4"),
        (bootp() + tlv(57, bytes(1)) + b"\xff", "option 57 length 1, must be 2"),
        (bootp() + tlv(53, b"\x01\x01") + b"\xff", "option 53 length 2, must be 1"),
        (bootp() + tlv(80, b"\x01") + b"\xff", "option 80 length 1, must be 0"),
        (bootp() + tlv(52, b"\x04") + b"\xff", "option 52 is 04"),
        (bootp() + tlv(52, b"") + b"\xff", "option 52 is empty"),
        (bootp() + tlv(52, b"\x01") + tlv(52, b"\x01") + b"\xff", "option 52 is 0101"),
        (bootp(file=tlv(52, b"\x02") + b"\xff") + tlv(52, b"\x01"), "option overload loop"),
        (bootp(file=tlv(3, bytes(3))) + tlv(52, b"\x01"), "option 3 length 3"),
        (bootp(sname=b"\x2b\x7f") + tlv(52, b"\x02"), "option 43 length 127 runs past"),
        (bootp() + tlv(82, b"\x01\x05ab") + b"\xff", "relay agent sub-option 1 length 5"),
        (bootp() + tlv(82, b"\x01") + b"\xff", "relay agent sub-option 1 has no length"),
        (bootp() + tlv(119, b"\x01a\xc0\x00") + b"\xff", "does not point backwards"),
        (bootp() + tlv(119, b"\x01a\x00\x01b\xc0\x04") + b"\xff", "does not point backwards"),
        (bootp() + tlv(119, b"\x01a\x00\x01b\xc0\x05") + b"\xff", "does not point backwards"),
        (bootp() + tlv(119, b"\x01a\x00\xc0") + b"\xff", "pointer at offset 3 is truncated"),
        (bootp() + tlv(119, b"\x03ab") + b"\xff", "label at offset 0 runs past the end"),
        (bootp() + tlv(119, b"\x01a") + b"\xff", "runs past the end"),
        (bootp() + tlv(119, b"\x41" + bytes(65)) + b"\xff", "label type 0x41"),
        (bootp() + tlv(119, b"\x03a.b\x00") + b"\xff", "not ASCII without dots"),
        (bootp() + tlv(119, b"\x01\xff\x00") + b"\xff", "not ASCII without dots"),
        (bootp() + tlv(121, b"\x21" + bytes(8)) + b"\xff", "prefix width 33 > 32"),
        (bootp() + tlv(121, b"\x18\x0a\x00\x00\x01") + b"\xff", "runs past the end"),
    ],
)
def test_malformed_packets_raise_decode_error(packet: bytes, error: str) -> None:
    with pytest.raises(DecodeError, match=error.replace("(", r"\(")):
        decode(packet)


def test_a_domain_name_over_255_bytes_is_refused() -> None:
    name = (b"\x3f" + b"a" * 63) * 4 + b"\x00"  # 257 bytes, in two parts (RFC 3396)
    with pytest.raises(DecodeError, match="longer than 255 bytes"):
        decode(bootp() + tlv(119, name[:200]) + tlv(119, name[200:]) + b"\xff")


def test_pointer_chains_that_go_backwards_decode() -> None:
    wire = b"\x03com\x00" + b"\x07example\xc0\x00" + b"\x03www\xc0\x05"
    names = decode(bootp() + tlv(119, wire) + b"\xff").options[119]
    assert names == ("com", "example.com", "www.example.com")


def test_decode_accepts_any_bytes_like_input() -> None:
    packet = bootp() + tlv(53, b"\x01") + b"\xff"
    assert decode(bytearray(packet)) == decode(memoryview(packet)) == decode(packet)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({3: "10.0.0.1"}, "option 3 expects a sequence of IPv4Address"),
        ({1: "255.255.255.0"}, "option 1 expects IPv4Address"),
        ({51: -1}, "option 51 expects an int of 4 bytes"),
        ({26: 70000}, "option 26 expects an int of 2 bytes"),
        ({51: True}, "option 51 expects an int"),
        ({12: b"host"}, "option 12 expects str"),
        ({12: "\ud800"}, "not encodable"),
        ({61: "id"}, "option 61 expects bytes"),
        ({80: b"x"}, "option 80 carries no data"),
        ({55: [1, 256]}, "option 55 expects an int of 1 bytes"),
        ({119: "example.com"}, "expected a sequence of domain names"),
        ({119: ["a..b"]}, "bad label"),
        ({119: ["a" * 64]}, "bad label"),
        ({119: [".".join(["a" * 60] * 5)]}, "longer than 255 bytes"),
        ({119: ["ex\u00e4mple.com"]}, "bad label"),
        ({121: [(IPv4Network("10.0.0.0/8"), IPv4Address(1))]}, "expected ClasslessRoute"),
        ({82: ((1, b"x"),)}, "expected RelayAgentInformation"),
        ({82: RelayAgentInformation(((1, bytes(256)),))}, "relay agent sub-option 1"),
        ({0: b""}, "option 0 is framing"),
        ({52: b"\x01"}, "option 52 is framing"),
        ({255: b""}, "option 255 is framing"),
        ({256: b""}, "option code 256 is not an int"),
    ],
)
def test_options_refuse_values_of_the_wrong_type(values: dict[int, object], error: str) -> None:
    with pytest.raises(EncodeError, match=error):
        Options(values)


def test_from_pairs_refuses_a_repeated_code() -> None:
    with pytest.raises(EncodeError, match="option 43 given twice"):
        Options.from_pairs([(43, b"a"), (43, b"b")])


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"chaddr": bytes(17)}, "chaddr/sname/file hold 17/0/0 bytes"),
        ({"sname": bytes(65)}, "at most 16/64/128"),
        ({"xid": 1 << 32}, "header field out of range"),
        ({"htype": -1}, "header field out of range"),
        ({"op": 3}, "op 3"),
        ({"ciaddr": 0}, "addresses must be IPv4Address"),
        ({"options": {53: 1}}, "options must be Options"),
        ({"chaddr": None}, "cannot encode: TypeError"),
        ({"sname": "server"}, "header field out of range"),
        ({"secs": "1"}, "header field out of range"),
    ],
)
def test_encode_refuses_fields_out_of_range(fields: dict[str, object], error: str) -> None:
    base: dict[str, object] = {"op": Op.BOOTREPLY, "xid": 1, "chaddr": MAC}
    message = Message(**(base | fields))  # type: ignore[arg-type]
    with pytest.raises(EncodeError, match=error):
        encode(message)


def test_values_read_back_in_decoded_form() -> None:
    options = Options(
        {53: 2, 3: [IPv4Address("10.0.0.1")], 12: "vm\0", 119: ["example.com."], 55: b"\x01\x03"}
    )
    assert options[53] is MessageType.OFFER
    assert options[3] == (IPv4Address("10.0.0.1"),)
    assert options[12] == "vm" and options.raw(12) == b"vm\0"
    assert options[119] == ("example.com",)
    assert options[55] == (1, 3)
    assert options == Options(
        {53: 2, 3: (IPv4Address("10.0.0.1"),), 12: "vm", 119: ["example.com"], 55: [1, 3]}
    )


def test_unknown_message_types_stay_ints() -> None:
    message = decode(bootp() + tlv(53, b"\x63") + b"\xff")
    assert message.options[53] == 99 and message.message_type is None


def test_non_utf8_text_survives_a_round_trip() -> None:
    packet = bootp() + tlv(12, b"caf\xe9") + b"\xff"
    message = decode(packet)
    assert message.options[12] == "caf\udce9"
    assert Options({12: message.options[12]}).raw(12) == b"caf\xe9"


def test_relay_information_stays_last_in_the_options_field_when_overloading() -> None:
    info = RelayAgentInformation(((1, b"circuit"),))
    message = reply({53: 2, 82: info, 43: bytes(300), 60: bytes(90)})
    packet = encode(message, max_size=576)
    codes = [code for code, _ in options_of(packet)]
    assert codes[0] == 53 and codes[-2:] == [52, 82]  # RFC 3046: 82 last, even after 52
    assert decode(packet) == message


def test_a_label_of_46_bytes_is_not_mistaken_for_a_dot() -> None:
    names = ("a" * 46 + ".example", "www." + "a" * 46 + ".example")
    packet = encode(reply({53: 5, 119: names}))
    assert decode(packet).options[119] == names


def test_convenience_properties_are_none_when_options_are_missing() -> None:
    message = decode(bootp(flags=0) + b"\xff")
    assert message.message_type is None and message.broadcast is False
    assert message.requested_ip is None and message.server_id is None
    assert message.max_message_size is None and message.relay_agent_info is None
    assert message.parameter_request_list == ()


def test_relayed_reply_fields_survive() -> None:
    relay = IPv4Address("198.18.0.254")
    message = reply(
        {53: MessageType.OFFER, 54: IPv4Address("198.18.0.1")},
        giaddr=relay,
        yiaddr=IPv4Address("198.18.0.7"),
        hops=0,
        flags=0x8000,
    )
    again = decode(encode(message))
    assert (again.giaddr, again.yiaddr, again.broadcast) == (relay, IPv4Address("198.18.0.7"), True)
    assert again.server_id == IPv4Address("198.18.0.1")
