"""A NIC keeps its address through whatever happens to its record: the vmnetcfg
deleted under a live VM, one MAC on two networks, a MAC change with a static
request. A real API server and kvip in-process (no DHCP clients needed)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from kvip.k8s import VMNETCFGS, Conflict
from tests.lab.e2e_world import World
from tests.lab.kvip_rig import wait_for
from tests.lab.objects import CFGS, GROUP

pytestmark = [pytest.mark.netns, pytest.mark.apiserver]


def entries(w: World, name: str, part: str = "spec") -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = ((w.cfg(name) or {}).get(part) or {}).get("networkconfig") or []
    return found


def held(w: World, pool: str) -> dict[str, str]:
    """ip -> owner of what the pool's status shows held."""
    allocated = w.pool(pool).get("status", {}).get("ipv4", {}).get("allocated") or {}
    return {ip: who for ip, who in allocated.items() if who != "EXCLUDED"}


def events(w: World, name: str) -> list[Any]:
    core = client.CoreV1Api(w.custom.api_client)
    found: list[Any] = core.list_namespaced_event(
        w.namespace, field_selector=f"involvedObject.name={name}"
    ).items
    return found


def test_a_deleted_vmnetcfg_of_a_live_vm_comes_back_with_the_same_address(world: World) -> None:
    """Before the fix the finalizer released the address and the recreated
    vmnetcfg got the lowest free one: the VM's IP changed."""
    w = world
    pool = w.create_pool(w.net("net-a"), start="198.18.0.10", end="198.18.0.20")
    mac_a, mac_b = "52:54:00:00:30:01", "52:54:00:00:30:02"
    with w.kvip():
        w.create_vm("first", [("nic", "net-a", mac_a)])
        assert w.ips("first") == {mac_a: "198.18.0.10"}
        w.create_vm("vm", [("nic", "net-a", mac_b)])
        assert w.ips("vm") == {mac_b: "198.18.0.11"}
        w.delete_vm("first")  # the lowest address is free again
        wait_for(lambda: held(w, pool) == {"198.18.0.11": f"{w.namespace}/vm [{mac_b}]"},
                 what="only vm's address held")  # fmt: skip
        before = w.cfg("vm")
        assert before is not None
        w.custom.delete_namespaced_custom_object(
            GROUP, "v1", w.namespace, "virtualmachinenetworkconfigs", "vm"
        )
        again = wait_for(
            lambda: (
                (cfg := w.cfg("vm")) is not None
                and cfg["metadata"]["uid"] != before["metadata"]["uid"]
                and entries(w, "vm")
                and cfg
            ),
            what="the vmnetcfg recreated",
        )
        assert again["spec"]["networkconfig"] == before["spec"]["networkconfig"]
        assert w.ips("vm") == {mac_b: "198.18.0.11"}
        wait_for(
            lambda: held(w, pool) == {"198.18.0.11": f"{w.namespace}/vm [{mac_b}]"},
            what="the pool to hold vm's address, and only it",
        )


def test_one_mac_on_two_networks_gets_an_address_on_each(world: World) -> None:
    """Before the fix NIC records were keyed by MAC alone: the second network's
    record was dropped as a duplicate, its NIC ended in ERROR (asking its pool
    for the first network's address) and the address it had claimed leaked."""
    w = world
    pool_a = w.create_pool(w.net("net-a"))
    pool_b = w.create_pool(
        w.net("net-b"), interface="eth2", server="198.19.0.1", subnet="198.19.0.0/16",
        start="198.19.0.10", end="198.19.0.20",
    )  # fmt: skip
    mac = "52:54:00:00:31:01"
    owner = f"{w.namespace}/vm [{mac}]"
    with w.kvip():
        w.create_vm("vm", [("nic-a", "net-a", mac), ("nic-b", "net-b", mac)])

        def recorded() -> dict[str, str] | None:
            found = {e["networkname"]: str(e.get("ipaddress") or "") for e in entries(w, "vm")}
            return found if all(found.values()) and len(found) == 2 else None

        assert wait_for(recorded, what="both NICs recorded") == {
            w.net("net-a"): "198.18.0.10",
            w.net("net-b"): "198.19.0.10",
        }

        def both_status() -> list[dict[str, Any]] | None:
            found = entries(w, "vm", "status")
            return found if len(found) == 2 else None

        status = wait_for(both_status, what="both NICs' status")
        assert [(e["networkname"], e["status"]) for e in status] == [
            (w.net("net-a"), "OK"),
            (w.net("net-b"), "OK"),
        ]
        wait_for(lambda: held(w, pool_a) == {"198.18.0.10": owner}, what="pool a holds one")
        wait_for(lambda: held(w, pool_b) == {"198.19.0.10": owner}, what="pool b holds one")
        # A reconcile later (any change to the VM) keeps both.
        w.patch_vm("vm", {"metadata": {"labels": {"touched": "yes"}}})
        wait_for(recorded, what="both still recorded")
        assert recorded() == {w.net("net-a"): "198.18.0.10", w.net("net-b"): "198.19.0.10"}
        assert held(w, pool_b) == {"198.19.0.10": owner}


def test_a_mac_change_moves_the_static_address_with_the_nic(world: World) -> None:
    """Before the fix the new MAC's claim failed ("already held by" the old MAC),
    the old claim was released after, and every such change logged an ERROR and
    a ReservationFailed Event (and a waiting NIC could take the address)."""
    w = world
    pool = w.create_pool(w.net("net-a"), start="198.18.0.10", end="198.18.0.20")
    old_mac, new_mac = "52:54:00:00:32:01", "52:54:00:00:32:02"
    static = {f"{GROUP}/static-ip": json.dumps({"nic": "198.18.0.15"})}
    with w.kvip():
        w.create_vm("vm", [("nic", "net-a", old_mac)], annotations=static)
        assert w.ips("vm") == {old_mac: "198.18.0.15"}
        vm = w.custom.get_namespaced_custom_object("kubevirt.io", "v1", w.namespace,
                                                   "virtualmachines", "vm")  # fmt: skip
        interfaces = vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"]
        interfaces[1]["macAddress"] = new_mac
        w.patch_vm("vm", {"spec": vm["spec"]})
        wait_for(lambda: w.ips("vm") == {new_mac: "198.18.0.15"}, what="the new MAC recorded")
        wait_for(
            lambda: held(w, pool) == {"198.18.0.15": f"{w.namespace}/vm [{new_mac}]"},
            what="the address held by the new MAC",
        )
        status = wait_for(
            lambda: [e for e in entries(w, "vm", "status") if e["macaddress"] == new_mac],
            what="the new MAC's status",
        )
        assert status[0]["status"] == "OK"
        # Events are written in order: once the new MAC's Allocated is there, a
        # ReservationFailed of the change would be there too.
        wait_for(
            lambda: any(e.reason == "Allocated" and new_mac in e.message for e in events(w, "vm")),
            what="the new MAC's Allocated event",
        )
        assert [e.message for e in events(w, "vm") if e.reason == "ReservationFailed"] == []


def test_a_moved_static_address_goes_back_when_the_write_is_refused(world: World) -> None:
    """The vmnetcfg write after a MAC change fails with a 409 (common: kvip's own
    status writes move the resourceVersion). The address moved to the new MAC is
    still recorded for the old one: it goes back to it, not back to the pool,
    where a waiting NIC could take it before the retry."""
    w = world
    pool = w.create_pool(w.net("net-a"), start="198.18.0.10", end="198.18.0.20")
    old_mac, new_mac = "52:54:00:00:33:01", "52:54:00:00:33:02"
    static = {f"{GROUP}/static-ip": json.dumps({"nic": "198.18.0.15"})}
    with w.kvip() as kvip:
        w.create_vm("vm", [("nic", "net-a", old_mac)], annotations=static)
        assert w.ips("vm") == {old_mac: "198.18.0.15"}
        assert kvip.controller is not None
        kube = kvip.controller.kube
        replace = kube.replace
        fired: list[bool] = []

        def conflict_once(resource: Any, body: Any, *, status: bool = False) -> Any:
            if resource == VMNETCFGS and not status and not fired:
                fired.append(True)
                raise Conflict("409: injected by the test")
            return replace(resource, body, status=status)

        kube.replace = conflict_once  # type: ignore[method-assign]
        vm = w.custom.get_namespaced_custom_object("kubevirt.io", "v1", w.namespace,
                                                   "virtualmachines", "vm")  # fmt: skip
        vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][1]["macAddress"] = new_mac
        w.patch_vm("vm", {"spec": vm["spec"]})
        wait_for(lambda: w.ips("vm") == {new_mac: "198.18.0.15"}, what="the new MAC recorded")
        assert fired
        wait_for(
            lambda: held(w, pool) == {"198.18.0.15": f"{w.namespace}/vm [{new_mac}]"},
            what="the address held by the new MAC",
        )
        # Events are written in order: the new MAC's Allocated comes after any Released.
        wait_for(
            lambda: any(e.reason == "Allocated" and new_mac in e.message for e in events(w, "vm")),
            what="the new MAC's Allocated event",
        )
        assert [e.message for e in events(w, "vm") if e.reason == "Released"] == []


def test_two_records_of_one_address_leave_the_second_vm_with_the_restore_error(
    world: World,
) -> None:
    """Hand-written vmnetcfgs of two VMs record one address: the pool restores it
    for one of them, and the other's NIC shows why it has none."""
    w = world
    pool = w.create_pool(w.net("net-a"), start="198.18.0.10", end="198.18.0.20")
    macs = {"vm-a": "52:54:00:00:34:01", "vm-b": "52:54:00:00:34:02"}
    for name, mac in macs.items():
        cfg = {
            "apiVersion": f"{GROUP}/v1",
            "kind": "VirtualMachineNetworkConfig",
            "metadata": {"name": name, "namespace": w.namespace},
            "spec": {"vmname": name, "networkconfig": [
                {"networkname": w.net("net-a"), "macaddress": mac, "ipaddress": "198.18.0.15"}]},
        }  # fmt: skip
        w.custom.create_namespaced_custom_object(GROUP, "v1", w.namespace, CFGS, cfg)
        w.create_vm(name, [("nic", "net-a", mac)])
    with w.kvip() as kvip:
        wait_for(lambda: len(held(w, pool)) == 1, what="one of the two restored")
        [(ip, holder)] = held(w, pool).items()
        assert ip == "198.18.0.15"
        winner = next(name for name in macs if holder == f"{w.namespace}/{name} [{macs[name]}]")
        loser = next(name for name in macs if name != winner)
        controller = kvip.controller
        assert controller is not None

        async def restore_errors() -> dict[Any, str]:
            state = controller.states.get(f"{w.namespace}/{loser}")
            return dict(state.restore_errors) if state is not None else {}

        errors = kvip.call(restore_errors)
        assert list(errors) == [(w.net("net-a"), macs[loser])]
        assert f"already held by {holder}" in errors[(w.net("net-a"), macs[loser])]
        status = wait_for(lambda: entries(w, loser, "status"), what="the loser's status")
        assert status[0]["status"] == "ERROR" and holder in status[0]["message"]
