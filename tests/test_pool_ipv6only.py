"""An IPv6-only pool's book: a NIC is made known by its ClaimAddress (answered
None: no IPv4 address) and gets its one address from ClaimAddress6; restores,
followers, carried claims, MAC moves and reconfigures between the three kinds
of pool (PoolActor alone, no socket)."""

from __future__ import annotations

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
from kvip.actors._messages import (
    ClaimAddress6,
    ClearDecline,
    Inspect,
    MarkDeclined,
    PoolState,
    ServeRecorded,
)
from kvip.actors._pool import NoIpv4
from kvip.ipam import Owner, PoolExhausted
from kvip.serving import PoolConfig
from tests.lab.pool_harness import SUBNET6, FakeSocketFactory, dual_config, only6_config

MAC1, MAC2 = "52:54:00:00:66:01", "52:54:00:00:66:02"
VM1, VM2 = Owner(f"ns/vm1 [{MAC1}]"), Owner(f"ns/vm2 [{MAC2}]")
V4 = IPv4Address("198.18.0.20")


def v6(n: int) -> IPv6Address:
    return SUBNET6.network_address + n


def only6_pool(**kwargs: object) -> PoolActor:
    return PoolActor(only6_config(**kwargs), socket_factory=FakeSocketFactory())  # type: ignore[arg-type]


def claim(actor: PoolActor, owner: Owner, mac: str, **kwargs: object) -> IPv6Address:
    assert actor.handle_now(ClaimAddress(owner, mac)) is None
    ip6: IPv6Address = actor.handle_now(ClaimAddress6(owner, mac, **kwargs))  # type: ignore[arg-type]
    return ip6


def state(actor: PoolActor) -> PoolState:
    found: PoolState = actor.handle_now(Inspect())
    return found


def served6(actor: PoolActor) -> dict[str, IPv6Address]:
    assert actor.book.v6 is not None
    reservations = actor.book.v6.responder.reservations
    return {mac.hex(":"): r.ip for mac, r in reservations.items()}


def reconfigured(actor: PoolActor, config: PoolConfig) -> tuple[object, ...]:
    answer: tuple[object, ...] = ()

    async def main() -> None:
        nonlocal answer
        async with trio.open_nursery() as nursery:
            await nursery.start(actor.run)
            answer = await actor.ask(Reconfigure(config))
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return answer


def test_a_nic_gets_one_ipv6_address_and_no_ipv4_one() -> None:
    actor = only6_pool()
    assert claim(actor, VM1, MAC1) == v6(0x10)
    assert claim(actor, VM2, MAC2) == v6(0x11)
    assert claim(actor, VM1, MAC1) == v6(0x10)  # asked again: what it holds
    found = state(actor)
    assert (found.v4, found.allocations, found.used, found.available) == (False, (), 0, 0)
    assert found.v6 is not None and dict(found.v6.allocations) == {v6(0x10): VM1, v6(0x11): VM2}
    assert actor.nics[MAC1].ip is None
    with pytest.raises(NoIpv4):
        actor.allocator  # noqa: B018 - the property raises
    assert actor.figures().used == 0


def test_served_only_once_durable_and_released_at_once() -> None:
    actor = only6_pool()
    ip6 = claim(actor, VM1, MAC1)
    assert served6(actor) == {}
    assert actor.handle_now(ServeReservation(MAC1, None, ip6))
    assert served6(actor) == {MAC1: ip6}
    assert actor.handle_now(ReleaseOwner(VM1)) == (ip6,)
    assert served6(actor) == {} and MAC1 not in actor.nics
    assert claim(actor, VM2, MAC2) == ip6  # free again


def test_an_exhausted_range_refuses_the_claim() -> None:
    actor = only6_pool(start6=0x10, end6=0x10)
    claim(actor, VM1, MAC1)
    with pytest.raises(PoolExhausted):
        claim(actor, VM2, MAC2)


def test_a_restored_record_is_held_by_its_ipv6_address_alone() -> None:
    actor = only6_pool()
    # A record of the pool's dual-stack days still names an IPv4 address: not held.
    assert actor.handle_now(RestoreReservation(VM1, MAC1, V4, "vm1", v6(0x1A))) is None
    assert served6(actor) == {MAC1: v6(0x1A)}
    assert actor.nics[MAC1].ip is None
    assert claim(actor, VM1, MAC1) == v6(0x1A)
    assert served6(actor) == {MAC1: v6(0x1A)}  # the claim of a served NIC changes nothing


def test_a_follower_serves_exactly_the_records() -> None:
    actor = only6_pool()
    first = RestoreReservation(VM1, MAC1, None, "vm1", v6(0x1A))
    assert actor.handle_now(ServeRecorded("ns/vm1", (first,))) == ((), ())
    # The same records again: nothing changes (not released and held again).
    assert actor.handle_now(ServeRecorded("ns/vm1", (first,))) == ((), ())
    assert served6(actor) == {MAC1: v6(0x1A)}
    moved = RestoreReservation(VM1, MAC1, None, "vm1", v6(0x1B))
    released, problems = actor.handle_now(ServeRecorded("ns/vm1", (moved,)))
    assert (released, problems) == ((v6(0x1A),), ())
    assert served6(actor) == {MAC1: v6(0x1B)}
    declined = ServeRecorded("ns/vm1", (moved,), frozenset({v6(0x1B)}))
    actor.handle_now(declined)
    assert actor.book.v6 is not None and v6(0x1B) in actor.book.v6.responder.declined
    assert actor.handle_now(ServeRecorded("ns/vm1", ())) == ((v6(0x1B),), ())
    assert served6(actor) == {}


def test_declines_of_an_ipv6_only_pool() -> None:
    actor = only6_pool()
    ip6 = claim(actor, VM1, MAC1)
    actor.handle_now(MarkDeclined(ip6))
    assert actor.handle_now(MarkDeclined(V4)) is None  # no IPv4 half to mark
    assert actor.handle_now(ClearDecline(V4)) is False
    assert actor.handle_now(ClearDecline(ip6)) is True
    assert actor.book.hold_replica_addresses({V4}) == {}


def test_unserved_claims_carry_to_the_next_actor() -> None:
    actor = only6_pool()
    ip6 = claim(actor, VM1, MAC1)
    (unserved,) = actor.book.unserved()
    assert (unserved.ip, unserved.ip6) == (None, ip6)
    successor = only6_pool()
    successor.book.hold_unserved([unserved])
    assert dict(state(successor).v6.allocations) == {ip6: VM1}  # type: ignore[union-attr]
    assert not successor.nics[MAC1].serving
    assert successor.handle_now(ServeReservation(MAC1, None, ip6))
    assert served6(successor) == {MAC1: ip6}


def test_a_nic_whose_mac_changed_takes_its_address_along() -> None:
    actor = only6_pool()
    ip6 = claim(actor, VM1, MAC1)
    actor.handle_now(ServeReservation(MAC1, None, ip6))
    new_owner = Owner(f"ns/vm1 [{MAC2}]")
    assert claim(actor, new_owner, MAC2, requested=ip6, replaces=VM1) == ip6
    # The old MAC is no longer known nor served: one address, one NIC.
    assert MAC1 not in actor.nics and MAC1 not in served6(actor)
    actor.handle_now(ServeReservation(MAC2, None, ip6))
    assert served6(actor) == {MAC2: ip6}


def test_ipv4config_added_then_removed_again() -> None:
    actor = only6_pool()
    ip6 = claim(actor, VM1, MAC1)
    actor.handle_now(ServeReservation(MAC1, None, ip6))
    assert reconfigured(actor, dual_config()) == ()
    # Dual-stack now: the NIC keeps its IPv6 address, served, until its next claim.
    assert served6(actor) == {MAC1: ip6}
    ip = actor.handle_now(ClaimAddress(VM1, MAC1))
    assert isinstance(ip, IPv4Address)
    assert actor.handle_now(ClaimAddress6(VM1, MAC1)) == ip6
    actor.handle_now(ServeReservation(MAC1, ip, ip6))
    assert [r.ip for r in actor.responder.reservations.values()] == [ip]
    assert state(actor).v4 and dict(state(actor).allocations) == {ip: VM1}
    # And back: the IPv4 address goes, the IPv6 one stays served.
    assert reconfigured(actor, only6_config()) == ((ip, VM1),)
    assert actor.book.allocator is None and actor.nics[MAC1].ip is None
    assert served6(actor) == {MAC1: ip6}
    assert claim(actor, VM1, MAC1) == ip6


def test_a_record_of_the_ipv6_only_days_restored_on_a_dual_stack_pool() -> None:
    actor = PoolActor(dual_config(), socket_factory=FakeSocketFactory())
    actor.handle_now(RestoreReservation(VM1, MAC1, None, "vm1", v6(0x1A)))
    assert actor.nics[MAC1].ip is None and served6(actor) == {MAC1: v6(0x1A)}
    assert state(actor).allocations == ()
    # Its next claim gives it an IPv4 address beside the IPv6 one it keeps.
    ip = actor.handle_now(ClaimAddress(VM1, MAC1))
    assert ip == IPv4Address("198.18.0.10")
    assert actor.handle_now(ClaimAddress6(VM1, MAC1)) == v6(0x1A)


def test_a_record_still_showing_its_ipv4_address_when_the_ipv4config_returns_keeps_it() -> None:
    """The ipv4config removed and added back before the NIC was reconciled: its
    record still shows the IPv4 address, which is held again for it, not given
    to the next NIC (chaos seed 7028: another VM was given it while the record
    still showed it, and the NIC moved to another address)."""
    actor = PoolActor(dual_config(), socket_factory=FakeSocketFactory())
    ip = actor.handle_now(ClaimAddress(VM1, MAC1))
    assert isinstance(ip, IPv4Address)
    ip6 = actor.handle_now(ClaimAddress6(VM1, MAC1))
    actor.handle_now(ServeReservation(MAC1, ip, ip6))
    assert reconfigured(actor, only6_config()) == ((ip, VM1),)
    record = RestoreReservation(VM1, MAC1, ip, "vm1", ip6)  # not reconciled meanwhile

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(actor.run)
            await actor.ask(Reconfigure(dual_config(), restore=(record,)))
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert dict(state(actor).allocations) == {ip: VM1}
    assert actor.nics[MAC1].ip == ip
    assert [r.ip for r in actor.responder.reservations.values()] == [ip]
    assert actor.handle_now(ClaimAddress(VM2, MAC2)) != ip
    assert actor.handle_now(ClaimAddress(VM1, MAC1)) == ip
