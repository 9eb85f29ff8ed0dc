"""A dual-stack pool on the wire: kvip's PoolActor answers real DHCPv6 clients
in lab namespaces with exactly their reserved IPv6 address (and DHCP beside it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvip.actors import Dhcp6Mode
from kvip.app._debug import mac_view, pools_view
from tests.lab.dhcp6lab import dhclient6, enable_ipv6
from tests.lab.dhcpchecks import mac, need, open_lab, plug
from tests.lab.leases import NoLeaseError, last_event
from tests.lab.netlab import Lab
from tests.lab.objects import ippool
from tests.lab.poolrig import PoolSetup, Reserved, serve_pools

pytestmark = pytest.mark.netns

SUBNET6 = "2001:db8:0:1::/64"
IPV6CONFIG = {
    "subnet": SUBNET6,
    "pool": {"start": "2001:db8:0:1::100", "end": "2001:db8:0:1::1ff"},
    "dns": ["2001:db8:0:1::53"],
    "domainsearch": ["lab.example"],
    "preferredlifetime": 600,
    "validlifetime": 1200,
}


@pytest.fixture
def lab() -> Iterator[Lab]:
    with open_lab() as the_lab:
        enable_ipv6(the_lab.server, "eth1")
        yield the_lab


def test_dhclient6_gets_its_reserved_address_dns_and_search_list(lab: Lab, tmp_path: Path) -> None:
    need("dhclient")
    client = plug(lab, mac(0x601))
    enable_ipv6(client.netns, client.ifname)
    other = Reserved(mac(0x602), "198.18.0.12", "vm-other", ip6="2001:db8:0:1::100")
    mine = Reserved(client.mac, "198.18.0.11", "vm6", ip6="2001:db8:0:1::123")
    pool = ippool("dual", options="full", ipv6config=IPV6CONFIG)
    with serve_pools(lab, PoolSetup(pool, (other, mine))) as rig:
        dhclient6(client, tmp_path, [], timeout=15)
        counters = rig.state("dual")
        # As root: a packet socket, each request with its frame's MAC.
        assert rig.actors["dual"].dhcp6_mode is Dhcp6Mode.PACKET
        assert pools_view(rig.actors)["pools"][0]["dhcp6"] == "packet"
    lease = last_event(tmp_path / "dumps", ("BOUND6", "REBOOT6"))
    assert lease is not None, "dhclient -6 got no lease"
    assert lease["new_ip6_address"] == "2001:db8:0:1::123"
    assert lease["new_dhcp6_name_servers"].split() == ["2001:db8:0:1::53"]
    assert lease["new_dhcp6_domain_search"].split() == ["lab.example."]
    assert (lease["new_preferred_life"], lease["new_max_life"]) == ("600", "1200")
    assert counters.v6 is not None
    assert dict(counters.v6.allocations)


def test_an_ipv6_only_pool_answers_dhcpv6_alone_and_keeps_its_history(
    lab: Lab, tmp_path: Path
) -> None:
    """No IPv4 socket, no IPv4 address needed on the interface: dhclient -6 gets
    its reservation, and GET /debug/mac (what `kvip why` reads) shows the
    exchange; an unknown client's SOLICIT is remembered and not answered."""
    need("dhclient")
    client = plug(lab, mac(0x611))
    stranger = plug(lab, mac(0x612))
    for host in (client, stranger):
        enable_ipv6(host.netns, host.ifname)
    mine = Reserved(client.mac, None, "vm6", ip6="2001:db8:0:1::124")
    pool = ippool("only6", ipv6config=IPV6CONFIG)
    del pool["spec"]["ipv4config"]
    for work in ("mine", "stranger"):
        (tmp_path / work).mkdir()
    with serve_pools(lab, PoolSetup(pool, (mine,))) as rig:
        dhclient6(client, tmp_path / "mine", [], timeout=15)
        with contextlib.suppress(NoLeaseError):  # its one try times out
            dhclient6(stranger, tmp_path / "stranger", ["-1"], timeout=4)
        actors = rig.actors
        assert pools_view(actors)["pools"][0]["server_ip"] is None
        view = mac_view(actors, client.mac)["pools"][0]
        stranger_view = mac_view(actors, stranger.mac)["pools"][0]
        unknown = actors["only6"].figures().unknown_macs
    lease = last_event(tmp_path / "mine" / "dumps", ("BOUND6", "REBOOT6"))
    assert lease is not None and lease["new_ip6_address"] == "2001:db8:0:1::124"
    assert view["reservation"]["ip"] is None
    assert view["reservation"]["ip6"] == "2001:db8:0:1::124"
    exchanged = [(seen["received"], seen["answer"], seen["ip"]) for seen in view["history"]]
    assert exchanged[:2] == [
        ("SOLICIT", "ADVERTISE", "2001:db8:0:1::124"),
        ("REQUEST", "REPLY", "2001:db8:0:1::124"),
    ]
    assert last_event(tmp_path / "stranger" / "dumps", ("BOUND6", "REBOOT6")) is None
    assert stranger_view["unknown"] and stranger_view["reservation"] is None
    assert {seen["reason"] for seen in stranger_view["history"]} == {"unknown_mac"}
    assert unknown == 1
