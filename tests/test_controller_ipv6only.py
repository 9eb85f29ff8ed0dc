"""IPv6-only pools end to end: a real API server, kvip in-process, real clients.

A VM NIC on an IPPool with an ipv6config and no ipv4config gets one IPv6
address, recorded in its vmnetcfg (no ipaddress) before it is served, served
to a real DHCPv6 client, kept across a restart, released when the VM is
deleted; DHCP (IPv4) is not answered. Adding an ipv4config makes the pool
dual-stack: the NIC keeps its IPv6 address and gains an IPv4 one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.lab.dhcp6lab import enable_ipv6
from tests.lab.e2e_world import World, lease_ip
from tests.lab.kvip_process import kvip_process
from tests.lab.kvip_rig import unique, wait_for
from tests.lab.leases import NoLeaseError
from tests.lab.objects import GROUP, VERSION
from tests.test_controller_dualstack import IPV6CONFIG, dhcp6_address, nic_entry

pytestmark = [pytest.mark.netns, pytest.mark.apiserver]


def condition(w: World, pool: str, kind: str) -> dict[str, Any] | None:
    for found in w.pool(pool).get("status", {}).get("conditions") or []:
        if found.get("type") == kind:
            return dict(found)
    return None


def test_an_ipv6_only_nic_is_recorded_served_kept_and_released(
    world: World, tmp_path: Path
) -> None:
    w = world
    enable_ipv6(w.lab.server, "eth1")
    pool = w.create_pool(w.net("net-a"), ipv6config=IPV6CONFIG, only6=True)
    mac = "52:54:00:00:6c:01"
    with w.kvip():
        w.create_vm("vm1", [("nic-a", "net-a", mac)])
        entry = wait_for(lambda: nic_entry(w, "vm1", mac), what="the NIC's ipv6address")
        assert entry["ipv6address"] == "2001:db8:0:1::100"
        assert "ipaddress" not in entry
        assert dhcp6_address(w, mac, tmp_path / "first") == "2001:db8:0:1::100"
        # No DHCP (IPv4) on an IPv6-only pool.
        with pytest.raises(NoLeaseError):
            lease_ip(w.lab.add_client(mac, port="eth1"), timeout=4)
        status = wait_for(
            lambda: (
                w.pool(pool).get("status", {}).get("ipv6", {}).get("used") == "1"
                and w.pool(pool)["status"]
            ),
            what="IPPool status.ipv6",
        )
        assert "ipv4" not in status
        assert status["ipv6"]["allocated"]["2001:db8:0:1::100"] == f"{w.namespace}/vm1 [{mac}]"
        serving = wait_for(lambda: condition(w, pool, "Serving"), what="the Serving condition")
        assert serving["status"] == "True" and "DHCPv6" in serving["message"]
        # The replica answers from its link-local address, and says so.
        replicas = wait_for(lambda: w.pool(pool)["status"].get("replicas"), what="replicas")
        assert [r["address"].startswith("fe80::") for r in replicas] == [True]
        shown = wait_for(
            lambda: (w.cfg("vm1") or {}).get("status", {}).get("networkconfig"),
            what="the vmnetcfg status",
        )
        assert shown[0]["status"] == "OK" and shown[0]["ipv6address"] == "2001:db8:0:1::100"
        assert "ipaddress" not in shown[0]
    # A new process serves it again from the vmnetcfg alone.
    with w.kvip():
        assert dhcp6_address(w, mac, tmp_path / "restarted") == "2001:db8:0:1::100"
        w.delete_vm("vm1")
        wait_for(
            lambda: w.pool(pool).get("status", {}).get("ipv6", {}).get("used") == "0",
            what="the IPv6 address released",
        )
        assert dhcp6_address(w, mac, tmp_path / "deleted", timeout=6) is None


def test_an_ipv6_only_pool_given_an_ipv4config_becomes_dual_stack(
    world: World, tmp_path: Path
) -> None:
    w = world
    enable_ipv6(w.lab.server, "eth1")
    pool = w.create_pool(w.net("net-a"), ipv6config=IPV6CONFIG, only6=True)
    mac = "52:54:00:00:6c:02"
    with w.kvip():
        w.create_vm("vm2", [("nic-a", "net-a", mac)])
        entry = wait_for(lambda: nic_entry(w, "vm2", mac), what="the NIC's ipv6address")
        ip6 = entry["ipv6address"]
        ipv4config = {
            "serverip": "198.18.0.1",
            "subnet": "198.18.0.0/16",
            "pool": {"start": "198.18.0.10", "end": "198.18.0.250"},
        }
        w.custom.patch_cluster_custom_object(
            GROUP, VERSION, "ippools", pool, {"spec": {"ipv4config": ipv4config}}
        )
        both = wait_for(
            lambda: (
                (found := nic_entry(w, "vm2", mac)) is not None and found.get("ipaddress") and found
            ),
            what="the NIC's ipaddress beside its ipv6address",
        )
        assert (both["ipaddress"], both["ipv6address"]) == ("198.18.0.10", ip6)
        assert lease_ip(w.lab.add_client(mac, port="eth1")) == "198.18.0.10"
        assert dhcp6_address(w, mac, tmp_path / "both") == ip6


def entries(w: World, vm: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (w.cfg(vm) or {}).get("spec", {}).get("networkconfig", [])
    return found


def test_removing_the_ipv4config_drops_the_ipv4_address_of_a_nic_left_without_ipv6(
    world: World,
) -> None:
    """A dual-stack pool's one IPv6 address is taken: the second NIC has its IPv4
    address alone. The ipv4config removed, both NICs lose their IPv4 addresses:
    the first keeps its IPv6 one, the second has nothing left to record (its
    record kept the IPv4 address, found by the chaos tier's invariants)."""
    w = world
    enable_ipv6(w.lab.server, "eth1")
    one = {**IPV6CONFIG, "pool": {"start": "2001:db8:0:1::100", "end": "2001:db8:0:1::100"}}
    pool = w.create_pool(w.net("net-a"), ipv6config=one)
    first, second = "52:54:00:00:6c:04", "52:54:00:00:6c:05"
    with w.kvip():
        w.create_vm("vm4", [("nic-a", "net-a", first)])
        wait_for(lambda: nic_entry(w, "vm4", first), what="the first NIC's ipv6address")
        w.create_vm("vm5", [("nic-a", "net-a", second)])
        alone = wait_for(lambda: entries(w, "vm5"), what="the second NIC's record")
        assert [(e.get("ipaddress"), e.get("ipv6address")) for e in alone] == [
            ("198.18.0.11", None)
        ]
        w.custom.patch_cluster_custom_object(
            GROUP, VERSION, "ippools", pool, {"spec": {"ipv4config": None}}
        )
        wait_for(
            lambda: (found := nic_entry(w, "vm4", first)) is not None and "ipaddress" not in found,
            what="the first NIC's IPv4 address released",
        )
        wait_for(
            lambda: not any(e.get("ipaddress") for e in entries(w, "vm5")),
            what="the second NIC's IPv4 address released",
        )
        assert entries(w, "vm5") == []
        shown = wait_for(
            lambda: (w.cfg("vm5") or {}).get("status", {}).get("networkconfig"),
            what="the second NIC's status",
        )
        assert [(e["status"], "exhausted" in e["message"]) for e in shown] == [("ERROR", True)]


@pytest.mark.slow
def test_both_replicas_answer_an_ipv6_only_pool_and_kill_9_of_the_leader_changes_nothing(
    world: World, tmp_path: Path
) -> None:
    """The follower serves the recorded IPv6 address of an IPv6-only pool: with the
    leader killed (-9) it answers alone; a process started afterwards serves the
    same address and records nothing new."""
    w = world
    enable_ipv6(w.lab.server, "eth1")
    w.create_pool(w.net("net-a"), ipv6config=IPV6CONFIG, only6=True)
    mac = "52:54:00:00:6c:03"
    lease = unique("lease")
    first, second = kvip_process(w, lease), kvip_process(w, lease)
    with first, second:
        leader, follower = wait_for(
            lambda: (first, second) if first.is_leader() else (second, first) if second.is_leader()
            else None,
            what="one leader",
        )  # fmt: skip
        w.create_vm("vm3", [("nic", "net-a", mac)])
        entry = wait_for(lambda: nic_entry(w, "vm3", mac), what="the NIC's ipv6address")
        assert "ipaddress" not in entry
        wait_for(lambda: follower.get("/readyz")[0] == 200, what="the follower to be ready")
        assert dhcp6_address(w, mac, tmp_path / "both") == entry["ipv6address"]
        leader.kill()
        assert dhcp6_address(w, mac, tmp_path / "follower") == entry["ipv6address"]
    with kvip_process(w, unique("lease")):
        assert dhcp6_address(w, mac, tmp_path / "restarted") == entry["ipv6address"]
        assert nic_entry(w, "vm3", mac) == entry
