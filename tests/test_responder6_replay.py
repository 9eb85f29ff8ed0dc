"""Responder6's replay cache agrees with its slow path, byte for byte.

A request whose bytes, apart from its client message's transaction id and
Elapsed Time values, equal those of one answered before (from the same frame
source MAC) is answered from `Responder6._replays` without being decoded.
These tests hold a responder with the cache and one without (`cache=False`)
equal: same reply bytes, destination and type, same counters, histories, declines,
notices and `last`, on generated exchanges (direct and relayed, from reserved,
shared and unknown DUIDs and frames, damaged or not, repeated as clients
retransmit them, with the pool's state changing in between) and on every
packet of fuzz/corpus6.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import replace
from ipaddress import IPv6Address
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kvip.serving._responder6 as responder_module
from kvip.serving import PoolOptions6, Reply6, Reservation6, Responder6
from kvip.serving._build6 import (
    configuration,
    configuration_bytes,
    relayed,
    replay_key,
    template,
)
from protocol.dhcp6 import (
    IANA,
    IAPD,
    IATA,
    ClientId,
    DecodeError,
    DuidLL,
    DuidLLT,
    ElapsedTime,
    EncodeError,
    IAAddress,
    Message,
    MessageType,
    Option,
    OptionRequest,
    RapidCommit,
    RawOption,
    RelayMessage,
    RelayMessageOption,
    ServerId,
    decode,
    encode,
)
from tests.lab.responder6 import (
    ANOTHER_SERVER,
    CORPUS6,
    IP,
    MAC,
    NAMING_TYPES,
    OPTIONS,
    OTHER_IP,
    OTHER_MAC,
    RELAY_SOURCE,
    SERVER,
    SOURCE,
    UNKNOWN_MAC,
    relay,
    responder,
    wrapped,
)
from tests.lab.strategies6 import relay_messages

Packet = Message | RelayMessage
Source = tuple[str, int, int, int]
OTHER_OPTIONS = replace(OPTIONS, dns=(IPv6Address("2001:db8:1::54"),), rapid_commit=False)
NEW_IP = IPv6Address("2001:db8:1::99")
SOURCES = (SOURCE, RELAY_SOURCE, ("fe80::1", 546, 0, 9))
FRAME_MACS = (None, MAC, OTHER_MAC, UNKNOWN_MAC)

ANSWERED = (MessageType.SOLICIT, MessageType.REQUEST, MessageType.RENEW, MessageType.REBIND)
# Mostly what gets an answer (and so is replayed), but every type a client may not send too.
client_kinds = st.sampled_from(ANSWERED) | st.sampled_from(
    [kind for kind in MessageType if kind not in (MessageType.RELAY_FORW, MessageType.RELAY_REPL)]
)
duids = st.sampled_from(
    [DuidLL(1, MAC), DuidLLT(1, 7, OTHER_MAC), DuidLL(1, UNKNOWN_MAC), DuidLL(6, MAC), None]
)
held = st.lists(st.sampled_from([IP, OTHER_IP, IPv6Address("2001:db8:9::1")]), max_size=2)


def _ia_na(iaid: int, ips: list[IPv6Address]) -> Option:
    return IANA(iaid=iaid, options=tuple(IAAddress(address=a) for a in ips))


def _other_ia(iaid: int, temporary: bool) -> Option:
    return IATA(iaid=iaid) if temporary else IAPD(iaid=iaid)


ia_options = st.builds(_ia_na, st.integers(0, 3), held) | st.builds(
    _other_ia, st.integers(0, 3), st.booleans()
)
extra_options: list[Option] = [
    RapidCommit(),
    OptionRequest((23, 24, 56)),
    ElapsedTime(0),
    ElapsedTime(300),
    RawOption(39, b"\x00"),
]
extras = st.sampled_from(extra_options)


@st.composite
def exchanges(draw: st.DrawFn) -> Packet:
    """A client's message, maybe through one or two relays."""
    options: list[Option] = []
    duid = draw(duids)
    if duid is not None:
        options.append(ClientId(duid))
    kind = draw(client_kinds)
    named = kind in NAMING_TYPES  # else a server id makes it invalid (RFC 8415 16)
    server = draw(
        st.sampled_from([SERVER, SERVER, None, ANOTHER_SERVER] if named else [None, None, SERVER])
    )
    if server is not None:
        options.append(ServerId(server))
    options += draw(st.lists(ia_options, max_size=3)) + draw(st.lists(extras, max_size=3))
    message: Packet = Message(
        msg_type=kind,
        transaction_id=draw(st.integers(0, 2**24 - 1)),
        options=tuple(draw(st.permutations(options))),
    )
    for hops in range(draw(st.integers(0, 2))):
        interface = draw(st.sampled_from([None, b"eth1", b"port-7"]))
        message = relay(
            message, hops=hops, interface=interface, mac=draw(st.sampled_from(FRAME_MACS))
        )
    return message


def retransmitted(packet: Packet, xid: int, hundredths: int) -> Packet:
    """`packet` as its client sends it again: another transaction id, and
    every Elapsed Time of its client message at `hundredths`."""
    if isinstance(packet, RelayMessage):
        options = tuple(
            RelayMessageOption(retransmitted(o.message, xid, hundredths))
            if isinstance(o, RelayMessageOption)
            else o
            for o in packet.options
        )
        return replace(packet, options=options)
    options = tuple(
        ElapsedTime(hundredths) if isinstance(o, ElapsedTime) else o for o in packet.options
    )
    return replace(packet, transaction_id=xid, options=options)


def damaged(data: bytes, damage: tuple[int, int] | None) -> bytes:
    if damage is None or not data:
        return data
    at = damage[0] % len(data)
    return data[:at] + bytes((damage[1],)) + data[at + 1 :]


def assert_same_answer(
    fast: Responder6, slow: Responder6, data: bytes, source: Source, source_mac: bytes | None
) -> Reply6 | None:
    reply = fast.handle(data, 5.0, source, source_mac)
    assert reply == slow.handle(data, 5.0, source, source_mac)  # payload, address, type
    assert fast.counters.as_dict() == slow.counters.as_dict()
    assert (fast.declined, fast.notices, fast.last) == (slow.declined, slow.notices, slow.last)
    # The MAC's history too: a replayed answer is remembered as the computed one.
    mac = fast.last[1] if fast.last is not None else None
    if mac is not None:
        assert fast.history.of(mac) == slow.history.of(mac)
    return reply


STATE_CHANGES = {
    "decline": lambda r: r.mark_declined(IP),
    "clear": lambda r: r.clear_declined(IP),
    "options": lambda r: r.set_options(OTHER_OPTIONS),
    "reserve": lambda r: r.set_reservation(MAC.hex(":"), Reservation6(NEW_IP)),
    "remove": lambda r: r.remove_reservation(OTHER_MAC.hex(":")),
    "drain": lambda r: r.drain(),
}
asks = st.tuples(
    exchanges(),
    st.lists(st.tuples(st.integers(0, 2**24 - 1), st.integers(0, 0xFFFF)), max_size=3),
    st.none() | st.tuples(st.integers(0, 500), st.integers(0, 255)),
    st.sampled_from(FRAME_MACS),
    st.sampled_from(SOURCES),
)
actions = st.lists(asks | st.sampled_from(sorted(STATE_CHANGES)), min_size=1, max_size=20)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(actions)
def test_cached_answers_equal_uncached_for_generated_exchanges(script: list[object]) -> None:
    fast, slow = responder(cache=True), responder(cache=False)
    for action in script:
        if isinstance(action, str):
            for r in (fast, slow):
                STATE_CHANGES[action](r)
            continue
        assert isinstance(action, tuple)
        packet, again, damage, source_mac, source = action
        variants = [packet, packet, *(retransmitted(packet, *v) for v in again)]
        for variant in variants:
            try:
                data = encode(variant)
            except EncodeError:  # an IAID or hop count the strategies made too big
                continue
            assert_same_answer(fast, slow, damaged(data, damage), source, source_mac)
        for r in (fast, slow):
            r.notices.clear()


def _fuzz_server6() -> ModuleType:
    """fuzz/fuzz_server6.py, for its pool: the corpus's clients reserved."""
    if "fuzz_server6" not in sys.modules:
        path = CORPUS6.parent / "fuzz_server6.py"
        spec = importlib.util.spec_from_file_location("fuzz_server6", path)
        assert spec is not None and spec.loader is not None
        sys.modules["fuzz_server6"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["fuzz_server6"])
    return sys.modules["fuzz_server6"]


CORPUS_FILES = sorted(p for p in CORPUS6.rglob("*") if p.is_file() and p.suffix != ".md")


def ask_like_clients(data: bytes, twins: list[tuple[Responder6, Responder6]]) -> int:
    """`data` from each frame MAC, as captured and as retransmitted, twice each."""
    try:
        packet: Packet | None = decode(data)
    except DecodeError:
        packet = None
    repeats = [data, data]
    if packet is not None and encode(packet) == data:
        repeats += [
            encode(retransmitted(packet, xid, (77 * xid) & 0xFFFF)) for xid in (1, 2, 0xFFFFFF)
        ]
    answered = 0
    for fast, slow in twins:
        for source_mac in (*_fuzz_server6().SOURCE_MACS, *FRAME_MACS):
            for i, request in enumerate(repeats):
                reply = assert_same_answer(fast, slow, request, SOURCES[i % 3], source_mac)
                answered += reply is not None
                fast.notices.clear()
                slow.notices.clear()
    return answered


def corpus_twins() -> list[tuple[Responder6, Responder6]]:
    fuzz = _fuzz_server6()
    return [
        (fuzz.new_responder(duid), fuzz.new_responder(duid, cache=False))
        for duid in fuzz.SERVER_DUIDS
    ]


@pytest.mark.parametrize("path", CORPUS_FILES, ids=[p.name for p in CORPUS_FILES])
def test_cached_answers_equal_uncached_for_the_corpus(path: Path) -> None:
    ask_like_clients(path.read_bytes(), corpus_twins())


def test_the_corpus_reaches_the_replay_cache() -> None:
    """The corpus comparison means something: the whole corpus through one
    pair of twins gets ADVERTISEs and REPLYs, and repeats came from the cache."""
    twins = corpus_twins()
    assert sum(ask_like_clients(path.read_bytes(), twins) for path in CORPUS_FILES) > 200
    for fast, slow in twins:
        assert fast.counters.sent["ADVERTISE"] and fast.counters.sent["REPLY"]
        assert fast._replays and not slow._replays


# -- what the cache keys on, and what clears it ----------------------------------


def solicit(*, xid: int = 1, elapsed: int = 0, iaid: int = 1) -> Message:
    return Message(
        msg_type=MessageType.SOLICIT,
        transaction_id=xid,
        options=(ClientId(DuidLL(1, MAC)), ElapsedTime(elapsed), IANA(iaid=iaid)),
    )


def test_a_retransmission_is_answered_without_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    r, slow = responder(), responder(cache=False)

    def two_relays(message: Message) -> RelayMessage:
        return relay(relay(message, interface=b"eth1", mac=MAC), hops=1)

    first = encode(two_relays(solicit(xid=1)))
    assert r.handle(first, 1.0, RELAY_SOURCE, None) is not None

    def no_decode(data: bytes) -> Packet:
        raise AssertionError("the repeat was decoded")

    again = encode(two_relays(solicit(xid=0xCAFE01, elapsed=250)))
    expected = slow.handle(again, 2.0, ("2001:db8:7::1", 547, 0, 4), None)
    monkeypatch.setattr(responder_module, "decode", no_decode)
    reply = r.handle(again, 2.0, ("2001:db8:7::1", 547, 0, 4), None)
    assert reply is not None and reply == expected
    assert reply.address == ("2001:db8:7::1", 547, 0, 4)
    outer = decode(reply.payload)
    assert isinstance(outer, RelayMessage) and outer.hop_count == 1
    inner = outer.innermost
    assert inner is not None and inner.transaction_id == 0xCAFE01
    assert r.counters.received["SOLICIT"] == 2 and r.counters.sent["ADVERTISE"] == 2


def test_another_iaid_or_frame_is_another_request() -> None:
    """What the reply echoes (the IAID) or who the client is (the frame's MAC,
    with a DUID both NICs share) is in the key."""
    r = responder()
    assert r.handle(encode(solicit(iaid=1)), 1.0, SOURCE, None) is not None
    reply = r.handle(encode(solicit(iaid=2)), 1.0, SOURCE, None)
    assert reply is not None
    ia = decode(reply.payload).get(IANA)
    assert ia is not None and ia.iaid == 2
    other = r.handle(encode(solicit(iaid=2)), 1.0, SOURCE, OTHER_MAC)
    assert other is not None
    ia = decode(other.payload).get(IANA)
    assert ia is not None and ia.options[0] == IAAddress(
        address=OTHER_IP, preferred_lifetime=1000, valid_lifetime=2000
    )


@pytest.mark.parametrize("change", sorted(STATE_CHANGES))
def test_every_state_change_clears_the_cache(change: str) -> None:
    r, slow = responder(), responder(cache=False)
    if change == "clear":
        for each in (r, slow):
            each.mark_declined(IP)
    asked = [encode(solicit()), encode(relay(solicit(), mac=OTHER_MAC))]
    before = [assert_same_answer(r, slow, data, SOURCE, None) for data in asked]
    assert r._replays
    for each in (r, slow):
        STATE_CHANGES[change](each)
    assert not r._replays
    after = [assert_same_answer(r, slow, data, SOURCE, None) for data in asked]
    assert after != before  # the change shows in the answers: none was replayed


@pytest.mark.parametrize("kind", [MessageType.RELEASE, MessageType.DECLINE])
def test_release_and_decline_are_done_every_time(kind: MessageType) -> None:
    r = responder(options=OPTIONS)
    held = IANA(iaid=1, options=(IAAddress(address=IP),))
    for xid in (1, 2, 3):
        message = Message(
            msg_type=kind,
            transaction_id=xid,
            options=(ClientId(DuidLL(1, MAC)), ServerId(SERVER), ElapsedTime(0), held),
        )
        assert r.handle(encode(message), 1.0, SOURCE, None) is not None
    assert not r._replays
    if kind == MessageType.RELEASE:
        assert len(r.notices) == 3 and r.counters.releases == 3
    else:  # declined once (one notice), counted each time
        assert len(r.notices) == 1 and r.counters.declines == 3


# -- replay_key ------------------------------------------------------------------------


def test_the_key_zeroes_transaction_id_and_top_level_elapsed_times_only() -> None:
    nested = IANA(iaid=1, options=(ElapsedTime(0x0102),))  # inside an IA: not the client's
    message = Message(
        msg_type=MessageType.SOLICIT,
        transaction_id=0x123456,
        options=(ElapsedTime(5), nested, RawOption(39, b"\x00\x08\x00\x02\x07"), ElapsedTime(9)),
    )
    data = encode(message)
    found = replay_key(data)
    assert found is not None
    key, xid_at = found
    assert xid_at == 1 and len(key) == len(data)
    assert replay_key(encode(retransmitted(message, 0x654321, 0xFFFF))) == found
    assert key == encode(retransmitted(message, 0, 0))
    for other in (IANA(iaid=1, options=(ElapsedTime(7),)), IANA(iaid=2, options=nested.options)):
        changed = replace(message, options=(ElapsedTime(5), other, *message.options[2:]))
        assert replay_key(encode(changed)) != found


def test_the_key_finds_the_client_under_relays_and_refuses_what_it_cannot_place() -> None:
    data = encode(relay(relay(solicit(xid=0xABCDEF), interface=b"eth1"), hops=1))
    found = replay_key(data)
    assert found is not None
    assert data[found[1] : found[1] + 3] == b"\xab\xcd\xef"
    twice = relay(solicit(xid=2))
    doubled = replace(twice, options=(*twice.options, RelayMessageOption(solicit(xid=3))))
    for refused in (data[:-1], data + b"\x00", encode(doubled), b"\x01\x00\x00", bytes(34)):
        assert replay_key(refused) is None
    # The decoder reads the first of two relayed messages: answered, never replayed.
    r, slow = responder(), responder(cache=False)
    for _ in range(2):
        assert assert_same_answer(r, slow, encode(doubled), RELAY_SOURCE, None) is not None
    assert not r._replays


def test_the_cache_is_bounded() -> None:
    r = responder()
    for xid in range(3):
        r.handle(encode(solicit(xid=xid, iaid=xid)), 1.0, SOURCE, None)
    assert len(r._replays) == 3
    limit = responder_module.MAX_CACHED_REPLIES
    r._replays.update(
        {
            (bytes([i % 256]) * (i // 256 + 1), None): r._replays[next(iter(r._replays))]
            for i in range(limit - 3)
        }
    )
    r.handle(encode(solicit(iaid=9)), 1.0, SOURCE, None)
    assert len(r._replays) == 1


# -- the slow path's shortcuts, held to the codec ------------------------------------


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(relay_messages(), st.sampled_from([OPTIONS, OTHER_OPTIONS, replace(OPTIONS, ntp=())]))
def test_replies_built_on_bytes_equal_codec_ones(
    packet: RelayMessage, options: PoolOptions6
) -> None:
    """`relayed` wraps encoded bytes as `encode(wrapped(...))` does, with the
    client's message last (`template` finds its transaction id there), and the
    configuration encoded once is what encoding its options in a reply gives."""
    relays, inner = [packet], packet.relayed
    while isinstance(inner, RelayMessage):
        relays.append(inner)
        inner = inner.relayed
    reply = Message(msg_type=MessageType.REPLY, transaction_id=0xABCDEF, options=(ElapsedTime(1),))
    try:
        expected = encode(wrapped(reply, relays))
    except EncodeError:
        return
    assert relayed(encode(reply), relays) == expected
    at = template(expected, len(encode(reply)), relayed=True, kind=MessageType.REPLY).xid_at
    assert expected[at : at + 3] == b"\xab\xcd\xef"
    configured = replace(reply, options=(*reply.options, *configuration(options)))
    assert encode(configured) == encode(reply) + configuration_bytes(options)
