"""Bugs the server fuzzers found (tests/test_server_fuzz.py), each pinned."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from fuzz import fuzz_server
from kvip.actors import ClaimAddress, PoolActor, RestoreReservation, ServeReservation
from kvip.ipam import AddressTaken, Owner
from kvip.serving import mac_bytes
from protocol import Message, MessageType, Op, OptionCode, Options, decode, encode
from tests.lab.pool_harness import FakeSocketFactory, pool_config

MACS = ["52:54:00:00:00:01", "52:54:00:00:00:02"]


def discover(mac: str) -> bytes:
    options = Options({OptionCode.MESSAGE_TYPE: MessageType.DISCOVER})
    return encode(Message(op=Op.BOOTREQUEST, xid=1, chaddr=mac_bytes(mac), options=options))


def test_discover_for_a_declined_address_is_counted_not_warned_per_packet(
    caplog: pytest.LogCaptureFixture,
) -> None:
    responder = fuzz_server.new_responder()
    assert fuzz_server.RESERVED["52:54:00:00:00:03"][0] == fuzz_server.DECLINED
    with caplog.at_level("INFO"):
        for _ in range(50):
            assert responder.handle(discover("52:54:00:00:00:03")) is None
    assert responder.counters.ignored == 50
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_a_failed_claim_keeps_the_address_and_the_service_it_had() -> None:
    actor = PoolActor(pool_config(), socket_factory=FakeSocketFactory())
    mine, theirs = Owner(f"ns/vm0 [{MACS[0]}]"), Owner(f"ns/vm1 [{MACS[1]}]")
    ip = actor.handle_now(ClaimAddress(mine, MACS[0]))
    assert actor.handle_now(ServeReservation(MACS[0], ip))
    taken = actor.handle_now(ClaimAddress(theirs, MACS[1]))
    with pytest.raises(AddressTaken):
        actor.handle_now(ClaimAddress(mine, MACS[0], requested=taken))
    assert actor.allocator.addresses_of(mine) == (ip,)
    assert actor.owner_of_mac(MACS[0]) == mine
    reply = actor.responder.handle(discover(MACS[0]))
    assert reply is not None and reply.message_type == MessageType.OFFER
    assert decode(reply.payload).yiaddr == ip


def test_a_nic_restored_with_two_addresses_keeps_one_once_claimed() -> None:
    """A hand-edited vmnetcfg (or a write race) can restore two addresses for one
    NIC; the controller's claim then keeps the one it asks for and frees the other."""
    actor = PoolActor(pool_config(), socket_factory=FakeSocketFactory())
    owner = Owner(f"ns/vm0 [{MACS[0]}]")
    first, second = IPv4Address("198.18.0.20"), IPv4Address("198.18.0.30")
    actor.handle_now(RestoreReservation(owner, MACS[0], first, "vm0"))
    actor.handle_now(RestoreReservation(owner, MACS[0], second, "vm0"))
    assert actor.allocator.addresses_of(owner) == (first, second)
    assert actor.handle_now(ClaimAddress(owner, MACS[0], requested=first)) == first
    assert actor.allocator.addresses_of(owner) == (first,)
    assert actor.allocator.owner_of(second) is None
    other = Owner(f"ns/vm1 [{MACS[1]}]")
    assert actor.handle_now(ClaimAddress(other, MACS[1], requested=second)) == second
