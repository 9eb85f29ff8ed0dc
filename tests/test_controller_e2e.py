"""The controller end to end: a real API server, kvip in-process, real DHCP clients."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest

from tests.lab import objects
from tests.lab.dhcpclients import NoLeaseError, run_udhcpc
from tests.lab.e2e_world import World, lease_ip
from tests.lab.kvip_rig import RunningKvip, wait_for
from tests.lab.objects import CFGS, FINALIZER, GROUP, VERSION, VMS

pytestmark = [pytest.mark.netns, pytest.mark.apiserver]


def test_vm_nics_get_reserved_addresses_served_to_real_clients(world: World) -> None:
    w = world
    # The range starts at the server's own address: kvip must skip it by itself.
    pool_a = w.create_pool(w.net("net-a"), start="198.18.0.1")
    w.create_pool(w.net("net-b"), interface="eth2", server="198.19.0.1", subnet="198.19.0.0/16",
                  start="198.19.0.10", end="198.19.0.20")  # fmt: skip
    mac_a, mac_b, mac_c = "52:54:00:00:0a:01", "52:54:00:00:0b:01", "52:54:00:00:0c:01"
    with w.kvip():
        # Multi-NIC VM: one NIC per pool, plus one on a network with no pool, and a
        # namespace-less networkName (the VM's own namespace).
        w.create_vm(
            "vm1",
            [("nic-a", "net-a", mac_a), ("nic-b", w.net("net-b"), mac_b),
             ("nic-c", w.net("no-pool"), mac_c)],
        )  # fmt: skip
        ips = w.ips("vm1", count=2)
        assert ips == {mac_a: "198.18.0.2", mac_b: "198.19.0.10"}
        cfg = w.cfg("vm1")
        assert cfg is not None
        assert FINALIZER in cfg["metadata"]["finalizers"]
        assert cfg["metadata"]["ownerReferences"][0]["kind"] == "VirtualMachine"
        assert cfg["spec"]["vmname"] == "vm1"

        client_a = w.lab.add_client(mac_a, port="eth1")
        client_b = w.lab.add_client(mac_b, port="eth2")
        assert lease_ip(client_a) == "198.18.0.2"
        assert lease_ip(client_b) == "198.19.0.10"

        status = wait_for(
            lambda: (w.cfg("vm1") or {}).get("status", {}).get("networkconfig"),
            what="vmnetcfg status",
        )
        by_mac = {entry["macaddress"]: entry for entry in status}
        assert by_mac[mac_a]["status"] == "OK"
        assert mac_c not in by_mac  # no pool for its network: not kvip's NIC

        pool = wait_for(
            lambda: (
                w.pool(pool_a).get("status", {}).get("ipv4", {}).get("used") == 1 and w.pool(pool_a)
            ),
            what="pool status",
        )
        allocated = pool["status"]["ipv4"]["allocated"]
        assert allocated["198.18.0.2"] == f"{w.namespace}/vm1 [{mac_a}]"
        assert allocated["198.18.0.1"] == "EXCLUDED"  # the server IP, never handed out
        ready = {c["type"]: c["status"] for c in pool["status"]["conditions"]}
        assert ready == {"Ready": "True", "Serving": "True"}


def test_delete_releases_at_once_and_unknown_macs_get_nothing(world: World) -> None:
    w = world
    pool = w.create_pool(w.net("net-a"))
    mac1, mac2 = "52:54:00:00:01:01", "52:54:00:00:01:02"
    with w.kvip() as kvip:
        w.create_vm("vm1", [("nic", "net-a", mac1)])
        assert w.ips("vm1") == {mac1: "198.18.0.10"}
        c = w.lab.add_client(mac1)
        assert lease_ip(c) == "198.18.0.10"
        w.delete_vm("vm1")
        wait_for(lambda: w.cfg("vm1") is None, what="vmnetcfg removed")
        assert kvip.pool_state(pool).used == 0
        with pytest.raises(NoLeaseError):
            run_udhcpc(c, timeout=4)
        # The freed address is the lowest free one again.
        w.create_vm("vm2", [("nic", "net-a", mac2)])
        assert w.ips("vm2") == {mac2: "198.18.0.10"}


def test_halted_vm_harvester_mac_and_late_mac(world: World) -> None:
    w = world
    w.create_pool(w.net("net-a"))
    with w.kvip():
        w.create_vm("halted", [("nic", "net-a", "52:54:00:00:02:01")], running=False)
        assert w.ips("halted") == {"52:54:00:00:02:01": "198.18.0.10"}
        w.create_vm(
            "harvester",
            [("nic", "net-a", None)],
            annotations={"harvesterhci.io/mac-address": json.dumps({"nic": "52:54:00:00:02:02"})},
        )
        assert w.ips("harvester") == {"52:54:00:00:02:02": "198.18.0.11"}
        w.create_vm("late", [("nic", "net-a", None)])
        # No MAC yet: nothing to reserve, and the status says why (issue 14).

        def told() -> bool:
            entries = ((w.cfg("late") or {}).get("status") or {}).get("networkconfig") or []
            return any("has no MAC address" in str(e.get("message")) for e in entries)

        wait_for(told, what="the MAC-less NIC told in the vmnetcfg status")
        assert (w.cfg("late") or {}).get("spec", {}).get("networkconfig", []) == []
        vm = w.custom.get_namespaced_custom_object(*VMS[:2], w.namespace, VMS[2], "late")
        interfaces = vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"]
        interfaces[1]["macAddress"] = "52:54:00:00:02:03"
        w.patch_vm("late", {"spec": vm["spec"]})
        assert w.ips("late") == {"52:54:00:00:02:03": "198.18.0.12"}
        assert lease_ip(w.lab.add_client("52:54:00:00:02:03")) == "198.18.0.12"


def test_two_vms_claiming_one_mac(world: World) -> None:
    w = world
    w.create_pool(w.net("net-a"))
    mac = "52:54:00:00:03:01"
    with w.kvip():
        w.create_vm("first", [("nic", "net-a", mac)])
        assert w.ips("first") == {mac: "198.18.0.10"}
        w.create_vm("second", [("nic", "net-a", mac)])
        status = wait_for(
            lambda: (w.cfg("second") or {}).get("status", {}).get("networkconfig"),
            what="status of the second VM",
        )
        assert status[0]["status"] == "ERROR"
        assert f"{w.namespace}/first" in status[0]["message"]
        assert lease_ip(w.lab.add_client(mac)) == "198.18.0.10"


def test_nic_removed_and_mac_changed_are_followed(world: World) -> None:
    w = world
    pool = w.create_pool(w.net("net-a"))
    with w.kvip() as kvip:
        w.create_vm(
            "vm", [("n1", "net-a", "52:54:00:00:04:01"), ("n2", "net-a", "52:54:00:00:04:02")]
        )
        assert w.ips("vm", count=2) == {
            "52:54:00:00:04:01": "198.18.0.10",
            "52:54:00:00:04:02": "198.18.0.11",
        }
        new = objects.vm("vm", w.namespace, [("n1", "net-a", "52:54:00:00:04:09")])
        w.patch_vm("vm", {"spec": new["spec"]})
        wait_for(
            lambda: list(w.ips("vm")) == ["52:54:00:00:04:09"],
            what="the vmnetcfg to follow the NIC changes",
        )
        # Both old NICs' addresses are released, right after the record is written.
        state = wait_for(
            lambda: (state := kvip.pool_state(pool)).used == 1 and state,
            what="the old NICs' addresses released",
        )
        [(ip, owner)] = state.allocations
        assert owner == f"{w.namespace}/vm [52:54:00:00:04:09]"
        assert w.ips("vm") == {"52:54:00:00:04:09": str(ip)}


def test_requested_addresses_by_vmnetcfg_and_annotation(world: World) -> None:
    w = world
    w.create_pool(w.net("net-a"))
    preset = objects.vmnetcfg(
        "preset", [(w.net("net-a"), "52:54:00:00:05:01", "198.18.0.100")], namespace=w.namespace
    )
    w.custom.create_namespaced_custom_object(GROUP, VERSION, w.namespace, CFGS, preset)
    with w.kvip():
        w.create_vm("preset", [("nic", "net-a", "52:54:00:00:05:01")])
        w.create_vm(
            "annotated",
            [("nic", "net-a", "52:54:00:00:05:02")],
            annotations={f"{GROUP}/static-ip": json.dumps({"nic": "198.18.0.200"})},
        )
        assert w.ips("preset") == {"52:54:00:00:05:01": "198.18.0.100"}
        assert w.ips("annotated") == {"52:54:00:00:05:02": "198.18.0.200"}
        wait_for(
            lambda: (
                FINALIZER in ((w.cfg("preset") or {}).get("metadata", {}).get("finalizers") or [])
            ),
            what="kvip to adopt the preset vmnetcfg",
        )
        assert lease_ip(w.lab.add_client("52:54:00:00:05:02")) == "198.18.0.200"


def test_restart_keeps_every_address_and_cleans_orphans(world: World) -> None:
    w = world
    w.create_pool(w.net("net-a"))
    with w.kvip():
        for i in range(5):
            w.create_vm(f"vm{i}", [("nic", "net-a", f"52:54:00:00:06:0{i}")])
        before = {f"vm{i}": w.ips(f"vm{i}") for i in range(5)}
    # While kvip is down: vm1 and vm3 are deleted (their vmnetcfgs stay, finalized).
    w.delete_vm("vm1")
    w.delete_vm("vm3")
    with w.kvip():
        wait_for(lambda: w.cfg("vm1") is None and w.cfg("vm3") is None, what="orphans removed")
        for name in ("vm0", "vm2", "vm4"):
            assert w.ips(name) == before[name]
        # A new VM takes the lowest address that the orphans freed.
        w.create_vm("new", [("nic", "net-a", "52:54:00:00:06:09")])
        assert w.ips("new") == {"52:54:00:00:06:09": before["vm1"]["52:54:00:00:06:01"]}
        assert lease_ip(w.lab.add_client("52:54:00:00:06:04")) == before["vm4"]["52:54:00:00:06:04"]


def test_invalid_pool_gets_a_condition_and_others_keep_working(world: World) -> None:
    w = world
    bad = w.create_pool(w.net("net-bad"), start="198.18.0.50", end="198.18.0.40")
    good = w.create_pool(w.net("net-a"))
    with w.kvip():
        condition = wait_for(
            lambda: next(
                (c for c in w.pool(bad).get("status", {}).get("conditions", [])
                 if c["type"] == "Ready"), None),
            what="the invalid pool's Ready condition",
        )  # fmt: skip
        assert condition["status"] == "False"
        assert condition["reason"] == "InvalidPool"
        assert "198.18.0.50" in condition["message"]
        w.create_vm("vm", [("nic", "net-a", "52:54:00:00:07:01")])
        assert w.ips("vm") == {"52:54:00:00:07:01": "198.18.0.10"}
        assert w.pool(good)["status"]["conditions"]


def test_pool_option_change_reaches_clients_without_restart(world: World) -> None:
    w = world
    pool = w.create_pool(w.net("net-a"))
    mac = "52:54:00:00:08:01"
    with w.kvip():
        w.create_vm("vm", [("nic", "net-a", mac)])
        w.ips("vm")
        c = w.lab.add_client(mac)
        assert run_udhcpc(c, timeout=10).dns == (
            __import__("ipaddress").IPv4Address("198.18.0.53"),
        )
        w.custom.patch_cluster_custom_object(
            GROUP, VERSION, "ippools", pool,
            {"spec": {"ipv4config": {"dns": ["198.18.9.9"], "leasetime": 120}}},
            _content_type="application/merge-patch+json",
        )  # fmt: skip

        def new_dns() -> bool:
            lease = run_udhcpc(c, timeout=10)
            return [str(a) for a in lease.dns] == ["198.18.9.9"] and lease.lease_time == 120

        wait_for(new_dns, timeout=20, what="the new DNS server in a lease")


def test_deleting_a_pool_stops_serving_and_recreating_restores(world: World) -> None:
    w = world
    body_kwargs: dict[str, Any] = {}
    pool = w.create_pool(w.net("net-a"), **body_kwargs)
    mac = "52:54:00:00:09:01"
    with w.kvip():
        w.create_vm(
            "vm",
            [("nic", "net-a", mac)],
        )
        w.create_vm("other", [("nic", "net-a", "52:54:00:00:09:02")])
        assert w.ips("vm") == {mac: "198.18.0.10"}
        c = w.lab.add_client(mac)
        assert lease_ip(c) == "198.18.0.10"
        w.custom.delete_cluster_custom_object(GROUP, VERSION, "ippools", pool)
        w.pools.remove(pool)

        def silent() -> bool:
            try:
                run_udhcpc(c, timeout=3)
            except NoLeaseError:
                return True
            return False

        wait_for(silent, timeout=20, what="the deleted pool to stop answering")
        # The durable records stay; a new pool for the network restores them.
        assert w.ips("vm") == {mac: "198.18.0.10"}
        w.create_pool(w.net("net-a"))
        assert lease_ip(c, timeout=15) == "198.18.0.10"


def remembered(kvip: RunningKvip, key: str) -> list[str]:
    """Which of the controller's per-VM tables still mention `key` (read in
    kvip's own thread, so no table changes while it is read)."""

    async def read() -> list[str]:
        return _tables_with(kvip, key)

    found: list[str] = kvip.call(read)
    return found


def _tables_with(kvip: RunningKvip, key: str) -> list[str]:
    controller = kvip.controller
    assert controller is not None
    writer = controller._cfg_status
    assert writer is not None
    tables: dict[str, Any] = {
        "vms": controller.vms,
        "cfgs": controller.cfgs,
        "states": controller.states,
        "declined": {vm for vm, state in controller.states.items() if state.declined},
        "cfg status writes": writer._written,
    }
    return [name for name, table in tables.items() if key in table]


def test_a_deleted_vm_leaves_nothing_behind_in_kvip(world: World) -> None:
    """A long life of VMs coming and going must not grow kvip's memory: once a VM
    and its vmnetcfg are gone, no table of the controller remembers them."""
    w = world
    w.create_pool(w.net("net-a"))
    mac = "52:54:00:00:0d:01"
    key = f"{w.namespace}/vm"
    with w.kvip() as kvip:
        w.create_vm("vm", [("nic", "net-a", mac)])
        ip = w.ips("vm")[mac]
        # A DECLINE puts the NIC in the declined table too.
        intruder = w.lab.add_client("52:54:00:00:0d:99")
        w.lab.add_address(intruder.netns, intruder.ifname, f"{ip}/16")
        with pytest.raises(NoLeaseError):
            run_udhcpc(w.lab.add_client(mac), timeout=8, arp_check=True)
        wait_for(
            lambda: {"cfg status writes", "declined"} <= set(remembered(kvip, key)),
            what="kvip to write the vmnetcfg status and note the decline",
        )
        w.delete_vm("vm")
        wait_for(lambda: w.cfg("vm") is None, what="vmnetcfg removed")
        with contextlib.suppress(AssertionError):
            wait_for(lambda: not remembered(kvip, key), timeout=10)
        assert remembered(kvip, key) == []
