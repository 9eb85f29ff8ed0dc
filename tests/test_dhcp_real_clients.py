"""kvip's pool actor against real DHCP clients, on private wires.

Each test builds a network lab (namespaces deleted afterwards, also on
failure), runs one or more PoolActors whose sockets live in the lab's server
namespace, and asserts on what real clients (dhclient, udhcpc, dhcpcd,
systemd-networkd, perfdhcp) reported they got, and on the pool's counters.
"""

from __future__ import annotations

import copy
import itertools
import os
import random
import shutil
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import netlab
import pytest
from dhcpclients import (
    NETWORKD,
    Lease,
    NoLeaseError,
    Route,
    dhclient_lease_file,
    run_dhclient,
    run_dhcpcd,
    run_networkd,
    run_udhcpc,
)
from dhcptools import (
    broadcast_raw,
    dhclient_session,
    relay_exchange,
    run_perfdhcp,
    udhcpc_session,
    wait_for_wire,
)
from netlab import Client, Lab, run_in
from poolrig import PoolRig, PoolSetup, Reserved, ippool, run_parallel, serve_pools

from kvip.actors import ClearDecline, PoolState, Reconfigure
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

pytestmark = pytest.mark.netns

PREFIX = "kvd"
SERVER = IPv4Address("198.18.0.1")
MASK = IPv4Address("255.255.0.0")
ROUTER = IPv4Address("198.18.0.254")
DNS = (IPv4Address("198.18.0.53"), IPv4Address("198.18.0.54"))
#: Short client timeouts: a client that gets no answer gives up fast.
SILENT = 5


def need(*tools: str) -> None:
    if not netlab.is_root():
        pytest.skip("needs root for network namespaces")
    for tool in tools:
        if shutil.which(tool) is None and not os.path.exists(tool):
            pytest.skip(f"{tool} is not installed (scripts/install-system-deps.sh)")


@pytest.fixture
def lab() -> Iterator[Lab]:
    need("ip")
    with netlab.netlab(PREFIX) as the_lab:
        yield the_lab


@pytest.fixture
def dhclient(tmp_path: Path) -> Callable[..., Lease]:
    """run_dhclient with its files under tmp_path: the dhclient daemon the runner
    stops may still write there as the runner returns (pytest removes tmp_path later)."""
    calls = itertools.count()

    def run(client: Client, **kwargs: Any) -> Lease:
        return run_dhclient(client, workdir=tmp_path / f"dhclient-{next(calls)}", **kwargs)

    return run


def plug(lab: Lab, hwaddr: str, *, port: str | None = None) -> Client:
    """A client namespace whose wire already forwards: some tests send one packet
    and count it, and a client's first DISCOVER counts too."""
    client = lab.add_client(hwaddr, port=port)
    wait_for_wire(lab, client)
    return client


def full_pool(name: str = "full", **overrides: Any) -> dict[str, Any]:
    """A pool that sets every option kvip can send."""
    config: dict[str, Any] = {
        "router": str(ROUTER),
        "dns": [str(a) for a in DNS],
        "domainname": "lab.example",
        "domainsearch": ["lab.example", "example"],
        "leasetime": 600,
        "mtu": 1450,
        "routes": [{"destination": "10.0.0.0/8", "gateway": "198.18.0.253"}],
    }
    config.update(overrides)
    return ippool(name, **config)


def counts(state: PoolState) -> dict[str, Any]:
    """The pool's counters (nested dicts of ints), typed for indexing."""
    return state.counters


def mac(n: int) -> str:
    return f"52:54:00:00:{n // 256:02x}:{n % 256:02x}"


def assert_full_lease(lease: Lease, ip: str) -> None:
    assert lease.ip == IPv4Address(ip), lease
    assert lease.mask == MASK, lease
    assert lease.router == (ROUTER,), lease
    assert lease.dns == DNS, lease
    assert lease.domain == "lab.example", lease
    assert lease.search == ("lab.example", "example"), lease
    assert lease.server_id == SERVER, lease
    assert (lease.lease_time, lease.t1, lease.t2) == (600, 300, 525), lease
    assert lease.mtu == 1450, lease
    # RFC 3442: clients ignore option 3 when 121 is present, so 121 carries the default route.
    assert set(lease.routes) == {
        Route(IPv4Network("10.0.0.0/8"), IPv4Address("198.18.0.253")),
        Route(IPv4Network("0.0.0.0/0"), ROUTER),
    }, lease


# --- every client, every option ------------------------------------------------------


def test_every_client_gets_exactly_its_reservation_and_every_pool_option(
    lab: Lab, dhclient: Callable[..., Lease]
) -> None:
    need("udhcpc", "dhclient", "dhcpcd", NETWORKD)
    runners = {
        "udhcpc": run_udhcpc,
        "dhclient": dhclient,
        "dhcpcd": run_dhcpcd,
        "systemd-networkd": run_networkd,
    }
    nics = {
        name: Reserved(mac(i + 1), f"198.18.0.{11 + i}", f"vm-{i}")
        for i, name in enumerate(runners)
    }
    clients = {name: plug(lab, nic.mac) for name, nic in nics.items()}
    with serve_pools(lab, PoolSetup(full_pool(), tuple(nics.values()))) as rig:
        leases = run_parallel(
            *(
                lambda r=runner, c=clients[name]: r(c, timeout=20)
                for name, runner in runners.items()
            )
        )
        counters = rig.counters("full")
    for name, lease in zip(runners, leases, strict=True):
        assert lease.client == name
        assert_full_lease(lease, nics[name].ip)
    # udhcpc asks for the host name by default: the VM's name comes back (option 12).
    assert leases[0].raw.get("hostname") == nics["udhcpc"].vm
    assert counters["received"]["DISCOVER"] >= 4
    assert counters["sent"]["ACK"] >= 4
    assert (counters["naks"], counters["unknown_mac"], counters["malformed"]) == (0, 0, 0)


def test_option_change_applies_to_the_very_next_reply(
    lab: Lab, dhclient: Callable[..., Lease]
) -> None:
    need("udhcpc", "dhclient")
    nic = Reserved(mac(1), "198.18.0.20", "vm-a")
    client = plug(lab, nic.mac)
    plain = ippool("plain", router=str(ROUTER), dns=["198.18.0.53"], leasetime=900)
    with serve_pools(lab, PoolSetup(plain, (nic,))) as rig:
        before = run_udhcpc(client, timeout=10)
        changed = full_pool("plain", dns=["198.18.0.99"], mtu=1400)
        assert rig.ask("plain", Reconfigure(parse_ippool(changed))) == ()
        after = run_udhcpc(client, timeout=10)
        after_dhclient = dhclient(client, timeout=10)
    # Without mtu or routes in the pool, neither option is sent.
    assert (before.ip, before.dns, before.mtu, before.routes) == (
        IPv4Address(nic.ip),
        (IPv4Address("198.18.0.53"),),
        None,
        (),
    )
    assert (before.lease_time, before.t1, before.t2) == (900, 450, 787)
    for lease in (after, after_dhclient):
        assert lease.ip == IPv4Address(nic.ip)
        assert lease.dns == (IPv4Address("198.18.0.99"),)
        assert lease.mtu == 1400
        assert lease.lease_time == 600
        assert Route(IPv4Network("0.0.0.0/0"), ROUTER) in lease.routes


# --- renew, rebind, init-reboot ----------------------------------------------------------


def test_renew_is_unicast_rebind_is_broadcast_and_both_keep_the_address(lab: Lab) -> None:
    need("udhcpc")
    nic = Reserved(mac(1), "198.18.0.30", "vm-r")
    ip = IPv4Address(nic.ip)
    client = plug(lab, nic.mac)
    with (
        serve_pools(lab, PoolSetup(full_pool("renew"), (nic,))) as rig,
        udhcpc_session(lab, client) as session,
    ):
        bound, lease = session.wait_for(["bound"])
        assert lease.ip == ip
        # RENEWING (RFC 2131 4.4.5): SIGUSR1 makes udhcpc unicast a REQUEST with ciaddr.
        session.renew()
        renewed, lease = session.wait_for(["renew"], after=bound + 1)
        assert lease.ip == ip
        renewing = requests_with_ciaddr(rig, "renew", ip)
        # (udhcpc sends from a short-lived socket bound to ciaddr:68; an ACK this fast
        # sometimes lands on it just before it closes, and udhcpc then rebinds. So
        # what follows the unicast REQUEST is not pinned here.)
        assert renewing[0] == str(SERVER)
        # REBINDING: the server's MAC in the client's ARP table is made bogus, so the
        # unicast REQUEST reaches nobody; udhcpc then broadcasts it, still with ciaddr.
        bogus = ["lladdr", "02:00:00:00:00:01", "dev", client.ifname, "nud", "permanent"]
        run_in(client.netns, ["ip", "neigh", "replace", str(SERVER), *bogus])
        session.renew()
        _, lease = session.wait_for(["renew"], after=renewed + 1)
        assert lease.ip == ip
        rebinding = requests_with_ciaddr(rig, "renew", ip)[len(renewing) :]
        assert rebinding and set(rebinding) == {"255.255.255.255"}
        acks = [
            (d.address, d.port)
            for d, m in rig.taps["renew"].sent_messages()
            if m.message_type == MessageType.ACK and m.ciaddr == ip
        ]
        # RFC 2131 4.1: with ciaddr set, every ACK goes to ciaddr:68, broadcast or not.
        assert len(acks) == len(renewing) + len(rebinding)
        assert set(acks) == {(nic.ip, 68)}
        assert rig.counters("renew")["naks"] == 0


def test_dhclient_renews_by_itself_at_t1_and_keeps_the_address(lab: Lab) -> None:
    need("dhclient")
    nic = Reserved(mac(1), "198.18.0.31", "vm-t1")
    ip = IPv4Address(nic.ip)
    client = plug(lab, nic.mac)
    # A 4 s lease: T1 (option 58) is 2 s, and dhclient, unlike udhcpc, honours it.
    with (
        serve_pools(lab, PoolSetup(full_pool("t1", leasetime=4), (nic,))) as rig,
        dhclient_session(lab, client) as session,
    ):
        bound, lease = session.wait_for(["BOUND"])
        assert (lease.ip, lease.lease_time, lease.t1, lease.t2) == (ip, 4, 2, 3)
        _, renewed = session.wait_for(["RENEW"], after=bound + 1, timeout=8)
        assert renewed.ip == ip
        assert renewed.dns == DNS
        assert requests_with_ciaddr(rig, "t1", ip)[0] == str(SERVER)  # RENEWING is unicast
        assert rig.counters("t1")["naks"] == 0


def requests_with_ciaddr(rig: PoolRig, pool: str, ip: IPv4Address) -> list[str]:
    """The IP destinations of the REQUESTs with ciaddr ``ip`` the pool received."""
    return [
        d.address
        for d, m in rig.taps[pool].received_messages()
        if m.message_type == MessageType.REQUEST and m.ciaddr == ip
    ]


def test_init_reboot_for_a_wrong_address_is_naked_then_the_reservation_is_bound(
    lab: Lab, dhclient: Callable[..., Lease]
) -> None:
    need("dhclient")
    nic = Reserved(mac(1), "198.18.0.40", "vm-n")
    client = plug(lab, nic.mac)
    seeded = dhclient_lease_file(client, ip="198.18.0.77", server_id=str(SERVER))
    with serve_pools(lab, PoolSetup(full_pool("reboot"), (nic,))) as rig:
        lease = dhclient(client, timeout=15, lease_file=seeded)
        counters = rig.counters("reboot")
        naks = [
            (d.address, m)
            for d, m in rig.taps["reboot"].sent_messages()
            if m.message_type == MessageType.NAK
        ]
    assert_full_lease(lease, nic.ip)
    assert counters["naks"] == 1
    address, nak = naks[0]
    # RFC 2131 4.3.2/4.1: a NAK to INIT-REBOOT is broadcast and carries no address.
    assert address == "255.255.255.255"
    assert (nak.yiaddr, nak.ciaddr) == (IPv4Address(0), IPv4Address(0))
    assert OptionCode.LEASE_TIME not in nak.options


# --- inform, release, unknown clients ----------------------------------------------------


def test_inform_gets_configuration_without_a_lease_time(lab: Lab) -> None:
    need("dhcpcd")
    nic = Reserved(mac(1), "198.18.0.50", "vm-i")
    client = plug(lab, nic.mac)
    # INFORM is for an address configured by other means (RFC 2131 3.4); dhcpcd
    # sends it only for an address already on the interface.
    lab.add_address(client.netns, client.ifname, f"{nic.ip}/16")
    with serve_pools(lab, PoolSetup(full_pool("inform"), (nic,))) as rig:
        lease = run_dhcpcd(client, timeout=15, inform=f"{nic.ip}/16")
        counters = rig.counters("inform")
        acks = [m for _, m in rig.taps["inform"].sent_messages()]
    assert lease.ip == IPv4Address(nic.ip)
    assert (lease.dns, lease.domain, lease.mtu) == (DNS, "lab.example", 1450)
    assert (lease.lease_time, lease.t1, lease.t2) == (None, None, None)
    assert counters["received"].get("INFORM", 0) >= 1
    assert counters["received"].get("DISCOVER", 0) == 0
    # RFC 2131 4.3.5: no yiaddr, no lease time; the reply goes to ciaddr.
    assert acks and all(m.message_type == MessageType.ACK for m in acks)
    assert all(m.yiaddr == IPv4Address(0) and m.ciaddr == IPv4Address(nic.ip) for m in acks)
    assert all(OptionCode.LEASE_TIME not in m.options for m in acks)


def test_release_gets_no_reply_and_the_reservation_stays(
    lab: Lab, dhclient: Callable[..., Lease]
) -> None:
    need("udhcpc", "dhclient")
    u_nic = Reserved(mac(1), "198.18.0.60", "vm-u")
    d_nic = Reserved(mac(2), "198.18.0.61", "vm-d")
    u_client, d_client = plug(lab, u_nic.mac), plug(lab, d_nic.mac)
    with serve_pools(lab, PoolSetup(full_pool("release"), (u_nic, d_nic))) as rig:
        with udhcpc_session(lab, u_client) as session:
            bound, first = session.wait_for(["bound"])
            session.release()
            state = rig.wait_until("release", lambda s: s.counters["releases"] == 1)
            sent_before_release = len(rig.taps["release"].sent)
            released = [m for _, m in rig.taps["release"].received_messages()][-1]
            # A fresh DISCOVER after the release gets the same address.
            session.renew()
            _, again = session.wait_for(["bound"], after=bound + 1)
        # dhclient -r releases too (it needs its address configured to do so).
        d_lease = dhclient(d_client, timeout=10, configure=True, release=True)
        state = rig.wait_until("release", lambda s: s.counters["releases"] == 2)
    assert first.ip == again.ip == IPv4Address(u_nic.ip)
    assert d_lease.ip == IPv4Address(d_nic.ip)
    assert released.message_type == MessageType.RELEASE
    assert released.ciaddr == IPv4Address(u_nic.ip)
    assert sent_before_release == 2  # OFFER, ACK: the RELEASE got no reply
    assert counts(state)["received"]["RELEASE"] == 2
    assert counts(state)["sent"] == {"OFFER": 3, "ACK": 3}
    # The reservations stay: the addresses belong to their VMs, not to the leases.
    assert (IPv4Address(u_nic.ip), u_nic.owner) in state.allocations
    assert (IPv4Address(d_nic.ip), d_nic.owner) in state.allocations


def test_unknown_mac_gets_no_answer(lab: Lab, dhclient: Callable[..., Lease]) -> None:
    need("udhcpc", "dhclient")
    known = Reserved(mac(1), "198.18.0.70", "vm-k")
    strangers = [plug(lab, mac(0x100 + i)) for i in range(2)]
    with serve_pools(lab, PoolSetup(full_pool("known"), (known,))) as rig:
        outcomes = run_parallel(
            lambda: no_lease(run_udhcpc, strangers[0]),
            lambda: no_lease(dhclient, strangers[1]),
        )
        counters = rig.counters("known")
    assert outcomes == [None, None]
    assert counters["unknown_mac"] >= 2
    assert counters["sent"] == {}


def no_lease(runner: Callable[..., Lease], client: Client) -> None:
    """Run a client that must get nothing; it gives up after SILENT seconds."""
    with pytest.raises(NoLeaseError):
        runner(client, timeout=SILENT)


# --- decline ----------------------------------------------------------------------------


def test_declined_address_is_reported_and_not_offered_until_cleared(lab: Lab) -> None:
    need("udhcpc")
    nic = Reserved(mac(1), "198.18.0.80", "vm-d")
    victim = plug(lab, nic.mac)
    squatter = plug(lab, mac(0x200))
    # Someone else already uses the reserved address on the wire.
    lab.add_address(squatter.netns, squatter.ifname, f"{nic.ip}/16")
    ip = IPv4Address(nic.ip)
    with serve_pools(lab, PoolSetup(full_pool("decline"), (nic,))) as rig:
        # udhcpc -a ARP-probes the ACKed address, sees the squatter answer, DECLINEs.
        with pytest.raises(NoLeaseError):
            run_udhcpc(victim, timeout=8, arp_check=True)
        state = rig.wait_until("decline", lambda s: s.counters["declines"] == 1)
        assert state.declined == (ip,)
        offers = counts(state)["sent"].get("OFFER", 0)
        # While declined, the pool offers it to nobody (it has no other address to give).
        with pytest.raises(NoLeaseError):
            run_udhcpc(victim, timeout=SILENT)
        assert rig.counters("decline")["sent"].get("OFFER", 0) == offers
        # The operator removes the squatter and clears the decline: served again.
        lab.flush_addresses(squatter)
        assert rig.ask("decline", ClearDecline(ip)) is True
        lease = run_udhcpc(victim, timeout=10, arp_check=True)
        state = rig.state("decline")
    assert lease.ip == ip
    assert state.declined == ()
    assert state.counters["declines"] == 1


# --- relays ------------------------------------------------------------------------------


def test_perfdhcp_as_a_relay_gets_every_reply_at_giaddr(lab: Lab) -> None:
    need("perfdhcp")
    nics = tuple(Reserved(mac(0x300 + i), f"198.18.1.{i + 1}", f"vm-p{i}") for i in range(20))
    relay = plug(lab, mac(0x3FF))
    lab.add_address(relay.netns, relay.ifname, "198.18.200.1/16")
    pool = full_pool("relay", end="198.18.1.250")
    with serve_pools(lab, PoolSetup(pool, nics)) as rig:
        report = run_perfdhcp(
            relay, local="198.18.200.1", server=str(SERVER), macs=[n.mac for n in nics]
        )
        sent = rig.taps["relay"].sent_messages()
    assert report.returncode == 0, report.output
    for exchange in ("DISCOVER-OFFER", "REQUEST-ACK"):
        counts = report.exchanges[exchange]
        assert (counts.sent, counts.received, counts.drops) == (20, 20, 0), report.output
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
    with serve_pools(lab, PoolSetup(full_pool("opt82"), (nic,))):
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
    pool_a = full_pool("pool-a")
    pool_b = ippool(
        "pool-b",
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
    lab.add_server_port("eth2", "198.19.0.1/16")
    nic = Reserved(mac(1), "198.18.0.120", "vm-mv")
    ip = IPv4Address(nic.ip)
    # The same VM NIC on two wires: only the one the pool binds to may be answered.
    on_eth1 = plug(lab, nic.mac, port="eth1")
    on_eth2 = plug(lab, nic.mac, port="eth2")
    body = full_pool("mover")
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
    with serve_pools(lab, PoolSetup(full_pool("noise"), (nic,))) as rig:
        assert broadcast_raw(noise, payloads) == len(payloads)
        state = rig.wait_until("noise", lambda s: s.counters["malformed"] == len(payloads))
        assert counts(state)["sent"] == {}
        lease = run_udhcpc(client, timeout=10)
        state = rig.state("noise")
    assert lease.ip == IPv4Address(nic.ip)
    assert state.counters["malformed"] == len(payloads)
    assert state.serving
