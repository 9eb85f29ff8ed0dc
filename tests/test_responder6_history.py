"""A pool's DHCPv6 history per MAC (Responder6.history, as the DHCPv4 one):
what each client sent lately and what it was answered, or why not; `kvip why`
and GET /debug/mac read it through PoolBook.heard_from."""

from __future__ import annotations

from kvip.serving import Responder6
from kvip.serving import _history as why
from kvip.serving._history import MacSeen, Outcome, silent
from protocol.dhcp6 import IANA, DuidLL, MessageType, RapidCommit
from tests.lab.responder6 import (
    ANOTHER_SERVER,
    IP,
    MAC,
    UNKNOWN_MAC,
    ask,
    client,
    responder,
)

XID = bytes.fromhex("abcdef")


def heard(r: Responder6, mac: bytes) -> MacSeen:
    found = r.history.of(mac)
    assert found is not None
    return found


def outcomes(r: Responder6, mac: bytes) -> list[tuple[str, Outcome]]:
    return [(seen[2], seen[4]) for seen in heard(r, mac)[1]]


def test_a_known_clients_exchange_is_remembered_with_the_address_given() -> None:
    r = responder()
    ask(r, client(MessageType.SOLICIT, IANA(iaid=1)))
    ask(r, client(MessageType.REQUEST, IANA(iaid=1)))
    ask(r, client(MessageType.SOLICIT, IANA(iaid=1)))  # a replay: remembered alike
    ask(r, client(MessageType.RELEASE, IANA(iaid=1)))
    assert outcomes(r, MAC) == [
        ("SOLICIT", Outcome("ADVERTISE", str(IP), None)),
        ("REQUEST", Outcome("REPLY", str(IP), None)),
        ("SOLICIT", Outcome("ADVERTISE", str(IP), None)),
        ("RELEASE", Outcome("REPLY", None, None)),
    ]
    count, seen, unknown = heard(r, MAC)
    assert (count, unknown) == (4, False)
    assert seen[0][0] == 1.0 and seen[0][1] == MAC and seen[0][3] == XID


def test_why_a_client_got_no_answer() -> None:
    r = responder()
    ask(r, client(MessageType.SOLICIT, IANA(iaid=1), duid=DuidLL(1, UNKNOWN_MAC)))
    assert outcomes(r, UNKNOWN_MAC) == [("SOLICIT", silent(why.WHY_UNKNOWN_MAC))]
    assert heard(r, UNKNOWN_MAC)[2] is True
    assert r.history.take_fresh() == [UNKNOWN_MAC]  # for the packet thread's log line
    ask(r, client(MessageType.REQUEST, IANA(iaid=1), server=ANOTHER_SERVER))
    ask(r, client(MessageType.SOLICIT, IANA(iaid=1), server=ANOTHER_SERVER))
    r.drain()
    ask(r, client(MessageType.SOLICIT, IANA(iaid=1), RapidCommit()))
    assert outcomes(r, MAC) == [
        ("REQUEST", silent(why.WHY_ANOTHER_SERVER)),
        ("SOLICIT", silent(why.WHY_INVALID)),  # a SOLICIT names no server
        ("SOLICIT", silent(why.WHY_DRAINING)),
    ]


def test_a_declined_address_is_answered_without_an_address() -> None:
    r = responder()
    r.mark_declined(IP)
    ask(r, client(MessageType.SOLICIT, IANA(iaid=1)))
    assert outcomes(r, MAC) == [("SOLICIT", Outcome("ADVERTISE", None, None))]
