"""The responder's caches agree with its slow path, byte for byte.

A request whose bytes, apart from xid, secs and flags, were answered before is
answered from `Responder._replays` without being decoded, and a client's reply
template is reused from `Responder._cache`. These tests hold a responder with
both caches and one without (`cache=False`) equal: same reply bytes, same
destination, same counters, same declines and notices, on generated request
sequences (and every packet of fuzz/corpus, re-addressed to reserved and
unknown MACs, direct and relayed) that repeat requests with new xids, secs and
flags, mix in malformed bytes and change state.
"""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kvip.serving._responder as responder_module
from kvip.serving import PoolOptions, Reply, Reservation, Responder
from protocol import (
    ClasslessRoute,
    DecodeError,
    Message,
    MessageType,
    Op,
    OptionCode,
    Options,
    RelayAgentInformation,
    decode,
    encode,
)

SERVER = IPv4Address("198.18.0.1")
OTHER_SERVER = IPv4Address("198.18.0.2")
RELAY = IPv4Address("198.18.255.1")
MACS = ("52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:03")
IPS = (IPv4Address("198.18.1.1"), IPv4Address("198.18.1.2"))
UNKNOWN_MAC = "52:54:00:ff:ff:ff"
OPTIONS = PoolOptions(
    server_ip=SERVER,
    subnet=IPv4Network("198.18.0.0/16"),
    router=SERVER,
    dns=(IPv4Address("198.18.0.53"),),
    domain_name="lab.example",
    domain_search=("lab.example",),
    lease_time=600,
    mtu=1450,
    routes=(ClasslessRoute(destination=IPv4Network("10.0.0.0/8"), gateway=SERVER),),
)


def make_responder(*, cache: bool) -> Responder:
    r = Responder(OPTIONS, cache=cache, clock=lambda: 1.0e9)
    # MACS[2] has no hostname; the unknown MAC has no reservation.
    r.set_reservation(MACS[0], Reservation(IPS[0], "vm0"))
    r.set_reservation(MACS[1], Reservation(IPS[1], "vm1"))
    r.set_reservation(MACS[2], Reservation(IPv4Address("198.18.1.3")))
    return r


addresses = st.sampled_from([IPv4Address(0), *IPS, IPv4Address("198.18.1.3"), RELAY])


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    options: dict[int, object] = {}
    kind = draw(st.sampled_from([*MessageType, None]))
    if kind is not None:
        options[OptionCode.MESSAGE_TYPE] = kind
    if draw(st.booleans()):
        options[OptionCode.REQUESTED_IP] = draw(addresses)
    if draw(st.booleans()):
        options[OptionCode.SERVER_ID] = draw(st.sampled_from([SERVER, OTHER_SERVER]))
    if draw(st.booleans()):
        options[OptionCode.PARAMETER_REQUEST_LIST] = tuple(
            draw(st.lists(st.sampled_from([1, 3, 6, 12, 15, 26, 28, 42, 119, 121]), max_size=8))
        )
    if draw(st.booleans()):
        options[OptionCode.CLIENT_ID] = draw(st.binary(min_size=2, max_size=20))
    if draw(st.booleans()):
        options[OptionCode.MAX_MESSAGE_SIZE] = draw(st.sampled_from([300, 576, 1500]))
    if draw(st.booleans()):
        options[OptionCode.RAPID_COMMIT] = b""
    if draw(st.booleans()):
        options[OptionCode.RELAY_AGENT_INFO] = RelayAgentInformation(((1, b"port-7"),))
    if draw(st.booleans()):
        options[OptionCode.MESSAGE] = "in use"
    mac = draw(st.sampled_from([*MACS, UNKNOWN_MAC]))
    message = Message(
        op=draw(st.sampled_from([Op.BOOTREQUEST, Op.BOOTREQUEST, Op.BOOTREPLY])),
        xid=draw(st.integers(0, 2**32 - 1)),
        chaddr=bytes.fromhex(mac.replace(":", "")),
        htype=draw(st.sampled_from([1, 1, 6])),
        hops=draw(st.sampled_from([0, 1, 17])),
        flags=draw(st.sampled_from([0, 0x8000])),
        ciaddr=draw(addresses),
        giaddr=draw(st.sampled_from([IPv4Address(0), RELAY])),
        options=Options(options),
    )
    data = encode(message)
    if draw(st.booleans()):
        return data
    # Damage it too: a flipped byte may land in the replay key or outside it.
    position = draw(st.integers(0, len(data) - 1))
    return data[:position] + bytes([draw(st.integers(0, 255))]) + data[position + 1 :]


CORPUS = Path(__file__).resolve().parent.parent / "fuzz" / "corpus"
CORPUS_FILES = sorted(
    path
    for path in CORPUS.rglob("*")
    if path.is_file() and not path.name.startswith("README") and path.suffix != ".md"
)


def as_client(data: bytes, mac: str, giaddr: IPv4Address) -> bytes:
    """A captured packet re-addressed: a BOOTREQUEST from Ethernet `mac`, relayed
    through `giaddr` (or not, for 0.0.0.0); its options stay as captured."""
    if len(data) < 240:
        return data
    packet = bytearray(data)
    packet[0:3] = b"\x01\x01\x06"
    packet[24:28] = giaddr.packed
    packet[28:44] = bytes.fromhex(mac.replace(":", "")) + bytes(10)
    return bytes(packet)


corpus_requests = st.builds(
    as_client,
    st.sampled_from([path.read_bytes() for path in CORPUS_FILES]),
    st.sampled_from([*MACS, UNKNOWN_MAC]),
    st.sampled_from([IPv4Address(0), RELAY]),
)


def with_header(data: bytes, xid: int, secs: int, flags: int) -> bytes:
    if len(data) < 12:
        return data
    return data[:4] + struct.pack("!IHH", xid, secs, flags) + data[12:]


headers = st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 65535), st.integers(0, 65535))
clear_decline = st.just("clear")
actions = st.lists(
    st.one_of(
        st.tuples(requests() | corpus_requests, st.lists(headers, max_size=3)), clear_decline
    ),
    min_size=1,
    max_size=25,
)


def assert_same_answer(fast: Responder, slow: Responder, data: bytes) -> Reply | None:
    reply = fast.handle(data)
    assert reply == slow.handle(data)  # payload, destination and type
    assert fast.counters.as_dict() == slow.counters.as_dict()
    assert fast.declined == slow.declined
    assert fast.notices == slow.notices
    # The history records a replay as the slow path records the request.
    assert fast.last == slow.last
    for mac in {*fast.history.known, *fast.history.unknown, *slow.history.known}:
        assert fast.history.of(mac) == slow.history.of(mac)
    return reply


@settings(max_examples=300)
@given(actions)
def test_cached_answers_equal_uncached_for_every_request(script: list[object]) -> None:
    fast, slow = make_responder(cache=True), make_responder(cache=False)
    for action in script:
        if action == "clear":
            for r in (fast, slow):
                r.clear_declined(IPS[0])
            continue
        assert isinstance(action, tuple)
        base, variants = action
        for data in [base, *(with_header(base, *v) for v in variants)]:
            assert_same_answer(fast, slow, data)


@pytest.mark.parametrize(
    "path", CORPUS_FILES, ids=[str(path.relative_to(CORPUS)) for path in CORPUS_FILES]
)
def test_cached_answers_equal_uncached_for_the_corpus(path: Path) -> None:
    """Each captured packet from each MAC, direct and relayed, asked four times
    (the same, then with other xid, secs and flags) into one responder pair."""
    ask_like_clients(path.read_bytes(), make_responder(cache=True), make_responder(cache=False))


def ask_like_clients(data: bytes, fast: Responder, slow: Responder) -> int:
    answered = 0
    for mac in [*MACS, UNKNOWN_MAC]:
        for giaddr in (IPv4Address(0), RELAY):
            base = as_client(data, mac, giaddr)
            for header in ((1, 0, 0), (1, 0, 0), (2, 7, 0x8000), (3, 0, 0x0001)):
                answered += assert_same_answer(fast, slow, with_header(base, *header)) is not None
    return answered


def test_the_corpus_reaches_the_caches() -> None:
    """The corpus comparison above means something: the whole corpus through
    one pair gets answers (OFFERs, ACKs, NAKs, direct and relayed), and the
    cached responder answered repeats from its caches."""
    fast, slow = make_responder(cache=True), make_responder(cache=False)
    answered = sum(ask_like_clients(path.read_bytes(), fast, slow) for path in CORPUS_FILES)
    assert answered > 100
    assert set(fast.counters.sent) == {"OFFER", "ACK", "NAK"}
    assert fast._replays and fast._cache
    assert not slow._replays and not slow._cache


def discover(mac: str = MACS[0], *, xid: int = 1, flags: int = 0) -> bytes:
    return encode(
        Message(
            op=Op.BOOTREQUEST,
            xid=xid,
            flags=flags,
            chaddr=bytes.fromhex(mac.replace(":", "")),
            hops=1,
            giaddr=RELAY,
            options=Options({OptionCode.MESSAGE_TYPE: MessageType.DISCOVER}),
        )
    )


def test_repeated_request_is_answered_without_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    r = make_responder(cache=True)
    first = r.handle(discover(xid=1))
    assert first is not None

    def no_decode(data: bytes) -> Message:
        raise AssertionError("the repeat was decoded")

    monkeypatch.setattr(responder_module, "decode", no_decode)
    again = r.handle(discover(xid=0xCAFE, flags=0x8000))
    assert again is not None
    reply = decode(again.payload)
    assert (reply.xid, reply.flags, reply.yiaddr) == (0xCAFE, 0x8000, IPS[0])
    assert again.address == first.address == (str(RELAY), 67)
    assert r.counters.received["DISCOVER"] == 2
    assert r.counters.sent["OFFER"] == 2


def test_replay_forgets_a_changed_reservation() -> None:
    r = make_responder(cache=True)
    assert r.handle(discover()) is not None
    new_ip = IPv4Address("198.18.2.2")
    r.set_reservation(MACS[0], Reservation(new_ip, "vm0"))
    reply = r.handle(discover(xid=2))
    assert reply is not None
    assert decode(reply.payload).yiaddr == new_ip


def test_replay_forgets_a_removed_reservation() -> None:
    r = make_responder(cache=True)
    assert r.handle(discover()) is not None
    r.remove_reservation(MACS[0])
    assert r.handle(discover(xid=2)) is None


def test_a_decline_stops_the_replayed_offer() -> None:
    r = make_responder(cache=True)
    assert r.handle(discover()) is not None
    decline = encode(
        Message(
            op=Op.BOOTREQUEST,
            xid=3,
            chaddr=bytes.fromhex(MACS[0].replace(":", "")),
            options=Options(
                {
                    OptionCode.MESSAGE_TYPE: MessageType.DECLINE,
                    OptionCode.REQUESTED_IP: IPS[0],
                    OptionCode.SERVER_ID: SERVER,
                }
            ),
        )
    )
    assert r.handle(decline) is None
    assert r.handle(discover(xid=4)) is None


def test_malformed_bytes_never_reach_the_replay() -> None:
    r = make_responder(cache=True)
    with pytest.raises(DecodeError):
        decode(b"\x01" * 20)
    assert r.handle(b"\x01" * 20) is None
    assert r.handle(b"\x01" * 20) is None
    assert r.counters.malformed == 2


def relayed_nak_request(*, xid: int, flags: int = 0) -> bytes:
    """A relayed INIT-REBOOT REQUEST for an address that is not the client's."""
    return encode(
        Message(
            op=Op.BOOTREQUEST,
            xid=xid,
            flags=flags,
            chaddr=bytes.fromhex(MACS[0].replace(":", "")),
            hops=1,
            giaddr=RELAY,
            options=Options(
                {
                    OptionCode.MESSAGE_TYPE: MessageType.REQUEST,
                    OptionCode.REQUESTED_IP: IPS[1],
                }
            ),
        )
    )


def test_a_repeated_relayed_nak_is_the_same_nak() -> None:
    """RFC 2131 4.3.2: a relayed NAK sets the broadcast bit. The repeat, answered
    from the cache, once came back with the request's flags (the bit lost)."""
    r = make_responder(cache=True)
    first = r.handle(relayed_nak_request(xid=5))
    again = r.handle(relayed_nak_request(xid=5))
    assert first is not None and first.message_type == MessageType.NAK
    assert decode(first.payload).flags == responder_module.BROADCAST_FLAG
    assert again == first
    # A new xid, and a client that set the bit itself: still the slow path's answer.
    for xid, flags in ((6, 0), (7, 0x8000), (8, 0x0001)):
        slow = make_responder(cache=False).handle(relayed_nak_request(xid=xid, flags=flags))
        assert r.handle(relayed_nak_request(xid=xid, flags=flags)) == slow
