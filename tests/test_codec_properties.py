"""Properties of the codec over generated messages and bytes (hypothesis)."""

from __future__ import annotations

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from protocol import DecodeError, EncodeError, Message, Op, Options, decode, encode
from protocol._codec import decode_declared, encode_declared
from protocol._values import CHECKS, DECODERS
from tests.lab.strategies import domain_lists, messages, option_values, options, routes

MAC = bytes.fromhex("525400aabbcc")
# Codes whose values are plain bytes: free to fill with anything.
unknown_codes = st.integers(128, 254).filter(lambda code: code not in DECODERS)
# 200 to 800 bytes of options: around the 308 a 576-byte limit leaves.
big_values = st.dictionaries(
    unknown_codes, st.binary(min_size=100, max_size=200), min_size=2, max_size=4
)


def tlvs(area: bytes) -> list[tuple[int, bytes]]:
    """(code, data) of one options area up to END, PAD skipped."""
    out, pos = [], 0
    while pos < len(area) and area[pos] != 255:
        if area[pos] == 0:
            pos += 1
            continue
        out.append((area[pos], area[pos + 2 : pos + 2 + area[pos + 1]]))
        pos += 2 + area[pos + 1]
    return out


@given(messages())
def test_decode_inverts_encode(message: Message) -> None:
    packet = encode(message)
    assert len(packet) >= 300
    assert decode(packet) == message
    assert encode(decode(packet)) == packet


@given(messages(), st.integers(0, 1500))
def test_max_size_is_honoured_or_refused(message: Message, max_size: int) -> None:
    try:
        packet = encode(message, max_size=max_size)
    except EncodeError:
        assume(False)
        return
    assert len(packet) <= max(max_size, 576) - 28
    assert decode(packet) == message


@settings(max_examples=50)
@given(
    st.dictionaries(unknown_codes, st.binary(min_size=100, max_size=200), min_size=2, max_size=4)
)
def test_overload_when_max_size_forces_it(values: dict[int, bytes]) -> None:
    message = Message(op=Op.BOOTREPLY, xid=7, chaddr=MAC, options=Options({53: 5, **values}))
    plain = encode(message)
    try:
        packet = encode(message, max_size=576)
    except EncodeError:
        assume(False)
        return
    assert decode(packet) == message
    overloaded = len(plain) > 548
    assert (bytes((52, 1)) in packet[240:]) >= overloaded  # 52 appears whenever needed
    if not overloaded:
        assert packet == plain


@settings(max_examples=50)
@given(st.binary(min_size=256, max_size=2000), unknown_codes)
def test_long_values_split_and_join_rfc3396(value: bytes, code: int) -> None:
    packet = encode(Message(op=Op.BOOTREPLY, xid=1, chaddr=MAC, options=Options({code: value})))
    parts = [data for got, data in tlvs(packet[240:]) if got == code]
    assert b"".join(parts) == value
    assert all(len(part) == 255 for part in parts[:-1])
    assert decode(packet).options[code] == value


@given(domain_lists())
def test_domain_search_round_trips_and_compresses(names: tuple[str, ...]) -> None:
    encoded = Options({119: names})
    assert encoded[119] == names
    data = encoded.raw(119)
    assert data is not None
    plain = sum(len(name) + 2 if name else 1 for name in names)
    assert len(data) <= plain
    if len(set(names)) < len(names) and all(names):
        assert len(data) < plain  # a repeated name is a pointer


@given(st.lists(routes(), max_size=8).map(tuple))
def test_classless_routes_round_trip(value: tuple[object, ...]) -> None:
    assert Options({121: value})[121] == value


@given(st.data(), st.sampled_from(sorted(set(DECODERS) | {43, 60, 61, 200})))
def test_option_values_round_trip(data: st.DataObject, code: int) -> None:
    value = data.draw(option_values(code))
    options = Options({code: value})
    assert options[code] == value
    again = decode(encode(Message(op=Op.BOOTREQUEST, xid=0, chaddr=b"", options=options)))
    assert again.options[code] == value and again.options.raw(code) == options.raw(code)


@settings(max_examples=300)
@given(st.sampled_from(sorted(CHECKS)), st.binary(max_size=40))
def test_up_front_checks_fail_exactly_where_the_decoders_fail(code: int, data: bytes) -> None:
    try:
        DECODERS[code](code, data)
    except DecodeError:
        decodes = False
    else:
        decodes = True
    try:
        CHECKS[code](code, data)
    except DecodeError:
        passes = False
    else:
        passes = True
    assert passes == decodes


@st.composite
def mangled_domain_lists(draw: st.DrawFn) -> bytes:
    """RFC 3397 bytes with a few bytes changed: pointers, lengths, labels go astray."""
    data = bytearray(Options({119: draw(domain_lists())}).raw(119) or b"")
    for _ in range(draw(st.integers(0, 3))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(
                st.sampled_from([0, 1, 2, 46, 63, 64, 0xC0, 0xFF]) | st.integers(0, 255)
            )
    return bytes(data)


@settings(max_examples=500)
@given(mangled_domain_lists())
def test_domain_search_check_agrees_with_the_decoder(data: bytes) -> None:
    try:
        DECODERS[119](119, data)
    except DecodeError:
        decodes = False
    else:
        decodes = True
    try:
        CHECKS[119](119, data)
    except DecodeError:
        passes = False
    else:
        passes = True
    assert passes == decodes


@settings(max_examples=300)
@given(st.sampled_from(sorted(CHECKS)), st.binary(max_size=40))
def test_decode_refuses_exactly_what_the_decoders_refuse(code: int, data: bytes) -> None:
    packet = encode(Message(op=Op.BOOTREQUEST, xid=0, chaddr=b"", options=Options({43: data})))
    packet = packet[:240] + bytes((code,)) + packet[241:]  # the same bytes, as option `code`
    try:
        DECODERS[code](code, data)
    except DecodeError:
        decodes = False
    else:
        decodes = True
    try:
        decode(packet)
    except DecodeError:
        accepted = False
    else:
        accepted = True
    assert accepted == decodes


@given(options(), st.randoms())
def test_options_equality_ignores_order(value: Options, random: object) -> None:
    pairs = [(code, value[code]) for code in value]
    random.shuffle(pairs)  # type: ignore[attr-defined]
    shuffled = Options.from_pairs(pairs)
    assert shuffled == value and hash(shuffled) == hash(value)
    assert dict(shuffled) == dict(value)


# --- the hand-tuned path agrees with the construct declarations ---------------


@given(messages(), st.sampled_from([None, 576, 800]))
def test_fast_encode_writes_the_declared_bytes(message: Message, max_size: int | None) -> None:
    try:
        fast = encode(message, max_size=max_size)
    except EncodeError:
        try:
            encode_declared(message, max_size=max_size)
        except EncodeError:
            return
        raise AssertionError("only the fast path refused the message") from None
    assert encode_declared(message, max_size=max_size) == fast


def same_outcome(data: bytes) -> None:
    try:
        fast: Message | None = decode(data)
    except DecodeError:
        fast = None
    try:
        declared: Message | None = decode_declared(data)
    except DecodeError:
        declared = None
    assert fast == declared
    if fast is not None and declared is not None:
        # Field by field, types included: the fast constructor makes the same object.
        for name in Message.__dataclass_fields__:
            a, b = getattr(fast, name), getattr(declared, name)
            assert type(a) is type(b) and a == b, name


@given(messages())
def test_fast_decode_reads_the_declared_fields(message: Message) -> None:
    same_outcome(encode(message))


@st.composite
def mutated_packets(draw: st.DrawFn) -> bytes:
    packet = bytearray(encode(draw(messages(max_options=6))))
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(packet) - 1))
        action = draw(st.sampled_from(["set", "cut", "insert"]))
        if action == "set":
            packet[pos] = draw(st.integers(0, 255))
        elif action == "cut":
            del packet[pos:]
        else:
            packet[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        if not packet:
            break
    return bytes(packet)


@settings(max_examples=300)
@given(mutated_packets() | st.binary(max_size=400))
@example(b"")
@example(bytes(236) + bytes((99, 130, 83, 99)))
def test_fast_and_declared_decode_agree_on_any_bytes(data: bytes) -> None:
    same_outcome(data)
