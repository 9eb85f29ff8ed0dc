"""kvip's pool actors on the wire: relays, two pools, live reconfiguration, garbage.

Like test_dhcp_real_clients.py: a network lab per test, PoolActors serving it,
assertions on what real clients, perfdhcp or hand-made packets got back.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from ipaddress import IPv4Address

import pytest

from kvip.actors import Reconfigure
from kvip.serving import mac_bytes, parse_ippool
from protocol import (
    DecodeError,
    Message,
    MessageType,
    Op,
    OptionCode,
    Options,
    OptionValue,
    RelayAgentInformation,
    decode,
    encode,
)
from tests.lab.dhcpchecks import (
    SERVER,
    counts,
    mac,
    need,
    no_lease,
    open_lab,
    plug,
)
from tests.lab.dhcpclients import run_udhcpc
from tests.lab.dhcpsend import broadcast_raw, relay_exchange
from tests.lab.netlab import Lab
from tests.lab.objects import ippool
from tests.lab.perfdhcp import run_perfdhcp
from tests.lab.poolrig import PoolSetup, Reserved, run_parallel, serve_pools

pytestmark = pytest.mark.netns


@pytest.fixture
def lab() -> Iterator[Lab]:
    with open_lab() as the_lab:
        yield the_lab


# --- relays ------------------------------------------------------------------------------


def test_perfdhcp_as_a_relay_gets_every_reply_at_giaddr(lab: Lab) -> None:
    need("perfdhcp")
    nics = tuple(Reserved(mac(0x300 + i), f"198.18.1.{i + 1}", f"vm-p{i}") for i in range(20))
    relay = plug(lab, mac(0x3FF))
    lab.add_address(relay.netns, relay.ifname, "198.18.200.1/16")
    pool = ippool("relay", options="full", end="198.18.1.250")
    with serve_pools(lab, PoolSetup(pool, nics)) as rig:
        report = run_perfdhcp(
            relay, local="198.18.200.1", server=str(SERVER), macs=[n.mac for n in nics]
        )
        sent = rig.taps["relay"].sent_messages()
    assert report.returncode == 0, report.output
    for exchange in (report.discover, report.request):
        assert (exchange.sent, exchange.received, exchange.drops) == (20, 20, 0), report.output
    reserved = {mac_bytes(n.mac): IPv4Address(n.ip) for n in nics}
    assert len(sent) == 40
    for datagram, reply in sent:
        # RFC 2131 4.1: a relayed request's reply goes to giaddr, port 67.
        assert (datagram.address, datagram.port) == ("198.18.200.1", 67)
        assert reply.giaddr == IPv4Address("198.18.200.1")
        assert reply.yiaddr == reserved[reply.chaddr]


def test_relayed_requests_are_answered_at_giaddr_with_option_82_echoed(lab: Lab) -> None:
    nic = Reserved(mac(1), "198.18.0.90", "vm-82")
    relay = plug(lab, mac(0x3FF))
    giaddr = IPv4Address("198.18.201.1")
    lab.add_address(relay.netns, relay.ifname, f"{giaddr}/16")
    info = RelayAgentInformation(((1, b"ge-0/0/7.42"), (2, b"\x00\x06relay1")))

    def relayed(xid: int, kind: MessageType, requested: IPv4Address | None = None) -> Message:
        options: dict[int, OptionValue] = {OptionCode.MESSAGE_TYPE: kind}
        if requested is not None:
            options[OptionCode.REQUESTED_IP] = requested
        options[OptionCode.RELAY_AGENT_INFO] = info
        return Message(
            op=Op.BOOTREQUEST,
            xid=xid,
            chaddr=mac_bytes(nic.mac),
            hops=1,
            giaddr=giaddr,
            options=Options(options),
        )

    discover = relayed(0x0BADCAFE, MessageType.DISCOVER)
    # INIT-REBOOT for an address that is not this client's.
    reboot = relayed(0x0BADF00D, MessageType.REQUEST, IPv4Address("198.18.0.91"))
    with serve_pools(lab, PoolSetup(ippool("opt82", options="full"), (nic,))):
        offer = relay_exchange(relay, discover, server=str(SERVER))
        nak = relay_exchange(relay, reboot, server=str(SERVER))
    assert offer is not None
    assert offer.message_type == MessageType.OFFER
    assert offer.yiaddr == IPv4Address(nic.ip)
    assert (offer.giaddr, offer.chaddr, offer.hops) == (giaddr, discover.chaddr, 0)
    # RFC 3046 2.2: echoed unchanged, as the last option.
    assert offer.options[OptionCode.RELAY_AGENT_INFO] == info
    assert list(offer.options)[-1] == OptionCode.RELAY_AGENT_INFO
    # RFC 2131 4.3.2: a relayed NAK goes to giaddr with the broadcast bit set, so
    # that the relay broadcasts it to a client that may have no usable address.
    assert nak is not None
    assert nak.message_type == MessageType.NAK
    assert nak.broadcast
    assert nak.giaddr == giaddr
    assert nak.options[OptionCode.RELAY_AGENT_INFO] == info


# --- two pools -------------------------------------------------------------------------


def test_two_pools_on_two_wires_never_hear_each_other(lab: Lab) -> None:
    need("udhcpc")
    lab.add_server_port("eth2", "198.19.0.1/16")
    a_nic = Reserved(mac(1), "198.18.0.100", "vm-a")
    b_nic = Reserved(mac(2), "198.19.0.100", "vm-b")
    b_only = Reserved(mac(3), "198.19.0.101", "vm-x")
    pool_a = ippool("pool-a", options="full")
    pool_b = ippool(
        "pool-b",
        options="bare",
        interface="eth2",
        server="198.19.0.1",
        subnet="198.19.0.0/16",
        start="198.19.0.10",
        end="198.19.0.250",
        router="198.19.0.254",
    )
    on_a = plug(lab, a_nic.mac, port="eth1")
    misplaced = plug(lab, b_only.mac, port="eth1")  # reserved in B, plugged into A
    on_b = plug(lab, b_nic.mac, port="eth2")
    setups = (PoolSetup(pool_a, (a_nic,)), PoolSetup(pool_b, (b_nic, b_only)))
    with serve_pools(lab, *setups) as rig:
        a_lease, silent = run_parallel(
            lambda: run_udhcpc(on_a, timeout=10),
            lambda: no_lease(run_udhcpc, misplaced),
        )
        assert a_lease is not None
        b_heard = rig.counters("pool-b")["received"]
        a_before = rig.counters("pool-a")
        b_lease = run_udhcpc(on_b, timeout=10)
        a_after = rig.counters("pool-a")
        b_after = rig.counters("pool-b")
    assert a_lease.ip == IPv4Address(a_nic.ip)
    assert a_lease.server_id == SERVER
    assert silent is None
    assert b_heard == {}
    assert a_before["unknown_mac"] >= 1  # the misplaced client was heard by A only
    assert b_lease.ip == IPv4Address(b_nic.ip)
    assert b_lease.server_id == IPv4Address("198.19.0.1")
    assert b_lease.router == (IPv4Address("198.19.0.254"),)
    assert a_after["received"] == a_before["received"]
    assert b_after["unknown_mac"] == 0
    b_macs = {m.chaddr for _, m in rig.taps["pool-b"].received_messages()}
    assert b_macs == {mac_bytes(b_nic.mac)}


def test_moving_or_pausing_a_pool_takes_effect_at_once(lab: Lab) -> None:
    need("udhcpc")
    # The new wire has an address in the pool's subnet too: kvip answers only from one.
    lab.add_server_port("eth2", "198.18.0.2/16")
    nic = Reserved(mac(1), "198.18.0.120", "vm-mv")
    ip = IPv4Address(nic.ip)
    # The same VM NIC on two wires: only the one the pool binds to may be answered.
    on_eth1 = plug(lab, nic.mac, port="eth1")
    on_eth2 = plug(lab, nic.mac, port="eth2")
    body = ippool("mover", options="full")
    moved = copy.deepcopy(body)
    moved["spec"]["bindinterface"] = "eth2"
    paused = copy.deepcopy(moved)
    paused["spec"]["paused"] = True
    with serve_pools(lab, PoolSetup(body, (nic,))) as rig:
        first = run_udhcpc(on_eth1, timeout=10)
        rig.ask("mover", Reconfigure(parse_ippool(moved)))
        old_wire, new_wire = run_parallel(
            lambda: no_lease(run_udhcpc, on_eth1),
            lambda: run_udhcpc(on_eth2, timeout=10),
        )
        rig.ask("mover", Reconfigure(parse_ippool(paused)))
        serving_while_paused = rig.state("mover").serving
        run_parallel(lambda: no_lease(run_udhcpc, on_eth1), lambda: no_lease(run_udhcpc, on_eth2))
        rig.ask("mover", Reconfigure(parse_ippool(moved)))
        resumed = run_udhcpc(on_eth2, timeout=10)
        state = rig.state("mover")
    assert first.ip == ip
    assert old_wire is None
    assert new_wire is not None and new_wire.ip == ip
    assert not serving_while_paused
    assert resumed.ip == ip
    assert state.serving
    # Moving and pausing keep the reservation.
    assert state.allocations == ((ip, nic.owner),)


# --- garbage on the wire ---------------------------------------------------------------


def test_malformed_packets_are_counted_and_serving_goes_on(lab: Lab) -> None:
    need("udhcpc")
    nic = Reserved(mac(1), "198.18.0.110", "vm-m")
    client = plug(lab, nic.mac)
    noise = plug(lab, mac(0x400))
    rng = random.Random(2131)
    valid = encode(
        Message(
            op=Op.BOOTREQUEST,
            xid=1,
            chaddr=mac_bytes(nic.mac),
            options=Options({OptionCode.MESSAGE_TYPE: MessageType.DISCOVER}),
        )
    )
    bad_cookie = bytearray(valid)
    bad_cookie[236:240] = b"\x63\x82\x53\x00"
    overrun = bytearray(valid)
    overrun[240:243] = bytes([OptionCode.MESSAGE_TYPE, 200, 1])  # length beyond the packet
    payloads = [
        b"",
        b"\x01",
        rng.randbytes(100),
        rng.randbytes(300),
        rng.randbytes(1400),
        valid[:200],
        bytes(bad_cookie),
        bytes(overrun)[:300],
    ]
    for payload in payloads:  # the test's premise: each one is malformed
        with pytest.raises(DecodeError):
            decode(payload)
    with serve_pools(lab, PoolSetup(ippool("noise", options="full"), (nic,))) as rig:
        assert broadcast_raw(noise, payloads) == len(payloads)
        state = rig.wait_until("noise", lambda s: s.counters["malformed"] == len(payloads))
        assert counts(state)["sent"] == {}
        lease = run_udhcpc(client, timeout=10)
        state = rig.state("noise")
    assert lease.ip == IPv4Address(nic.ip)
    assert state.counters["malformed"] == len(payloads)
    assert state.serving
