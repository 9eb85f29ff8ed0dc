"""Each replica answers as its own address on the pool's interface (issue 12):
found in the replica's socket namespace, never handed out to a VM."""

from __future__ import annotations

import os
import shutil
from ipaddress import IPv4Address, IPv4Network

import pytest
import trio

from kvip.actors import (
    ClaimAddress,
    PoolActor,
    RestoreReservation,
    ServeRecorded,
    socket_factory_in,
)
from kvip.actors._pool_book import REPLICA_OWNER
from kvip.ipam import Owner
from kvip.serving import mac_bytes, server_identity
from tests.lab.netlab import netlab, run_in
from tests.lab.pool_harness import SERVER_IP, pool_config

SUBNET = IPv4Network("198.18.0.0/24")


def test_the_server_identity_is_the_interface_address_in_the_subnet() -> None:
    found = IPv4Address("198.18.0.7")
    assert server_identity(SERVER_IP, SUBNET, found) == found
    assert server_identity(SERVER_IP, SUBNET, None) == SERVER_IP
    assert server_identity(SERVER_IP, SUBNET, IPv4Address("10.0.0.7")) == SERVER_IP
    assert server_identity(SERVER_IP, SUBNET, IPv4Address("198.18.0.255")) == SERVER_IP


def _served(address: str) -> PoolActor:
    """A pool (range .10-.40 of 198.18.0.0/24) started in a namespace whose eth1
    holds `address`; returns the actor after its socket opened."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 for a network namespace")
    with netlab("kvra", server_address=address) as lab:
        actor = PoolActor(
            pool_config(start=10, end=40), socket_factory=socket_factory_in(lab.server)
        )

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                await nursery.start(actor.run)
                nursery.cancel_scope.cancel()

        trio.run(main)
    return actor


@pytest.mark.netns
def test_a_replica_answers_as_its_own_address() -> None:
    actor = _served("198.18.0.5/24")
    assert actor.interface_address == IPv4Address("198.18.0.5")
    assert actor.responder.options.server_ip == IPv4Address("198.18.0.5")
    assert actor.address_problems == {}
    assert actor.allocator.owner_of(IPv4Address("198.18.0.5")) is None


@pytest.mark.netns
def test_a_replica_address_inside_the_range_is_never_handed_out_and_is_reported() -> None:
    actor = _served("198.18.0.10/24")
    ip = IPv4Address("198.18.0.10")
    assert actor.responder.options.server_ip == ip
    assert actor.allocator.owner_of(ip) == REPLICA_OWNER
    assert "inside the range" in actor.address_problems[ip]
    # The lowest free address is .10, but it is this replica's: a VM gets .11.
    owner = Owner("ns/vm [52:54:00:00:50:01]")
    assert actor.handle_now(ClaimAddress(owner, "52:54:00:00:50:01")) == IPv4Address("198.18.0.11")


def test_a_follower_serves_exactly_the_records_of_a_vm() -> None:
    """ServeRecorded: what the VM holds beyond its records goes, records are held
    and served, and a record whose address is another VM's is reported back."""
    actor = PoolActor(pool_config(start=10, end=40, paused=True))
    mine = Owner("ns/vm [52:54:00:00:50:01]")
    stale = Owner("ns/vm [52:54:00:00:50:02]")
    other = Owner("ns/other [52:54:00:00:50:03]")
    actor.handle_now(ClaimAddress(stale, "52:54:00:00:50:02"))  # .10, never recorded
    actor.handle_now(ClaimAddress(other, "52:54:00:00:50:03", requested=IPv4Address("198.18.0.20")))
    records = (
        RestoreReservation(mine, "52:54:00:00:50:01", IPv4Address("198.18.0.15")),
        RestoreReservation(Owner("ns/vm [52:54:00:00:50:04]"), "52:54:00:00:50:04",
                           IPv4Address("198.18.0.20")),
    )  # fmt: skip
    released, problems = actor.handle_now(ServeRecorded("ns/vm", records))
    assert released == (IPv4Address("198.18.0.10"),)
    assert [record.mac for record, _ in problems] == ["52:54:00:00:50:04"]
    assert actor.allocator.owner_of(IPv4Address("198.18.0.15")) == mine
    assert mac_bytes("52:54:00:00:50:01") in actor.responder.reservations
    assert actor.allocator.owner_of(IPv4Address("198.18.0.20")) == other
    # Again: nothing changes.
    assert actor.handle_now(ServeRecorded("ns/vm", records[:1])) == ((), ())


@pytest.mark.netns
def test_an_interface_without_an_address_in_the_subnet_is_not_served_until_it_has_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 14: no address to answer from makes the pool not serving, with the
    reason (and an Event through on_warning), instead of answering from a wrong
    address; once the interface has one, the pool serves."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 for a network namespace")
    monkeypatch.setattr("kvip.actors._pool_wire.ADDRESS_POLL", 0.1)
    warnings: list[tuple[str, str]] = []
    with netlab("kvna", server_address="198.19.0.5/24") as lab:  # outside the pool's subnet
        actor = PoolActor(
            pool_config(start=10, end=40),
            socket_factory=socket_factory_in(lab.server),
            on_warning=lambda reason, message: warnings.append((reason, message)),
        )

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                await nursery.start(actor.run)
                await trio.sleep(0.5)
                assert not actor.serving
                assert actor.no_address is not None and "198.19.0.5" in actor.no_address
                # (The interface's primary address is the one that counts.)
                run_in(lab.server, ["ip", "addr", "flush", "dev", "eth1"])
                lab.add_address(lab.server, "eth1", "198.18.0.6/24")
                with trio.fail_after(10):
                    while not actor.serving:
                        await trio.sleep(0.05)
                nursery.cancel_scope.cancel()

        trio.run(main)
    assert [reason for reason, _ in warnings] == ["NoAddress"]
    assert actor.no_address is None
    assert actor.responder.options.server_ip == IPv4Address("198.18.0.6")
