"""Properties of the DHCPv6 codec over generated messages and bytes (hypothesis):
round trips, the hand-written twins against the construct declarations, and
DecodeError/EncodeError as the only failures."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from protocol.dhcp6 import (
    IANA,
    ClientId,
    DecodeError,
    DomainList,
    DuidLL,
    ElapsedTime,
    EncodeError,
    IAAddress,
    IAPrefix,
    Message,
    MessageType,
    NtpServer,
    NtpServerFqdn,
    Option,
    Preference,
    RawOption,
    RelayMessage,
    RelayMessageOption,
    StatusCode,
    UnknownDuid,
    decode,
    encode,
)
from protocol.dhcp6._declared import decode_declared
from protocol.dhcp6._declared_build import encode_declared
from tests.lab.pool_harness import mutations
from tests.lab.strategies6 import any_messages, messages, options

AnyMessage = Message | RelayMessage


@given(any_messages())
def test_decode_inverts_encode(message: AnyMessage) -> None:
    packet = encode(message)
    assert decode(packet) == message
    assert encode(decode(packet)) == packet


@given(any_messages())
def test_fast_encode_writes_the_declared_bytes(message: AnyMessage) -> None:
    assert encode_declared(message) == encode(message)


def same_outcome(data: bytes) -> AnyMessage | None:
    try:
        fast: AnyMessage | None = decode(data)
    except DecodeError:
        fast = None
    try:
        declared: AnyMessage | None = decode_declared(data)
    except DecodeError:
        declared = None
    assert fast == declared
    assert type(fast) is type(declared)
    if fast is not None:
        # Whatever decodes re-encodes byte for byte, on both paths.
        assert encode(fast) == data
        assert encode_declared(fast) == data
    return fast


@given(any_messages())
def test_fast_decode_reads_the_declared_fields(message: AnyMessage) -> None:
    assert same_outcome(encode(message)) == message


@settings(max_examples=500)
@given(any_messages().flatmap(lambda message: mutations(encode(message))) | st.binary(max_size=200))
@example(b"")
@example(b"\x01\x00\x00")
@example(b"\x0c" + bytes(33))
@example(b"\x01\x00\x00\x00\x00\x01\x00\x01\x00")  # client id: a DUID without its type's fields
@example(b"\x01\x00\x00\x00\x00\x18\x00\x02\x01a")  # a name without its root label
@example(b"\x01\x00\x00\x00\x00\x18\x00\x02\x40a")  # a compression pointer's length byte
@example(b"\x01\x00\x00\x00\x00\x0d\x00\x03\x00\x00\xff")  # status message not UTF-8
def test_fast_and_declared_decode_agree_on_any_bytes(data: bytes) -> None:
    same_outcome(data)


@given(st.lists(options, min_size=1, max_size=4).map(tuple), st.integers(0, 4))
def test_options_read_back_in_any_nesting(found: tuple[Option, ...], depth: int) -> None:
    message: AnyMessage = Message(msg_type=MessageType.REPLY, transaction_id=1, options=found)
    for _ in range(depth):
        message = RelayMessage(
            msg_type=MessageType.RELAY_REPL,
            hop_count=0,
            link_address=IPv6Address("2001:db8::1"),
            peer_address=IPv6Address("fe80::1"),
            options=(RelayMessageOption(message),),
        )
    assert decode(encode(message)) == message


def nested(depth: int) -> bytes:
    """A SOLICIT whose IA_NA holds an IA_NA ... `depth` levels of options deep."""
    body = b""
    for _ in range(depth):
        body = b"\x00\x03" + (12 + len(body)).to_bytes(2, "big") + bytes(12) + body
    return b"\x01\x00\x00\x01" + body


def test_nesting_is_bounded_on_both_paths() -> None:
    assert isinstance(decode(nested(30)), Message)
    for deep in (nested(40), nested(4000)):
        with pytest.raises(DecodeError, match="nested"):
            decode(deep)
        with pytest.raises(DecodeError, match="nested"):
            decode_declared(deep)
    message = decode(nested(30))
    for _ in range(5):
        message = Message(
            msg_type=MessageType.SOLICIT,
            transaction_id=1,
            options=(IANA(iaid=1, options=message.options),),
        )
    for write in (encode, encode_declared):
        with pytest.raises(EncodeError, match="nested"):
            write(message)


V6 = IPv6Address("2001:db8::5")
BAD_OPTIONS: list[object] = [
    Preference(256),
    ElapsedTime(-1),
    IANA(iaid=2**32),
    IAAddress(address=IPv4Address("198.18.0.1")),  # type: ignore[arg-type]
    IAPrefix(prefix_length=129, prefix=V6),
    StatusCode(0, b"bytes"),  # type: ignore[arg-type]
    DomainList(("a..b",)),
    DomainList(("é.example",)),
    DomainList(("x" * 64,)),
    DomainList((".".join(["abc"] * 70),)),
    DomainList(["example"]),  # type: ignore[arg-type]
    NtpServer((NtpServerFqdn(""), RawOption(1, b"x"))),
    RawOption(1, b"\x00\x03"),  # a typed code as raw bytes would not read back as itself
    RawOption(70000, b""),
    RawOption(99, 5),  # type: ignore[arg-type]
    RawOption(99, bytes(70000)),
    ClientId(UnknownDuid(3, b"")),
    ClientId(DuidLL(1, "52:54:00:aa:bb:cc")),  # type: ignore[arg-type]
    "not an option",
]


@pytest.mark.parametrize("option", BAD_OPTIONS, ids=repr)
def test_both_encoders_refuse_bad_values_with_encode_error(option: object) -> None:
    message = Message(msg_type=MessageType.REPLY, transaction_id=1, options=(option,))  # type: ignore[arg-type]
    for write in (encode, encode_declared):
        with pytest.raises(EncodeError):
            write(message)


BAD_MESSAGES: list[object] = [
    Message(msg_type=MessageType.REPLY, transaction_id=2**24),
    Message(msg_type=MessageType.RELAY_FORW, transaction_id=1),
    Message(msg_type=99, transaction_id=1),  # type: ignore[arg-type]
    Message(msg_type=MessageType.REPLY, transaction_id=1, options=[ElapsedTime(0)]),  # type: ignore[arg-type]
    RelayMessage(msg_type=MessageType.REPLY, hop_count=0, link_address=V6, peer_address=V6),
    RelayMessage(msg_type=MessageType.RELAY_FORW, hop_count=256, link_address=V6, peer_address=V6),
    RelayMessage(msg_type=MessageType.RELAY_FORW, hop_count=0, link_address="::", peer_address=V6),  # type: ignore[arg-type]
    b"\x01\x00\x00\x01",
]


@pytest.mark.parametrize("message", BAD_MESSAGES, ids=repr)
def test_both_encoders_refuse_bad_messages_with_encode_error(message: object) -> None:
    for write in (encode, encode_declared):
        with pytest.raises(EncodeError):
            write(message)  # type: ignore[arg-type]


@given(messages(max_options=4))
def test_a_trailing_dot_is_the_same_name(message: Message) -> None:
    dotted = DomainList(("lab.example.",))
    plain = DomainList(("lab.example",))
    with_dot = Message(msg_type=message.msg_type, transaction_id=1, options=(dotted,))
    without = Message(msg_type=message.msg_type, transaction_id=1, options=(plain,))
    assert encode(with_dot) == encode(without) == encode_declared(with_dot)
    assert decode(encode(with_dot)).options == (plain,)


junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**33), 2**33),
    st.floats(allow_nan=False),
    st.text(max_size=5),
    st.binary(max_size=5),
    st.lists(st.integers(0, 70000), max_size=3),
    st.lists(st.integers(0, 70000), max_size=3).map(tuple),
    st.just(IPv4Address("198.18.0.1")),
    st.just(V6),
)


@st.composite
def spoiled(draw: st.DrawFn) -> Message:
    """A valid message with one field of one option replaced by anything at all."""
    option = draw(options)
    fields = [name for name in getattr(option, "__dataclass_fields__", {}) if name != "code"]
    if fields:
        option = dataclasses.replace(option, **{draw(st.sampled_from(fields)): draw(junk)})
    return Message(msg_type=MessageType.REPLY, transaction_id=1, options=(option,))


@settings(max_examples=500)
@given(spoiled())
def test_encoders_agree_on_any_field_value_and_raise_only_encode_error(message: Message) -> None:
    outcomes: list[bytes | None] = []
    for write in (encode, encode_declared):
        try:
            outcomes.append(write(message))
        except EncodeError:
            outcomes.append(None)
    assert outcomes[0] == outcomes[1]
    if outcomes[0] is not None:
        assert encode(decode(outcomes[0])) == outcomes[0]
