"""Dual stack end to end: a real API server, kvip in-process, a real DHCPv6 client.

A VM NIC on a dual-stack IPPool gets an IPv4 and an IPv6 address, both recorded
in its vmnetcfg before either is served, both served to real clients, both kept
across a restart, both released the moment the VM is deleted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.lab.dhcp6lab import dhclient6, enable_ipv6
from tests.lab.e2e_world import World, lease_ip
from tests.lab.kvip_process import kvip_process
from tests.lab.kvip_rig import unique, wait_for
from tests.lab.leases import NoLeaseError, last_event
from tests.lab.objects import GROUP

STATIC_IP = f"{GROUP}/static-ip"

pytestmark = [pytest.mark.netns, pytest.mark.apiserver]

IPV6CONFIG = {
    "subnet": "2001:db8:0:1::/64",
    "pool": {"start": "2001:db8:0:1::100", "end": "2001:db8:0:1::1ff"},
    "dns": ["2001:db8:0:1::53"],
    "domainsearch": ["lab.example"],
}


def nic_entry(w: World, vm: str, mac: str) -> dict[str, Any] | None:
    for entry in (w.cfg(vm) or {}).get("spec", {}).get("networkconfig", []):
        if entry.get("macaddress") == mac and entry.get("ipv6address"):
            found: dict[str, Any] = entry
            return found
    return None


def dhcp6_address(w: World, mac: str, work: Path, *, timeout: float = 15) -> str | None:
    """The address a real dhclient -6 on a fresh client with `mac` is given."""
    client = w.lab.add_client(mac, port="eth1")
    enable_ipv6(client.netns, client.ifname)
    work.mkdir()
    try:
        dhclient6(client, work, ["-1"], timeout=timeout)
    except NoLeaseError:
        return None
    lease = last_event(work / "dumps", ("BOUND6", "REBOOT6"))
    return lease["new_ip6_address"] if lease is not None else None


def test_a_dual_stack_nic_is_recorded_served_kept_and_released(
    world: World, tmp_path: Path
) -> None:
    w = world
    enable_ipv6(w.lab.server, "eth1")
    pool = w.create_pool(w.net("net-a"), ipv6config=IPV6CONFIG)
    mac_a, mac_b = "52:54:00:00:6a:01", "52:54:00:00:6a:02"
    with w.kvip():
        w.create_vm(
            "vm1",
            [("nic-a", "net-a", mac_a), ("nic-b", "net-a", mac_b)],
            annotations={STATIC_IP: json.dumps({"nic-b": "198.18.0.50,2001:db8:0:1::150"})},
        )
        a = wait_for(lambda: nic_entry(w, "vm1", mac_a), what="nic-a's ipv6address")
        b = wait_for(lambda: nic_entry(w, "vm1", mac_b), what="nic-b's ipv6address")
        assert (a["ipaddress"], a["ipv6address"]) == ("198.18.0.10", "2001:db8:0:1::100")
        assert (b["ipaddress"], b["ipv6address"]) == ("198.18.0.50", "2001:db8:0:1::150")
        assert dhcp6_address(w, mac_a, tmp_path / "a1") == "2001:db8:0:1::100"
        status = wait_for(
            lambda: (
                w.pool(pool).get("status", {}).get("ipv6", {}).get("used") == "2"
                and w.pool(pool)["status"]["ipv6"]
            ),
            what="IPPool status.ipv6",
        )
        assert status["allocated"]["2001:db8:0:1::150"] == f"{w.namespace}/vm1 [{mac_b}]"
        assert status["excluded"] == "0"
        shown = wait_for(
            lambda: (w.cfg("vm1") or {}).get("status", {}).get("networkconfig"),
            what="the vmnetcfg status",
        )
        by_mac = {entry["macaddress"]: entry for entry in shown}
        assert by_mac[mac_b]["ipv6address"] == "2001:db8:0:1::150"
        assert by_mac[mac_b]["status"] == "OK"
    # A new process: both addresses come back from the vmnetcfg, nothing else.
    with w.kvip():
        assert dhcp6_address(w, mac_b, tmp_path / "b1") == "2001:db8:0:1::150"
        assert lease_ip(w.lab.add_client(mac_b, port="eth1")) == "198.18.0.50"
        w.delete_vm("vm1")
        wait_for(
            lambda: w.pool(pool).get("status", {}).get("ipv6", {}).get("used") == "0",
            what="both IPv6 addresses released",
        )
        assert dhcp6_address(w, mac_a, tmp_path / "a2", timeout=6) is None


@pytest.mark.slow
def test_both_replicas_answer_dhcpv6_and_kill_9_of_the_leader_changes_nothing(
    world: World, tmp_path: Path
) -> None:
    """Every replica serves DHCPv6 as the pool's one server (one DUID): with the
    leader killed (-9), the follower answers for what is recorded; a process
    started afterwards serves the same addresses."""
    w = world
    enable_ipv6(w.lab.server, "eth1")
    w.create_pool(w.net("net-a"), ipv6config=IPV6CONFIG)
    mac = "52:54:00:00:6b:01"
    lease = unique("lease")
    first, second = kvip_process(w, lease), kvip_process(w, lease)
    with first, second:
        leader, follower = wait_for(
            lambda: (first, second) if first.is_leader() else (second, first) if second.is_leader()
            else None,
            what="one leader",
        )  # fmt: skip
        w.create_vm("vm", [("nic", "net-a", mac)])
        entry = wait_for(lambda: nic_entry(w, "vm", mac), what="the NIC's ipv6address")
        ip6 = entry["ipv6address"]
        wait_for(lambda: follower.get("/readyz")[0] == 200, what="the follower to be ready")
        assert dhcp6_address(w, mac, tmp_path / "both") == ip6
        leader.kill()
        assert dhcp6_address(w, mac, tmp_path / "follower") == ip6
    with kvip_process(w, unique("lease")):
        assert dhcp6_address(w, mac, tmp_path / "restarted") == ip6
        assert nic_entry(w, "vm", mac) == entry
