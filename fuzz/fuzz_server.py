"""Fuzz target: arbitrary bytes into a pool's DHCP server logic (the Responder).

Nothing may escape `Responder.handle`; an answer goes only to a reserved MAC,
carries exactly its reserved address (or none, for a NAK or an INFORM), and
never an address that was declined. To reach past the header checks, the
first byte may turn the rest into a request from one of the reserved MACs
(op, htype, hlen, chaddr and the magic cookie patched in); the options stay
the fuzzer's. Run under atheris (libFuzzer flags after the script name):

    .venv/bin/python fuzz/fuzz_server.py -max_total_time=60 .fuzz-work fuzz/corpus

The responder lives across inputs, as a pool's does across packets, so its
reply caches fill up; beside it runs a twin without caches, and the two must
give the same bytes to the same address for every packet. Each input is asked
twice, the second time with another xid, secs and the broadcast bit flipped:
a cache that answers a repeat wrongly fails on that one input, reproducibly.
A DECLINE that changes the reserved state starts a fresh pair.

`check_server` is the property and `check_reply` the invariant of one answer;
tests/test_server_fuzz.py runs them under hypothesis, so this module must stay
importable without atheris.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Set
from ipaddress import IPv4Address, IPv4Network

try:
    import atheris
except ImportError:  # the hypothesis run needs no atheris
    atheris = None

if atheris is not None and __name__ == "__main__":
    # Coverage feedback from our code only (see fuzz_decode.py).
    import ipaddress  # noqa: F401

    import construct  # noqa: F401

    with atheris.instrument_imports():
        import protocol
        from kvip.serving import PoolOptions, Reply, Reservation, Responder, mac_bytes
else:
    import protocol
    from kvip.serving import PoolOptions, Reply, Reservation, Responder, mac_bytes

SERVER_IP = IPv4Address("198.18.0.1")
OPTIONS = PoolOptions(
    server_ip=SERVER_IP,
    subnet=IPv4Network("198.18.0.0/24"),
    router=IPv4Address("198.18.0.254"),
    dns=(IPv4Address("198.18.0.53"),),
    domain_name="fuzz.example",
    domain_search=("fuzz.example", "lab.fuzz.example"),
    lease_time=600,
    mtu=1450,
)
#: MAC -> (address, host name); the last one is declined at start.
RESERVED = {
    "52:54:00:00:00:01": (IPv4Address("198.18.0.10"), "vm1"),
    "52:54:00:00:00:02": (IPv4Address("198.18.0.11"), None),
    "52:54:00:00:00:03": (IPv4Address("198.18.0.12"), "vm3"),
}
DECLINED = IPv4Address("198.18.0.12")
_MACS = [mac_bytes(mac) for mac in RESERVED]
_COOKIE = bytes((99, 130, 83, 99))
_NO_ADDRESS = IPv4Address(0)
#: RFC 2131 4.1: relayed replies go to the relay's server port.
_RELAY_PORT = 67
#: RFC 2131 2: the B bit of `flags`.
_BROADCAST = 0x8000


def new_responder(*, cache: bool = True) -> Responder:
    responder = Responder(OPTIONS, cache=cache)
    for mac, (ip, hostname) in RESERVED.items():
        responder.set_reservation(mac, Reservation(ip, hostname))
    responder.declined.add(DECLINED)
    return responder


def as_known_client(data: bytes) -> bytes:
    """`data` turned into a BOOTREQUEST from a reserved MAC, when the first byte
    asks for it (odd) and there is room for a header; else `data` unchanged."""
    if len(data) < 241 or not data[0] & 1:
        return data
    packet = bytearray(data[1:])
    packet[0:3] = b"\x01\x01\x06"  # BOOTREQUEST, Ethernet, 6-byte chaddr
    packet[28:34] = _MACS[data[0] // 2 % len(_MACS)]
    packet[236:240] = _COOKIE
    return bytes(packet)


def check_reply(
    request: bytes,
    reply: Reply,
    *,
    reservations: Mapping[bytes, Reservation],
    declined: Set[IPv4Address],
    server_ip: IPv4Address,
) -> protocol.Message:
    """Fail unless `reply` is an answer kvip may give to `request`, given the
    reservations and declined addresses as they were before it; return it decoded."""
    asked = protocol.decode(request)  # an answer to garbage is a bug in itself
    answer = protocol.decode(reply.payload)
    assert answer.op == protocol.Op.BOOTREPLY
    assert asked.op == protocol.Op.BOOTREQUEST and asked.htype == 1
    assert (answer.xid, answer.giaddr) == (asked.xid, asked.giaddr)
    kind = answer.message_type
    flags = asked.flags
    if kind == protocol.MessageType.NAK and asked.giaddr != _NO_ADDRESS:
        flags |= _BROADCAST  # RFC 2131 4.3.2: a relayed NAK is broadcast by the relay
    assert answer.flags == flags, (answer.flags, asked.flags)
    assert answer.chaddr == asked.chaddr
    reservation = reservations.get(answer.chaddr)
    assert reservation is not None, f"answered {answer.mac}, which has no reservation"
    assert answer.message_type == reply.message_type
    assert answer.options[protocol.OptionCode.SERVER_ID] == server_ip
    assert len(reply.payload) >= 300  # RFC 1542
    if asked.giaddr != _NO_ADDRESS:
        assert reply.address == (str(asked.giaddr), _RELAY_PORT)
    if kind == protocol.MessageType.NAK or asked.message_type == protocol.MessageType.INFORM:
        assert answer.yiaddr == _NO_ADDRESS
        assert kind in (protocol.MessageType.NAK, protocol.MessageType.ACK)
        return answer
    assert kind in (protocol.MessageType.OFFER, protocol.MessageType.ACK)
    assert answer.yiaddr == reservation.ip, (answer.yiaddr, reservation.ip)
    assert reservation.ip not in declined, f"handed out the declined {reservation.ip}"
    return answer


class Twins:
    """A responder with its caches and one without, fed the same packets."""

    cached: Responder
    uncached: Responder

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.cached = new_responder()
        self.uncached = new_responder(cache=False)

    def ask(self, request: bytes) -> Reply | None:
        """Both answer `request` alike, and the answer is one kvip may give."""
        cached, uncached = self.cached, self.uncached
        before = dict(cached.reservations)
        declined = set(cached.declined)
        counted = _tally(cached)
        reply = cached.handle(request)
        assert reply == uncached.handle(request), "the cache changed the answer"
        assert cached.counters.as_dict() == uncached.counters.as_dict()
        assert (cached.declined, cached.notices) == (uncached.declined, uncached.notices)
        if reply is not None:
            check_reply(request, reply, reservations=before, declined=declined, server_ip=SERVER_IP)
        tally = _tally(cached)
        sent, malformed, accounted = (now - then for now, then in zip(tally, counted, strict=True))
        assert sent == (reply is not None)
        if reply is None and not malformed:
            assert accounted, cached.counters.as_dict()  # silence is accounted for
        return reply

    def settle(self) -> None:
        """Drop the notices; start a fresh pair when a DECLINE changed the state."""
        for responder in (self.cached, self.uncached):
            responder.notices.clear()
        if self.cached.declined != {DECLINED}:
            self.reset()


def _tally(responder: Responder) -> tuple[int, int, int]:
    """Replies sent, malformed packets, and silences with a reason."""
    c = responder.counters
    accounted = c.unknown_mac + c.ignored + c.declines + c.releases + c.send_errors
    return sum(c.sent.values()), c.malformed, accounted


def asked_again(request: bytes) -> bytes:
    """`request` as a client repeats it: another xid and secs, the B bit flipped."""
    if len(request) < 12:
        return request
    xid = (int.from_bytes(request[4:8], "big") ^ 0x5A5A5A5A).to_bytes(4, "big")
    return request[:4] + xid + b"\x00\x03" + bytes((request[10] ^ 0x80,)) + request[11:]


_TWINS = Twins()


def check_server(data: bytes, twins: Twins | None = None) -> None:
    """One input, asked twice, into a responder pair that outlives it (by
    default the one of the whole run): never raises, answers only as allowed,
    and the cached responder answers as the uncached one."""
    twins = twins or _TWINS
    request = as_known_client(data)
    twins.ask(request)
    twins.ask(asked_again(request))
    twins.settle()


def TestOneInput(data: bytes) -> None:  # noqa: N802 - the name atheris expects
    check_server(data)


if __name__ == "__main__":
    if atheris is None:
        sys.exit("atheris is not installed: pip install -e '.[fuzz]'")
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
