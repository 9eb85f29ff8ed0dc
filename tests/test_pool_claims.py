"""How a PoolActor hands addresses to NICs, alone (paused: no socket, MockClock)."""

from __future__ import annotations

import logging
from ipaddress import IPv4Address

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
from kvip.actors._messages import NicOwner, vm_of
from kvip.ipam import AddressTaken, Owner, PoolExhausted
from kvip.serving import mac_bytes
from protocol import Message, MessageType, Op, OptionCode, Options, decode, encode
from tests.lab.pool_harness import FakeSocketFactory, pool_config

OLD_MAC, NEW_MAC, OTHER_MAC, WAITING_MAC = (f"52:54:00:00:40:0{n}" for n in range(1, 5))
OLD, NEW = Owner(f"ns/vm [{OLD_MAC}]"), Owner(f"ns/vm [{NEW_MAC}]")
OTHER, WAITING = Owner(f"ns/other [{OTHER_MAC}]"), Owner(f"ns/waiting [{WAITING_MAC}]")
STATIC = IPv4Address("198.18.0.11")


def offered(actor: PoolActor, mac: str) -> IPv4Address | None:
    options = Options({OptionCode.MESSAGE_TYPE: MessageType.DISCOVER})
    packet = encode(Message(op=Op.BOOTREQUEST, xid=7, chaddr=mac_bytes(mac), options=options))
    reply = actor.responder.handle(packet)
    return None if reply is None else decode(reply.payload).yiaddr


def full_pool() -> PoolActor:
    """Two addresses, both held and served: the NIC's static one and another VM's."""
    actor = PoolActor(
        pool_config(start=10, end=11, paused=True), socket_factory=FakeSocketFactory()
    )
    assert actor.handle_now(ClaimAddress(OLD, OLD_MAC, requested=STATIC)) == STATIC
    assert actor.handle_now(ServeReservation(OLD_MAC, STATIC))
    other = actor.handle_now(ClaimAddress(OTHER, OTHER_MAC))
    assert actor.handle_now(ServeReservation(OTHER_MAC, other))
    return actor


def test_a_claim_that_replaces_the_nics_old_mac_moves_its_address_in_one_step() -> None:
    """Before the fix a MAC change claimed for the new MAC first (AddressTaken:
    held by the old MAC), then released the old claim: the address was free for
    whoever asked in between."""

    async def main() -> None:
        actor = full_pool()
        answers: dict[str, object] = {}
        async with trio.open_nursery() as nursery:
            await nursery.start(actor.run)

            async def claim(name: str, message: ClaimAddress) -> None:
                try:
                    answers[name] = await actor.ask(message)
                except PoolExhausted as exc:
                    answers[name] = exc

            # A NIC that waits for an address asks on both sides of the move.
            nursery.start_soon(claim, "waiting before", ClaimAddress(WAITING, WAITING_MAC))
            move = ClaimAddress(NEW, NEW_MAC, requested=STATIC, replaces=OLD)
            nursery.start_soon(claim, "moved", move)
            nursery.start_soon(claim, "waiting after", ClaimAddress(WAITING, WAITING_MAC))
            await trio.testing.wait_all_tasks_blocked()
            assert len(answers) == 3
            nursery.cancel_scope.cancel()
        assert answers["moved"] == STATIC
        assert isinstance(answers["waiting before"], PoolExhausted)
        assert isinstance(answers["waiting after"], PoolExhausted)
        assert actor.allocator.owner_of(STATIC) == NEW
        assert actor.owner_of_mac(OLD_MAC) is None
        # Held, not served, until the new MAC's record is written.
        assert offered(actor, OLD_MAC) is None
        assert offered(actor, NEW_MAC) is None
        assert actor.handle_now(ServeReservation(NEW_MAC, STATIC))
        assert offered(actor, NEW_MAC) == STATIC
        # The old MAC's release (the controller's next step) frees nothing.
        assert actor.handle_now(ReleaseOwner(OLD)) == ()
        assert actor.allocator.owner_of(STATIC) == NEW

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_replaces_moves_only_what_the_old_mac_holds() -> None:
    """Naming a previous owner never takes an address from anyone else."""
    actor = full_pool()
    taken = actor.allocator.addresses_of(OTHER)[0]
    with pytest.raises(AddressTaken):
        actor.handle_now(ClaimAddress(NEW, NEW_MAC, requested=taken, replaces=OLD))
    assert actor.allocator.owner_of(taken) == OTHER
    assert actor.allocator.owner_of(STATIC) == OLD
    assert offered(actor, OLD_MAC) == STATIC


def test_a_nic_owner_is_kubevirt_ip_helpers_text_and_knows_its_parts() -> None:
    owner = NicOwner("ns/vm", OLD_MAC)
    assert owner == f"ns/vm [{OLD_MAC}]" == OLD
    assert (owner.vm, owner.mac) == ("ns/vm", OLD_MAC)
    held: dict[str, int] = {owner: 1}
    assert held[OLD] == 1  # the same owner as its text, in the allocator's dicts
    assert vm_of(owner.owner) == "ns/vm"
    assert vm_of(OLD) is None  # plain text is not parsed
    assert vm_of(None) is None


def test_the_pool_hands_back_the_owner_the_controller_gave_it() -> None:
    """The controller reads the VM of a DECLINE's or a failed restore's owner from
    what the pool returns: that must be its own NicOwner, across a reconfigure."""
    actor = PoolActor(pool_config(paused=True), socket_factory=FakeSocketFactory())
    owner = NicOwner("ns/vm", NEW_MAC).owner
    ip = actor.handle_now(ClaimAddress(owner, NEW_MAC))
    assert vm_of(actor.owner_of_mac(NEW_MAC)) == "ns/vm"

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(actor.run)
            await actor.ask(Reconfigure(pool_config(start=5, end=40, paused=True)))
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert vm_of(actor.allocator.owner_of(ip)) == "ns/vm"
    assert vm_of(actor.owner_of_mac(NEW_MAC)) == "ns/vm"


def test_nothing_is_logged_while_the_packet_thread_is_shut_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """ARCHITECTURE.md: the lock the packet thread answers under is held only for
    CPU work; a log line written under it made every packet wait for the log's
    I/O. Every path that logs inside the book is taken here."""
    actor = PoolActor(
        pool_config(start=10, end=12, paused=True), socket_factory=FakeSocketFactory()
    )
    held_while_logging: list[str] = []

    class Witness(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if actor._lock.locked():
                held_while_logging.append(record.getMessage())

    witness = Witness()
    logging.getLogger("kvip").addHandler(witness)
    try:
        with caplog.at_level(logging.INFO, logger="kvip"):
            actor.handle_now(ClaimAddress(OLD, OLD_MAC, requested=IPv4Address("198.18.0.10")))
            actor.handle_now(  # moves with the NIC
                ClaimAddress(NEW, NEW_MAC, requested=IPv4Address("198.18.0.10"), replaces=OLD)
            )
            actor.handle_now(ServeReservation(OLD_MAC, IPv4Address("198.18.0.10")))  # no claim

            async def shrink_and_grow() -> None:
                async with trio.open_nursery() as nursery:
                    await nursery.start(actor.run)
                    restore = (RestoreReservation(NEW, NEW_MAC, IPv4Address("198.18.0.10")),)
                    small = pool_config(start=11, end=12, paused=True)
                    await actor.ask(Reconfigure(small, restore=restore))
                    await actor.ask(Reconfigure(pool_config(start=10, end=12, paused=True),
                                                restore=restore))  # fmt: skip
                    nursery.cancel_scope.cancel()

            trio.run(shrink_and_grow)
    finally:
        logging.getLogger("kvip").removeHandler(witness)
    logged = caplog.text
    assert "moves from" in logged and "no such claim" in logged and "fits the range again" in logged
    assert held_while_logging == []
