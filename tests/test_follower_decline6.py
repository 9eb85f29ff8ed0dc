"""A follower honours the DHCPv6 DECLINEs it receives, and tells the leader.

The whole Controller as a follower (it does not hold the Lease) against the
in-memory API double (tests/sim) under trio's MockClock; the leader's record
is written into the double as the leader would have.
"""

from __future__ import annotations

from ipaddress import IPv6Address
from typing import Any

import trio
import trio.testing

from kvip.actors import Controller
from kvip.k8s import IPPOOLS, VIRTUAL_MACHINES, VMNETCFGS
from kvip.serving import pool_server_duid
from protocol.dhcp6 import IANA, ClientId, DuidLL, IAAddress, Message, MessageType, ServerId, encode
from tests.lab import objects
from tests.sim.apidouble import ApiDouble, DoubleWatcher
from tests.test_metrics_controller import eventually, no_socket

NS = "default"
NETWORK = "default/net-a"
MAC = "02:00:00:00:00:01"
IP6 = IPv6Address("2001:db8:1::10")


def dual_stack_double() -> ApiDouble:
    double = ApiDouble()
    ipv6config = {"subnet": "2001:db8:1::/64",
                  "pool": {"start": "2001:db8:1::10", "end": "2001:db8:1::20"}}  # fmt: skip
    double.create(IPPOOLS, objects.ippool("pool-a", NETWORK, subnet="198.18.0.0/24",
                                          server="198.18.0.1", start="198.18.0.10",
                                          end="198.18.0.20", paused=True,
                                          ipv6config=ipv6config))  # fmt: skip
    vm = double.create(VIRTUAL_MACHINES, objects.vm("vm-1", NS, [("nic1", NETWORK, MAC)]))
    cfg = objects.vmnetcfg("vm-1", [(NETWORK, MAC, "198.18.0.10")], namespace=NS,
                           owner_uid=vm["metadata"]["uid"], managed=True)  # fmt: skip
    cfg["spec"]["networkconfig"][0]["ipv6address"] = str(IP6)
    double.create(VMNETCFGS, cfg)
    return double


def decline(ip6: IPv6Address) -> bytes:
    return encode(
        Message(
            msg_type=MessageType.DECLINE,
            transaction_id=7,
            options=(
                ClientId(DuidLL(1, bytes.fromhex(MAC.replace(":", "")))),
                ServerId(pool_server_duid("pool-a")),
                IANA(iaid=1, options=(IAAddress(address=ip6),)),
            ),
        )
    )


def test_a_follower_keeps_a_dhcpv6_decline_and_reports_it_to_the_leader() -> None:
    """Before the fix the follower's next follow of the VM's records cleared the
    decline at once (its declined set held IPv4 addresses only), and the
    heartbeat never carried it."""

    async def main() -> None:
        double = dual_stack_double()
        controller = Controller(double, socket_factory=no_socket, workers=2,
                                watcher_factory=DoubleWatcher, leading=False)  # fmt: skip
        async with trio.open_nursery() as nursery:
            await nursery.start(controller.run)
            pool: Any = None

            def served() -> bool:
                nonlocal pool
                handle = controller.pools.get("pool-a")
                pool = handle.actor if handle is not None else None
                book6 = pool.book.v6 if pool is not None else None
                return book6 is not None and bool(book6.responder.reservations)

            await eventually(served, "the follower serves the recorded IPv6 address")
            responder6 = pool.book.v6.responder
            with pool._lock:
                reply = responder6.handle(decline(IP6), 0.0, ("fe80::1", 546, 0, 1), None)
            assert reply is not None
            pool._post_notices()
            await trio.sleep(5)
            assert IP6 in responder6.declined
            assert ("pool-a", MAC, str(IP6)) in controller.pending_declines()
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
