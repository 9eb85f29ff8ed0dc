"""Fuzz target: arbitrary bytes into a pool's DHCPv6 server logic (Responder6).

Nothing may escape `Responder6.handle`; every reply decodes, goes back the way
the request came (through the same relays, with their fields copied, to port
547; else to the client's port 546), names our server and the client's DUID,
and lets the client use no address but the reservation of the MAC that
identifies it (the frame's source or the nearest relay's option 79 when
reserved, else its DUID-LL(T)'s), never a declined one. Silence is always counted.
Run under atheris (libFuzzer flags after the script name):

    .venv/bin/python fuzz/fuzz_server6.py -max_total_time=60 .fuzz-work6 fuzz/corpus6

The MACs reserved are those of the clients in fuzz/corpus6, so the captured
packets reach the answering paths; each input goes to two responders, one
with the server DUID of the captures (dnsmasq's) and one with that of
fuzz/seeds6.py, so REQUEST, RENEW, RELEASE and DECLINE of both name a pool.
The frame's source MAC is picked from the input's length, which leaves the
packet's bytes as they are. The responders live across inputs, as a pool's
does across packets, so their replay caches fill up; beside each runs a twin
without the cache, and the two must give the same reply, counters, declines
and notices for every packet. Each input is asked twice, the second time as
a client retransmits it (another transaction id and Elapsed Time, when the
bytes re-encode as they are), so a replay that answers a repeat wrongly
fails on that one input. A DECLINE that changes what is declined starts a
fresh pair.

`check_server6` is the property and `check_reply6` the invariant of one
answer; tests/test_fuzz_targets.py runs them under hypothesis, so this module
must stay importable without atheris.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Set
from dataclasses import replace
from ipaddress import IPv6Address, IPv6Network

try:
    import atheris
except ImportError:  # the hypothesis run needs no atheris
    atheris = None

if atheris is not None and __name__ == "__main__":
    # Coverage feedback from our code only (see fuzz_decode.py).
    import ipaddress  # noqa: F401
    import uuid  # noqa: F401

    with atheris.instrument_imports():
        from kvip.serving import PoolOptions6, Reply6, Reservation6, Responder6
        from protocol import dhcp6
else:
    from kvip.serving import PoolOptions6, Reply6, Reservation6, Responder6
    from protocol import dhcp6

OPTIONS = PoolOptions6(
    subnet=IPv6Network("2001:db8:0:1::/64"),
    dns=(IPv6Address("2001:db8::53"),),
    domain_search=("fuzz.example", "lab.fuzz.example"),
    ntp=(IPv6Address("2001:db8::123"),),
    ntp_names=("ntp.fuzz.example",),
    preferred_lifetime=600,
    valid_lifetime=1200,
)
#: The server DUIDs the corpus names: dnsmasq's in the captures, fuzz/seeds6.py's.
SERVER_DUIDS = (
    dhcp6.DuidLL(1, bytes.fromhex("5254000000fe")),
    dhcp6.DuidLL(1, bytes.fromhex("525400000099")),
)
#: MAC -> address: the corpus's clients and the addresses they hold there (the
#: first that of fuzz/seeds6.py); the last one is declined at start.
RESERVED = {
    bytes.fromhex("525400000001"): IPv6Address("2001:db8::10"),
    bytes.fromhex("5254001b0001"): IPv6Address("2001:db8:0:1::1b:1"),
    bytes.fromhex("5254001b0007"): IPv6Address("2001:db8:0:2::1b2"),
    bytes.fromhex("5254001c0001"): IPv6Address("2001:db8:0:1::1c:1"),
    bytes.fromhex("5254001c0004"): IPv6Address("2001:db8:0:1::1c:4"),
    bytes.fromhex("5254001d0002"): IPv6Address("2001:db8:0:1::1d:2"),  # networkd's DUID-LL
    bytes.fromhex("5254001e0001"): IPv6Address("2001:db8:0:1::1e:1"),  # dhcp6c's DUID-LLT
    bytes.fromhex("5254001c0002"): IPv6Address("2001:db8:0:1::1c:2"),
}
DECLINED = IPv6Address("2001:db8:0:1::1c:2")
#: The frame's source MAC, by the input's length: none, reserved, not reserved.
SOURCE_MACS = (
    None,
    bytes.fromhex("5254001c0001"),
    bytes.fromhex("52540000ffff"),
    bytes.fromhex("5254001b0007"),
)
SOURCE = ("fe80::5054:ff:fe00:1", 546, 0, 3)
_CLIENT_PORT, _SERVER_PORT = 546, 547
_ETHERNET = 1


def new_responder(server_duid: dhcp6.Duid, *, cache: bool = True) -> Responder6:
    responder = Responder6(OPTIONS, server_duid, cache=cache)
    for mac, ip in RESERVED.items():
        responder.set_reservation(mac.hex(":"), Reservation6(ip))
    responder.mark_declined(DECLINED)
    return responder


def _owner(
    message: dhcp6.Message,
    relays: list[dhcp6.RelayMessage],
    source_mac: bytes | None,
    reservations: Mapping[bytes, Reservation6],
) -> bytes | None:
    """Who the reply may be for, worked out here from the RFCs' fields (not
    with kvip's own functions): the frame's source (direct) or the nearest
    relay's option 79 when reserved, else the DUID's Ethernet address when
    reserved."""
    on_link = source_mac
    if relays:
        option = relays[-1].client_link_layer_address
        on_link = option.address if option and option.link_layer_type == _ETHERNET else None
    if on_link in reservations:
        return on_link
    duid = message.client_duid
    if (
        isinstance(duid, dhcp6.DuidLL | dhcp6.DuidLLT)
        and duid.hardware_type == _ETHERNET
        and duid.link_layer_address in reservations
    ):
        return duid.link_layer_address
    return None


def check_reply6(
    request: bytes,
    reply: Reply6,
    *,
    source_mac: bytes | None,
    reservations: Mapping[bytes, Reservation6],
    declined: Set[IPv6Address],
    server_duid: dhcp6.Duid,
) -> dhcp6.Message:
    """Fail unless `reply` is an answer kvip may give to `request`, given the
    reservations and declined addresses as they were before it; return the
    client's part of it decoded."""
    asked = dhcp6.decode(request)  # an answer to garbage is a bug in itself
    answer = dhcp6.decode(reply.payload)
    relays: list[dhcp6.RelayMessage] = []
    while isinstance(asked, dhcp6.RelayMessage):
        assert asked.msg_type == dhcp6.MessageType.RELAY_FORW
        assert isinstance(answer, dhcp6.RelayMessage), answer
        assert answer.msg_type == dhcp6.MessageType.RELAY_REPL
        copied = (asked.hop_count, asked.link_address, asked.peer_address, asked.interface_id)
        assert (
            answer.hop_count,
            answer.link_address,
            answer.peer_address,
            answer.interface_id,
        ) == copied
        relays.append(asked)
        inner, answered = asked.relayed, answer.relayed
        assert inner is not None and answered is not None
        asked, answer = inner, answered
    assert isinstance(answer, dhcp6.Message), answer
    port = _SERVER_PORT if relays else _CLIENT_PORT
    assert reply.address == (SOURCE[0], port, 0, SOURCE[3]), reply.address
    assert answer.msg_type == reply.message_type
    assert answer.msg_type in (dhcp6.MessageType.ADVERTISE, dhcp6.MessageType.REPLY)
    assert answer.transaction_id == asked.transaction_id
    assert answer.options[0] == dhcp6.ServerId(server_duid)
    assert answer.get(dhcp6.ClientId) == asked.get(dhcp6.ClientId)
    usable = [
        a.address
        for ia in answer.options
        if isinstance(ia, dhcp6.IANA | dhcp6.IATA)
        for a in ia.options
        if isinstance(a, dhcp6.IAAddress) and a.valid_lifetime
    ]
    if usable:
        owner = _owner(asked, relays, source_mac, reservations)
        assert owner is not None, f"offered {usable} to a client without a reservation"
        assert usable == [reservations[owner].ip], (usable, reservations[owner])
        assert usable[0] not in declined, f"handed out the declined {usable[0]}"
    return answer


def _silences(responder: Responder6) -> int:
    c = responder.counters
    return c.malformed + c.unknown_mac + c.ignored + c.send_errors


def asked_again(data: bytes) -> bytes:
    """`data` as a client retransmits it: its client message with another
    transaction id and Elapsed Time, when the message re-encodes to the very
    same bytes (else only the transaction id of a direct message changes)."""
    try:
        message = dhcp6.decode(data)
        if dhcp6.encode(message) == data:
            return dhcp6.encode(_retransmitted(message))
    except (dhcp6.DecodeError, dhcp6.EncodeError):
        pass
    if len(data) < 4 or data[0] in (dhcp6.MessageType.RELAY_FORW, dhcp6.MessageType.RELAY_REPL):
        return data
    return data[:1] + bytes(b ^ 0x5A for b in data[1:4]) + data[4:]


def _retransmitted(
    message: dhcp6.Message | dhcp6.RelayMessage,
) -> dhcp6.Message | dhcp6.RelayMessage:
    if isinstance(message, dhcp6.RelayMessage):
        options = tuple(
            dhcp6.RelayMessageOption(_retransmitted(o.message))
            if isinstance(o, dhcp6.RelayMessageOption)
            else o
            for o in message.options
        )
        return replace(message, options=options)
    options = tuple(
        dhcp6.ElapsedTime((o.hundredths + 100) & 0xFFFF) if isinstance(o, dhcp6.ElapsedTime) else o
        for o in message.options
    )
    return replace(message, transaction_id=message.transaction_id ^ 0x5A5A5A, options=options)


class Twins:
    """A responder with its replay cache and one without, fed the same packets."""

    def __init__(self, server_duid: dhcp6.Duid) -> None:
        self.cached = new_responder(server_duid)
        self.uncached = new_responder(server_duid, cache=False)

    def ask(self, data: bytes, source_mac: bytes | None) -> None:
        """Both answer `data` alike, and the answer is one kvip may give."""
        cached, uncached = self.cached, self.uncached
        before = dict(cached.reservations)
        declined = set(cached.declined)
        sent, silent = sum(cached.counters.sent.values()), _silences(cached)
        reply = cached.handle(data, 0.0, SOURCE, source_mac)
        assert reply == uncached.handle(data, 0.0, SOURCE, source_mac), "the cache changed it"
        assert cached.counters.as_dict() == uncached.counters.as_dict()
        assert (cached.declined, cached.notices) == (uncached.declined, uncached.notices)
        assert cached.last == uncached.last
        assert sum(cached.counters.sent.values()) - sent == (reply is not None)
        if reply is None:
            assert _silences(cached) > silent, "a silence nothing counts"
        else:
            check_reply6(
                data,
                reply,
                source_mac=source_mac,
                reservations=before,
                declined=declined,
                server_duid=cached.server_duid,
            )


class Pool:
    """Responder twins, one pair per server DUID, that outlive the inputs."""

    twins: list[Twins]

    def __init__(self) -> None:
        self.twins = [Twins(duid) for duid in SERVER_DUIDS]

    @property
    def responders(self) -> list[Responder6]:
        """The cached responder of each pair."""
        return [pair.cached for pair in self.twins]

    def ask(self, data: bytes) -> None:
        source_mac = SOURCE_MACS[len(data) % len(SOURCE_MACS)]
        again = asked_again(data)
        for i, pair in enumerate(self.twins):
            pair.ask(data, source_mac)
            pair.ask(again, source_mac)
            for responder in (pair.cached, pair.uncached):
                responder.notices.clear()
            if pair.cached.declined != {DECLINED}:
                self.twins[i] = Twins(pair.cached.server_duid)


_POOL = Pool()


def check_server6(data: bytes, pool: Pool | None = None) -> None:
    """One input, asked twice, into responder twins that outlive it (by
    default those of the whole run): never raises, answers only as allowed,
    and the cached responder answers as the uncached one."""
    (pool or _POOL).ask(data)


def TestOneInput(data: bytes) -> None:  # noqa: N802 - the name atheris expects
    check_server6(data)


if __name__ == "__main__":
    if atheris is None:
        sys.exit("atheris is not installed: pip install -e '.[fuzz]'")
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
