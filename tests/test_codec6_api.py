"""The DHCPv6 codec's public face (protocol.dhcp6), and its wire layout checked
against bytes written out by hand from RFC 8415 (and RFC 3646, 5908, 6939):
both twins could share a misreading; these bytes cannot."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv6Address
from typing import Any
from uuid import UUID

import pytest

import protocol
from protocol import dhcp6
from protocol.dhcp6 import (
    IANA,
    IAPD,
    IATA,
    ClientId,
    ClientLinkLayerAddress,
    DnsServers,
    DomainList,
    DuidEN,
    DuidLL,
    DuidLLT,
    DuidUUID,
    ElapsedTime,
    IAAddress,
    IAPrefix,
    InterfaceId,
    Message,
    MessageType,
    NtpMulticastAddress,
    NtpServer,
    NtpServerAddress,
    NtpServerFqdn,
    OptionCode,
    OptionRequest,
    Preference,
    RapidCommit,
    RawOption,
    RelayMessage,
    RelayMessageOption,
    ServerId,
    Status,
    StatusCode,
    UnknownDuid,
    _declared,
    decode,
    encode,
)

MAC = bytes.fromhex("525400aabbcc")
V6 = IPv6Address("2001:db8::5")


def test_public_names_are_pinned() -> None:
    assert sorted(dhcp6.__all__) == sorted([
        "IANA", "IAPD", "IATA", "ClientId", "ClientLinkLayerAddress", "CodecError",
        "DecodeError", "DnsServers", "DomainList", "Duid", "DuidEN", "DuidLL", "DuidLLT",
        "DuidType", "DuidUUID", "ElapsedTime", "EncodeError", "IAAddress", "IAPrefix",
        "InterfaceId", "Message", "MessageType", "NtpMulticastAddress", "NtpServer",
        "NtpServerAddress", "NtpServerFqdn", "NtpSuboption", "Option", "OptionCode",
        "OptionRequest", "Preference", "RapidCommit", "RawOption", "RelayMessage",
        "RelayMessageOption", "ServerId", "Status", "StatusCode", "UnknownDuid", "decode",
        "encode",
    ])  # fmt: skip
    for name in dhcp6.__all__:
        assert getattr(dhcp6, name) is not None


def test_the_errors_are_the_dhcpv4_codecs() -> None:
    assert dhcp6.DecodeError is protocol.DecodeError
    assert dhcp6.EncodeError is protocol.EncodeError


def test_numbers_follow_the_rfcs() -> None:
    assert [int(kind) for kind in MessageType] == list(range(1, 14))
    assert (int(MessageType.INFORMATION_REQUEST), int(MessageType.RELAY_REPL)) == (11, 13)
    expected = {
        "CLIENT_ID": 1, "SERVER_ID": 2, "IA_NA": 3, "IA_TA": 4, "IA_ADDRESS": 5, "ORO": 6,
        "PREFERENCE": 7, "ELAPSED_TIME": 8, "RELAY_MESSAGE": 9, "STATUS_CODE": 13,
        "RAPID_COMMIT": 14, "INTERFACE_ID": 18, "DNS_SERVERS": 23, "DOMAIN_LIST": 24,
        "IA_PD": 25, "IA_PREFIX": 26, "NTP_SERVER": 56, "CLIENT_LINKLAYER_ADDR": 79,
    }  # fmt: skip
    assert {name: int(OptionCode[name]) for name in expected} == expected
    assert [int(status) for status in Status] == list(range(7))
    typed: list[Any] = [
        ClientId, ServerId, IANA, IATA, IAAddress, OptionRequest, Preference, ElapsedTime,
        RelayMessageOption, StatusCode, RapidCommit, InterfaceId, DnsServers, DomainList,
        IAPD, IAPrefix, NtpServer, ClientLinkLayerAddress,
    ]  # fmt: skip
    assert {int(kind.code) for kind in typed} == set(expected.values())


def test_values_are_frozen() -> None:
    message = Message(msg_type=MessageType.SOLICIT, transaction_id=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.transaction_id = 2  # type: ignore[misc]
    assert hash(message) == hash(Message(msg_type=MessageType.SOLICIT, transaction_id=1))


def test_duids_give_the_mac_only_when_they_carry_one() -> None:
    llt, ll = DuidLLT(1, 12345, MAC), DuidLL(1, MAC)
    assert llt.mac == ll.mac == "52:54:00:aa:bb:cc"
    assert llt.link_layer_address == ll.link_layer_address == MAC
    assert DuidLL(32, bytes(20)).mac is None  # InfiniBand: an address, not a MAC
    assert DuidLL(32, bytes(20)).link_layer_address == bytes(20)
    for other in (DuidEN(9, b"x"), DuidUUID(UUID(int=1)), UnknownDuid(9, b"x")):
        assert other.mac is None and other.link_layer_address is None
    assert ClientLinkLayerAddress(1, MAC).mac == "52:54:00:aa:bb:cc"


# (value, its option's bytes written out by hand: code, length, data)
LAYOUTS: list[tuple[object, str]] = [
    (ClientId(DuidLLT(1, 0x01020304, MAC)), "0001 000e 0001 0001 01020304 525400aabbcc"),
    (ServerId(DuidEN(9, b"ab")), "0002 0008 0002 00000009 6162"),
    (ClientId(DuidLL(1, MAC)), "0001 000a 0003 0001 525400aabbcc"),
    (ClientId(DuidUUID(UUID(int=1))), "0001 0012 0004" + "00" * 15 + "01"),
    (ClientId(UnknownDuid(7, b"z")), "0001 0003 0007 7a"),
    (
        IANA(
            iaid=1,
            t1=2,
            t2=3,
            options=(IAAddress(address=V6, preferred_lifetime=4, valid_lifetime=5),),
        ),
        "0003 0028 00000001 00000002 00000003"
        " 0005 0018 20010db8000000000000000000000005 00000004 00000005",
    ),
    (IATA(iaid=7, options=(StatusCode(2, "no"),)), "0004 000c 00000007 000d 0004 0002 6e6f"),
    (
        IAPD(iaid=1, options=(IAPrefix(prefix_length=56, prefix=IPv6Address("2001:db8::")),)),
        "0019 0029 00000001 00000000 00000000"
        " 001a 0019 00000000 00000000 38 20010db8000000000000000000000000",
    ),
    (OptionRequest((23, 24)), "0006 0004 0017 0018"),
    (Preference(255), "0007 0001 ff"),
    (ElapsedTime(0xFFFF), "0008 0002 ffff"),
    (StatusCode(0, "ok"), "000d 0004 0000 6f6b"),
    (RapidCommit(), "000e 0000"),
    (InterfaceId(b"eth0"), "0012 0004 65746830"),
    (DnsServers((V6,)), "0017 0010 20010db8000000000000000000000005"),
    (DomainList(("lab.example", "")), "0018 000e 036c6162 076578616d706c65 00 00"),
    (
        NtpServer(
            (
                NtpServerAddress(V6),
                NtpMulticastAddress(IPv6Address("ff05::101")),
                NtpServerFqdn("ntp"),
            )
        ),
        "0038 0031 0001 0010 20010db8000000000000000000000005"
        " 0002 0010 ff050000000000000000000000000101 0003 0005 036e7470 00",
    ),
    (ClientLinkLayerAddress(1, MAC), "004f 0008 0001 525400aabbcc"),
    (RawOption(1000, b"\x01\x02"), "03e8 0002 0102"),
]


@pytest.mark.parametrize(("value", "wire"), LAYOUTS, ids=lambda v: type(v).__name__)
def test_option_layout_matches_the_rfc(value: dhcp6.Option, wire: str) -> None:
    packet = bytes.fromhex("01 123456" + wire.replace(" ", ""))
    message = Message(msg_type=MessageType.SOLICIT, transaction_id=0x123456, options=(value,))
    assert encode(message) == packet
    assert decode(packet) == message


def test_relay_layout_matches_the_rfc() -> None:
    inner = Message(msg_type=MessageType.SOLICIT, transaction_id=1, options=(ElapsedTime(0),))
    relay = RelayMessage(
        msg_type=MessageType.RELAY_FORW,
        hop_count=2,
        link_address=V6,
        peer_address=IPv6Address("fe80::1"),
        options=(InterfaceId(b"x"), RelayMessageOption(inner)),
    )
    wire = (
        "0c 02 20010db8000000000000000000000005 fe800000000000000000000000000001"
        " 0012 0001 78 0009 000a 01000001 0008 0002 0000"
    )
    assert encode(relay) == bytes.fromhex(wire.replace(" ", ""))
    assert decode(bytes.fromhex(wire.replace(" ", ""))) == relay
    assert relay.relayed == inner and relay.innermost == inner and relay.interface_id == b"x"


def test_message_lookups() -> None:
    message = Message(
        msg_type=MessageType.SOLICIT,
        transaction_id=1,
        options=(
            ClientId(DuidLL(1, MAC)),
            IANA(iaid=1),
            IANA(iaid=2),
            IAPD(iaid=3),
            OptionRequest((23,)),
            RapidCommit(),
            ElapsedTime(5),
        ),
    )
    assert message.client_duid == DuidLL(1, MAC) and message.server_duid is None
    assert [ia.iaid for ia in message.ia_nas] == [1, 2]
    assert [ia.iaid for ia in message.ia_pds] == [3] and message.ia_tas == ()
    assert message.requested_options == (23,) and message.rapid_commit
    assert message.elapsed_time == 5
    assert message.get(StatusCode) is None and message.get_all(IANA) == message.ia_nas


@pytest.mark.parametrize(
    "wire",
    [
        "",
        "01 0000",
        "00 000000",  # msg-type 0
        "0e 000000",  # LEASEQUERY: not read
        "0c 00" + "00" * 31,  # relay header cut short
        "01 000000 0001",  # option header cut short
        "01 000000 0001 0004 0001",  # length past the end
        "01 000000 0001 0001 00",  # DUID without its type
        "01 000000 0001 0006 0001 0001 0000",  # DUID-LLT without all of its time
        "01 000000 0001 0011 0004" + "00" * 15,  # DUID-UUID one byte short
        "01 000000 0003 000b" + "00" * 11,  # IA_NA short of T2
        "01 000000 0006 0003 000100",  # ORO: half a code
        "01 000000 0007 0000",  # preference without a value
        "01 000000 0008 0003 000000",  # elapsed time of 3 bytes
        "01 000000 000e 0001 00",  # rapid commit with a value
        "01 000000 0017 0004 20010db8",  # a quarter of a DNS server
        "01 000000 0018 0004 03616263",  # a name without its root label
        "01 000000 0018 0002 c000",  # a compression pointer (RFC 8415 10: none)
        "01 000000 0018 0004 012e0000",  # a label holding a dot
        "01 000000 0018 0003 01ff00",  # a label that is not ASCII
        "01 000000 000d 0003 0000ff",  # a status message that is not UTF-8
        "01 000000 0009 0003 010000",  # a relayed message cut short
        "01 000000 001a 0019 00000000 00000000 81" + "00" * 16,  # prefix length 129
        "01 000000 0038 0006 0001 0002 0000",  # NTP server address of 2 bytes
        "01 000000 0038 0009 0003 0005 01610000 00",  # NTP FQDN with two names
        "01 000000 004f 0001 00",  # link-layer address without its type
    ],
)
def test_malformed_packets_raise_decode_error(wire: str) -> None:
    with pytest.raises(dhcp6.DecodeError):
        decode(bytes.fromhex(wire.replace(" ", "")))


# Each construct declaration on its own: parse(bytes) then build gives the bytes back.
DECLARED = [
    ("DUID", "0001 0001 01020304 525400aabbcc"),
    ("DUID", "0002 00000009 6162"),
    ("DUID", "0003 0001 525400aabbcc"),
    ("DUID", "0004" + "00" * 15 + "01"),
    ("DUID", "0007 7a"),
    ("IA_NA", "00000001 00000002 00000003 000e0000"),
    ("IA_TA", "00000007 000d0004 00026e6f"),
    ("IA_ADDRESS", "20010db8000000000000000000000005 00000004 00000005"),
    ("IA_PREFIX", "00000000 00000000 38 20010db8000000000000000000000000"),
    ("ORO", "0017 0018"),
    ("PREFERENCE", "ff"),
    ("ELAPSED_TIME", "ffff"),
    ("STATUS_CODE", "0000 6f6b"),
    ("RAPID_COMMIT", ""),
    ("ADDRESSES", "20010db8000000000000000000000005" * 2),
    ("DOMAIN_LIST", "036c6162 076578616d706c65 00 00"),
    ("ONE_NAME", "036e7470 00"),
    ("CLIENT_LINKLAYER_ADDR", "0001 525400aabbcc"),
    ("OPTIONS", "0001 0002 0102 0003 0000"),
    ("MESSAGE", "01 123456 000e0000"),
    ("MESSAGE", "0c 02" + "00" * 32 + "0012 0001 78"),
]


@pytest.mark.parametrize(("name", "wire"), DECLARED, ids=[name for name, _ in DECLARED])
def test_each_declaration_round_trips(name: str, wire: str) -> None:
    data = bytes.fromhex(wire.replace(" ", ""))
    declaration = getattr(_declared, name)
    assert declaration.build(declaration.parse(data)) == data
