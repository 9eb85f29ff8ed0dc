"""Replies that must fit the client's size limit (RFC 2132 9.10), on generated pools.

However long the pool's lists of DNS servers, search domains, NTP servers and
routes, a reserved client gets an OFFER and an ACK within its limit, with every
option DHCP.md says is always sent; what is left out is never wanted more by
the client than what is kept.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from hypothesis import given, settings
from hypothesis import strategies as st

from kvip.serving import PoolOptions, Reservation, Responder
from protocol import (
    ClasslessRoute,
    Message,
    MessageType,
    Op,
    Options,
    decode,
    encode,
)

SERVER = IPv4Address("198.18.0.1")
ROUTER = IPv4Address("198.18.0.254")
MAC = "52:54:00:00:00:01"
IP = IPv4Address("198.18.1.1")
#: Sent in every OFFER and ACK to this client (it sends no client id nor option 82).
ALWAYS = {53, 54, 51, 58, 59, 1, 3}
#: Options a pool may set: what the client may ask for, and what may be left out.
CONFIGURABLE = [6, 15, 119, 42, 26, 121, 28, 12]

addresses = st.integers(0x01000000, 0xDFFFFFFF).map(IPv4Address)
names = st.lists(
    st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=20),
    min_size=1,
    max_size=4,
).map(".".join)


@st.composite
def routes(draw: st.DrawFn) -> ClasslessRoute:
    width = draw(st.integers(0, 32))
    network = IPv4Network((draw(addresses), width), strict=False)
    return ClasslessRoute(network, draw(addresses))


pools = st.builds(
    PoolOptions,
    server_ip=st.just(SERVER),
    subnet=st.just(IPv4Network("198.18.0.0/16")),
    router=st.just(ROUTER),
    dns=st.lists(addresses, max_size=60).map(tuple),
    domain_name=st.none() | names,
    domain_search=st.lists(names, max_size=40).map(tuple),
    ntp=st.lists(addresses, max_size=40).map(tuple),
    lease_time=st.integers(60, 86400),
    mtu=st.none() | st.integers(576, 9000),
    routes=st.lists(routes(), max_size=30).map(tuple),
)


def request(kind: MessageType, prl: tuple[int, ...], max_size: int | None) -> bytes:
    options: dict[int, object] = {53: kind, 55: prl, 12: "vm-1"}
    if kind == MessageType.REQUEST:
        options.update({50: IP, 54: SERVER})
    if max_size is not None:
        options[57] = max_size
    chaddr = bytes.fromhex(MAC.replace(":", ""))
    return encode(Message(op=Op.BOOTREQUEST, xid=7, chaddr=chaddr, options=Options(options)))


@settings(max_examples=300, deadline=None)
@given(
    pool=pools,
    prl=st.lists(st.sampled_from([1, 3, *CONFIGURABLE]), unique=True).map(tuple),
    max_size=st.none() | st.integers(0, 3000),
)
def test_every_reply_fits_and_keeps_what_is_wanted_most(
    pool: PoolOptions, prl: tuple[int, ...], max_size: int | None
) -> None:
    responder = Responder(pool)
    responder.set_reservation(MAC, Reservation(IP, "vm-1"))
    limit = max(max_size or 0, 576) - 28  # RFC 2131 2: the IP and UDP headers count
    for kind, answer in ((MessageType.DISCOVER, MessageType.OFFER),
                         (MessageType.REQUEST, MessageType.ACK)):  # fmt: skip
        reply = responder.handle(request(kind, prl, max_size))
        assert reply is not None, "a reserved client always gets an answer"
        assert len(reply.payload) <= limit
        message = decode(reply.payload)
        assert message.message_type is answer and message.yiaddr == IP
        assert set(message.options) >= ALWAYS
        kept = [code for code in CONFIGURABLE if code in message.options]
        left_out = [code for code in _offered(pool, prl) if code not in message.options]
        for dropped in left_out:
            for code in kept:
                assert not _wanted_more(dropped, code, prl), (dropped, code, prl)
    assert responder.counters.send_errors == 0


def _offered(pool: PoolOptions, prl: tuple[int, ...]) -> list[int]:
    """The configurable options this pool sends to this client when room allows."""
    present = {
        6: bool(pool.dns),
        15: pool.domain_name is not None,
        119: bool(pool.domain_search),
        42: bool(pool.ntp),
        26: pool.mtu is not None,
        121: bool(pool.routes),
        28: 28 in prl,
        12: 12 in prl,
    }
    return [code for code, sent in present.items() if sent]


def _wanted_more(a: int, b: int, prl: tuple[int, ...]) -> bool:
    """The client wants `a` more than `b`: asked for it, and earlier (RFC 2132 9.8)."""
    if a not in prl:
        return False
    return b not in prl or prl.index(a) < prl.index(b)
