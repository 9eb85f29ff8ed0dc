"""The codec's public face: the names other layers are written against."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from ipaddress import IPv4Address

import protocol
from protocol import DecodeError, EncodeError, Message, MessageType, Op, OptionCode, Options


def test_public_names_are_pinned() -> None:
    assert sorted(protocol.__all__) == [
        "ClasslessRoute",
        "CodecError",
        "DecodeError",
        "EncodeError",
        "Message",
        "MessageTooBig",
        "MessageType",
        "Op",
        "OptionCode",
        "OptionValue",
        "Options",
        "RelayAgentInformation",
        "decode",
        "encode",
    ]
    for name in protocol.__all__:
        assert getattr(protocol, name) is not None


def test_errors_are_value_errors() -> None:
    assert issubclass(DecodeError, ValueError)
    assert issubclass(EncodeError, ValueError)
    assert not issubclass(DecodeError, EncodeError)


def test_enum_values_follow_the_rfcs() -> None:
    assert (Op.BOOTREQUEST, Op.BOOTREPLY) == (1, 2)
    assert [int(kind) for kind in list(MessageType)[:8]] == list(range(1, 9))
    expected = {
        "PAD": 0, "SUBNET_MASK": 1, "ROUTER": 3, "DNS": 6, "HOST_NAME": 12, "DOMAIN_NAME": 15,
        "INTERFACE_MTU": 26, "BROADCAST_ADDRESS": 28, "NTP_SERVERS": 42, "VENDOR_SPECIFIC": 43,
        "REQUESTED_IP": 50, "LEASE_TIME": 51, "OVERLOAD": 52, "MESSAGE_TYPE": 53, "SERVER_ID": 54,
        "PARAMETER_REQUEST_LIST": 55, "MESSAGE": 56, "MAX_MESSAGE_SIZE": 57, "RENEWAL_TIME": 58,
        "REBINDING_TIME": 59, "VENDOR_CLASS_ID": 60, "CLIENT_ID": 61, "RAPID_COMMIT": 80,
        "RELAY_AGENT_INFO": 82, "DOMAIN_SEARCH": 119, "CLASSLESS_ROUTES": 121, "END": 255,
    }  # fmt: skip
    assert {name: int(OptionCode[name]) for name in expected} == expected


def test_message_is_a_frozen_keyword_only_value() -> None:
    params = dataclasses.fields(Message)
    assert [f.name for f in params] == [
        "op", "xid", "chaddr", "htype", "hops", "secs", "flags", "ciaddr", "yiaddr",
        "siaddr", "giaddr", "sname", "file", "options",
    ]  # fmt: skip
    message = Message(op=Op.BOOTREQUEST, xid=1, chaddr=b"\x52\x54\x00\xaa\xbb\xcc")
    assert message.htype == 1 and message.ciaddr == IPv4Address(0) and message.options == {}
    try:
        message.xid = 2  # type: ignore[misc]
    except dataclasses.FrozenInstanceError:
        pass
    else:
        raise AssertionError("Message is mutable")
    assert not hasattr(message, "__dict__")
    assert hash(message) == hash(Message(op=Op.BOOTREQUEST, xid=1, chaddr=message.chaddr))


def test_options_is_an_immutable_mapping() -> None:
    options = Options({OptionCode.MESSAGE_TYPE: MessageType.DISCOVER})
    assert isinstance(options, Mapping)
    assert not hasattr(options, "__setitem__")
    assert options == Options.from_pairs([(53, 1)])
    assert hash(options) == hash(Options.from_pairs([(53, 1)]))
