"""A dual-stack pool's book: each NIC holds an IPv4 and an IPv6 address, both
served once durable, both released together (PoolActor alone, no socket)."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address

import pytest
import trio
import trio.testing

from kvip.actors import (
    ClaimAddress,
    PoolActor,
    Reconfigure,
    ReleaseOwner,
    RestoreReservation,
    ServeReservation,
)
from kvip.actors._messages import ClaimAddress6, Inspect, MarkDeclined, PoolState, ServeRecorded
from kvip.actors._pool_book6 import NoIpv6
from kvip.ipam import AddressTaken, Owner, PoolExhausted
from kvip.serving import PoolConfig
from protocol import Message, MessageType, Op, OptionCode, Options, encode
from protocol.dhcp6 import IANA, ClientId, DuidLL
from protocol.dhcp6 import Message as Message6
from protocol.dhcp6 import MessageType as MessageType6
from protocol.dhcp6 import encode as encode6
from tests.lab.pool_harness import SUBNET6, FakeSocketFactory, dual_config, pool_config

MAC1, MAC2, MAC3 = (f"52:54:00:00:60:0{n}" for n in range(1, 4))
VM1, VM2, VM3 = (Owner(f"ns/vm{n} [{mac}]") for n, mac in enumerate((MAC1, MAC2, MAC3), 1))


def v6(n: int) -> IPv6Address:
    return SUBNET6.network_address + n


def dual_pool(**kwargs: object) -> PoolActor:
    return PoolActor(dual_config(**kwargs), socket_factory=FakeSocketFactory())  # type: ignore[arg-type]


def claim_both(actor: PoolActor, owner: Owner, mac: str) -> tuple[IPv4Address, IPv6Address]:
    ip = actor.handle_now(ClaimAddress(owner, mac))
    ip6 = actor.handle_now(ClaimAddress6(owner, mac))
    return ip, ip6


def state(actor: PoolActor) -> PoolState:
    found: PoolState = actor.handle_now(Inspect())
    return found


def test_each_nic_gets_the_lowest_free_address_of_each_family() -> None:
    actor = dual_pool()
    assert claim_both(actor, VM1, MAC1) == (IPv4Address("198.18.0.10"), v6(0x10))
    assert claim_both(actor, VM2, MAC2) == (IPv4Address("198.18.0.11"), v6(0x11))
    # Asked again, the NIC keeps what it holds.
    assert claim_both(actor, VM1, MAC1) == (IPv4Address("198.18.0.10"), v6(0x10))
    six = state(actor).v6
    assert six is not None
    assert dict(six.allocations) == {v6(0x10): VM1, v6(0x11): VM2}
    assert six.used == 2 and six.available == 17 - 2


def test_an_ipv4_only_pool_has_no_ipv6_to_claim() -> None:
    actor = PoolActor(pool_config(paused=True), socket_factory=FakeSocketFactory())
    actor.handle_now(ClaimAddress(VM1, MAC1))
    with pytest.raises(NoIpv6):
        actor.handle_now(ClaimAddress6(VM1, MAC1))
    assert state(actor).v6 is None


def test_an_ipv6_claim_needs_the_nic_known_first() -> None:
    actor = dual_pool()
    with pytest.raises(Exception, match="before its ClaimAddress"):
        actor.handle_now(ClaimAddress6(VM1, MAC1))


def test_a_requested_ipv6_address_is_given_and_a_taken_one_refused() -> None:
    actor = dual_pool()
    actor.handle_now(ClaimAddress(VM1, MAC1))
    assert actor.handle_now(ClaimAddress6(VM1, MAC1, requested=v6(0x18))) == v6(0x18)
    actor.handle_now(ClaimAddress(VM2, MAC2))
    with pytest.raises(AddressTaken):
        actor.handle_now(ClaimAddress6(VM2, MAC2, requested=v6(0x18)))
    # The refused claim left VM1's address where it was.
    assert dict(state(actor).v6.allocations) == {v6(0x18): VM1}  # type: ignore[union-attr]


def test_an_exhausted_ipv6_range_leaves_the_ipv4_claim_standing() -> None:
    actor = dual_pool(start6=0x10, end6=0x10)
    claim_both(actor, VM1, MAC1)
    assert actor.handle_now(ClaimAddress(VM2, MAC2)) == IPv4Address("198.18.0.11")
    with pytest.raises(PoolExhausted):
        actor.handle_now(ClaimAddress6(VM2, MAC2))
    assert IPv4Address("198.18.0.11") in dict(state(actor).allocations)


def test_release_gives_both_addresses_back_at_once() -> None:
    actor = dual_pool()
    ip, ip6 = claim_both(actor, VM1, MAC1)
    assert actor.handle_now(ServeReservation(MAC1, ip, ip6))
    assert set(actor.handle_now(ReleaseOwner(VM1))) == {ip, ip6}
    assert state(actor).v6.allocations == ()  # type: ignore[union-attr]
    assert actor.book.v6 is not None and not actor.book.v6.responder.reservations


def test_both_addresses_are_served_only_once_durable() -> None:
    actor = dual_pool()
    ip, ip6 = claim_both(actor, VM1, MAC1)
    book6 = actor.book.v6
    assert book6 is not None
    assert not book6.responder.reservations
    actor.handle_now(ServeReservation(MAC1, ip, ip6))
    assert [r.ip for r in book6.responder.reservations.values()] == [ip6]


def test_a_restored_record_holds_and_serves_both_addresses() -> None:
    actor = dual_pool()
    restored = RestoreReservation(VM1, MAC1, IPv4Address("198.18.0.20"), "vm1", v6(0x1A))
    actor.handle_now(restored)
    assert dict(state(actor).v6.allocations) == {v6(0x1A): VM1}  # type: ignore[union-attr]
    # The claim of the restored NIC answers with what it holds.
    assert claim_both(actor, VM1, MAC1) == (IPv4Address("198.18.0.20"), v6(0x1A))
    assert actor.book.v6 is not None
    assert [r.ip for r in actor.book.v6.responder.reservations.values()] == [v6(0x1A)]


def test_a_follower_serves_the_recorded_ipv6_address_and_follows_its_change() -> None:
    actor = dual_pool()
    first = RestoreReservation(VM1, MAC1, IPv4Address("198.18.0.20"), "vm1", v6(0x1A))
    actor.handle_now(ServeRecorded("ns/vm1", (first,)))
    moved = replace(first, ip6=v6(0x1B))
    released, problems = actor.handle_now(ServeRecorded("ns/vm1", (moved,)))
    assert problems == ()
    assert v6(0x1A) in released
    assert dict(state(actor).v6.allocations) == {v6(0x1B): VM1}  # type: ignore[union-attr]
    assert actor.book.v6 is not None
    assert [r.ip for r in actor.book.v6.responder.reservations.values()] == [v6(0x1B)]


def test_unserved_claims_carry_their_ipv6_address_to_the_next_actor() -> None:
    actor = dual_pool()
    ip, ip6 = claim_both(actor, VM1, MAC1)
    (unserved,) = actor.book.unserved()
    assert (unserved.ip, unserved.ip6) == (ip, ip6)
    successor = dual_pool()
    successor.book.hold_unserved([unserved])
    assert dict(state(successor).v6.allocations) == {ip6: VM1}  # type: ignore[union-attr]


def reconfigured(actor: PoolActor, config: PoolConfig) -> tuple[object, ...]:
    """Apply a Reconfigure to the running (paused) actor; its answer."""
    answer: tuple[object, ...] = ()

    async def main() -> None:
        nonlocal answer
        async with trio.open_nursery() as nursery:
            await nursery.start(actor.run)
            answer = await actor.ask(Reconfigure(config))
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return answer


def test_a_shrunk_ipv6_range_evicts_ipv6_addresses_alone() -> None:
    actor = dual_pool()
    ip1, ip6_1 = claim_both(actor, VM1, MAC1)
    ip2, ip6_2 = claim_both(actor, VM2, MAC2)
    for mac, ip, ip6 in ((MAC1, ip1, ip6_1), (MAC2, ip2, ip6_2)):
        actor.handle_now(ServeReservation(mac, ip, ip6))
    evicted = reconfigured(actor, dual_config(start6=0x11, end6=0x20))
    assert evicted == ((ip6_1, VM1),)
    # VM1 keeps its IPv4 address, served; only its IPv6 one went.
    assert dict(state(actor).allocations) == {ip1: VM1, ip2: VM2}
    book6 = actor.book.v6
    assert book6 is not None
    assert [r.ip for r in book6.responder.reservations.values()] == [ip6_2]
    assert actor.nics[MAC1].ip6 is None and actor.nics[MAC1].serving


def test_ipv6config_removed_then_added_again() -> None:
    actor = dual_pool()
    ip, ip6 = claim_both(actor, VM1, MAC1)
    actor.handle_now(ServeReservation(MAC1, ip, ip6))
    gone = reconfigured(actor, pool_config(paused=True))
    assert gone == ((ip6, VM1),)
    assert actor.book.v6 is None and state(actor).v6 is None
    assert dict(state(actor).allocations) == {ip: VM1}
    reconfigured(actor, dual_config())
    # Added again: the NIC's next claim (the controller's next reconcile) asks for it.
    assert actor.handle_now(ClaimAddress6(VM1, MAC1, requested=ip6)) == ip6


def test_what_a_mac_sent_by_dhcp_and_dhcpv6_is_one_history() -> None:
    """heard_from (GET /debug/mac, `kvip why`): both families' messages of the MAC,
    in time order, and its declined address of either family."""
    actor = dual_pool()
    ip, ip6 = claim_both(actor, VM1, MAC1)
    actor.handle_now(ServeReservation(MAC1, ip, ip6))
    hw = bytes.fromhex(MAC1.replace(":", ""))
    options = Options({OptionCode.MESSAGE_TYPE: MessageType.DISCOVER})
    discover = Message(op=Op.BOOTREQUEST, xid=7, chaddr=hw, options=options)
    ids = (ClientId(DuidLL(1, hw)), IANA(iaid=1))
    solicit = Message6(msg_type=MessageType6.SOLICIT, transaction_id=9, options=ids)
    book6 = actor.book.v6
    assert book6 is not None
    with actor._lock:
        assert book6.responder.handle(encode6(solicit), 100.0, ("fe80::1", 546, 0, 1), None)
        assert actor.responder.handle(encode(discover), 200.0) is not None
    heard, declined = actor.heard_from(MAC1)
    assert heard is not None and not declined
    count, seen, unknown = heard
    assert (count, unknown) == (2, False)
    assert [(s[0], s[2], s[4].answer, s[4].ip) for s in seen] == [
        (100.0, "SOLICIT", "ADVERTISE", str(ip6)),
        (200.0, "DISCOVER", "OFFER", str(ip)),
    ]
    actor.handle_now(MarkDeclined(ip6))
    assert actor.heard_from(MAC1)[1] is True
