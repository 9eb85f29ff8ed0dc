"""kvip's pool actor against real DHCP clients, on private wires: what each client gets.

Each test builds a network lab (namespaces deleted afterwards, also on
failure), runs a PoolActor whose socket lives in the lab's server namespace,
and asserts on what real clients (dhclient, udhcpc, dhcpcd, systemd-networkd)
reported they got, and on the pool's counters. test_dhcp_pools_on_the_wire.py
covers relays, several pools, reconfiguration and garbage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from kvip.actors import ClearDecline, Reconfigure
from kvip.serving import parse_ippool
from protocol import MessageType, OptionCode
from tests.lab.dhcpchecks import (
    DNS,
    MASK,
    ROUTER,
    SERVER,
    SILENT,
    assert_full_lease,
    counts,
    dhclient_runner,
    mac,
    need,
    no_lease,
    open_lab,
    plug,
    requests_with_ciaddr,
)
from tests.lab.dhcpclients import (
    NETWORKD,
    Lease,
    NoLeaseError,
    Route,
    dhclient_lease_file,
    run_dhcpcd,
    run_networkd,
    run_udhcpc,
)
from tests.lab.dhcpsessions import dhclient_session, udhcpc_session
from tests.lab.netlab import Lab, run_in
from tests.lab.objects import ippool
from tests.lab.poolrig import PoolSetup, Reserved, run_parallel, serve_pools

pytestmark = pytest.mark.netns


@pytest.fixture
def lab() -> Iterator[Lab]:
    with open_lab() as the_lab:
        yield the_lab


@pytest.fixture
def dhclient(tmp_path: Path) -> Callable[..., Lease]:
    return dhclient_runner(tmp_path)


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
    with serve_pools(lab, PoolSetup(ippool("full", options="full"), tuple(nics.values()))) as rig:
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
    plain = ippool("plain", options="bare", router=str(ROUTER), dns=["198.18.0.53"], leasetime=900)
    with serve_pools(lab, PoolSetup(plain, (nic,))) as rig:
        before = run_udhcpc(client, timeout=10)
        changed = ippool("plain", options="full", dns=["198.18.0.99"], mtu=1400)
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


def test_options_too_big_for_576_bytes_are_left_out_and_clients_still_get_their_address(
    lab: Lab, dhclient: Callable[..., Lease]
) -> None:
    """A search list longer than a 576-byte reply can carry: the clients, which
    take no bigger replies, get their address, mask, router and DNS without it."""
    need("udhcpc", "dhclient")
    nics = [Reserved(mac(1), "198.18.0.40", "vm-x"), Reserved(mac(2), "198.18.0.41", "vm-y")]
    long_search = [f"zone{n:02d}.cluster-{n:02d}.datacenter.example" for n in range(24)]
    pool = ippool("wide", options="full", domainsearch=long_search)
    with serve_pools(lab, PoolSetup(pool, tuple(nics))) as rig:
        by_udhcpc = run_udhcpc(plug(lab, nics[0].mac), timeout=10)
        by_dhclient = dhclient(plug(lab, nics[1].mac), timeout=10)
        counters = rig.counters("wide")
    for lease, nic in ((by_udhcpc, nics[0]), (by_dhclient, nics[1])):
        assert (lease.ip, lease.mask, lease.router, lease.dns) == (
            IPv4Address(nic.ip),
            MASK,
            (ROUTER,),
            DNS,
        ), lease
        assert lease.search == (), lease
    assert counters["send_errors"] == 0


# --- renew, rebind, init-reboot ----------------------------------------------------------


def test_renew_is_unicast_rebind_is_broadcast_and_both_keep_the_address(lab: Lab) -> None:
    need("udhcpc")
    nic = Reserved(mac(1), "198.18.0.30", "vm-r")
    ip = IPv4Address(nic.ip)
    client = plug(lab, nic.mac)
    with (
        serve_pools(lab, PoolSetup(ippool("renew", options="full"), (nic,))) as rig,
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
        serve_pools(lab, PoolSetup(ippool("t1", options="full", leasetime=4), (nic,))) as rig,
        dhclient_session(lab, client) as session,
    ):
        bound, lease = session.wait_for(["BOUND"])
        assert (lease.ip, lease.lease_time, lease.t1, lease.t2) == (ip, 4, 2, 3)
        _, renewed = session.wait_for(["RENEW"], after=bound + 1, timeout=8)
        assert renewed.ip == ip
        assert renewed.dns == DNS
        assert requests_with_ciaddr(rig, "t1", ip)[0] == str(SERVER)  # RENEWING is unicast
        assert rig.counters("t1")["naks"] == 0


def test_init_reboot_for_a_wrong_address_is_naked_then_the_reservation_is_bound(
    lab: Lab, dhclient: Callable[..., Lease]
) -> None:
    need("dhclient")
    nic = Reserved(mac(1), "198.18.0.40", "vm-n")
    client = plug(lab, nic.mac)
    seeded = dhclient_lease_file(client, ip="198.18.0.77", server_id=str(SERVER))
    with serve_pools(lab, PoolSetup(ippool("reboot", options="full"), (nic,))) as rig:
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
    with serve_pools(lab, PoolSetup(ippool("inform", options="full"), (nic,))) as rig:
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
    with serve_pools(lab, PoolSetup(ippool("release", options="full"), (u_nic, d_nic))) as rig:
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
    with serve_pools(lab, PoolSetup(ippool("known", options="full"), (known,))) as rig:
        outcomes = run_parallel(
            lambda: no_lease(run_udhcpc, strangers[0]),
            lambda: no_lease(dhclient, strangers[1]),
        )
        counters = rig.counters("known")
    assert outcomes == [None, None]
    assert counters["unknown_mac"] >= 2
    assert counters["sent"] == {}


# --- decline ----------------------------------------------------------------------------


def test_declined_address_is_reported_and_not_offered_until_cleared(lab: Lab) -> None:
    need("udhcpc")
    nic = Reserved(mac(1), "198.18.0.80", "vm-d")
    victim = plug(lab, nic.mac)
    squatter = plug(lab, mac(0x200))
    # Someone else already uses the reserved address on the wire.
    lab.add_address(squatter.netns, squatter.ifname, f"{nic.ip}/16")
    ip = IPv4Address(nic.ip)
    with serve_pools(lab, PoolSetup(ippool("decline", options="full"), (nic,))) as rig:
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
