"""What an operator sees and does: Events, declines, `kvip pools`, `kvip vmnetcfg reset`,
`kvip cleanup`, and pools split between two kvips by label (sharding)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from kubernetes import client

from tests.lab import objects
from tests.lab.dhcpclients import NoLeaseError, run_udhcpc
from tests.lab.e2e_world import World, lease_ip
from tests.lab.kvip_rig import RunningKvip, unique, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.apiserver]


def kvip_cli(w: World, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kvip", *args, "--kubeconfig", str(w.api.kubeconfig)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def events(w: World, namespace: str, name: str) -> list[dict[str, Any]]:
    core = client.CoreV1Api(w.custom.api_client)
    items = core.list_namespaced_event(namespace).items
    return [
        {"reason": e.reason, "message": e.message, "type": e.type}
        for e in items
        if e.involved_object.name == name
    ]


def nic_status(w: World, vm: str) -> dict[str, Any] | None:
    entries = ((w.cfg(vm) or {}).get("status") or {}).get("networkconfig") or []
    return entries[0] if entries else None


def test_allocation_and_release_are_events_on_the_vm(world: World) -> None:
    w = world
    w.create_pool(w.net("net-a"))
    with w.kvip():
        w.create_vm("vm", [("nic", "net-a", "52:54:00:00:20:01")])
        ip = w.ips("vm")["52:54:00:00:20:01"]
        seen = wait_for(lambda: events(w, w.namespace, "vm"), what="an event on the VM")
        message = f"{ip} reserved for 52:54:00:00:20:01 on {w.net('net-a')}"
        assert {"reason": "Allocated", "type": "Normal", "message": message} in seen


def test_invalid_pool_is_an_event(world: World) -> None:
    w = world
    bad = w.create_pool(w.net("net-bad"), subnet="198.18.0.0/24", start="198.18.1.10",
                        end="198.18.1.20")  # fmt: skip
    with w.kvip():
        found = wait_for(
            lambda: [e for e in events(w, "default", bad) if e["reason"] == "InvalidPool"],
            what="the InvalidPool event",
        )
        assert found[0]["type"] == "Warning"
        assert "198.18.1.10" in found[0]["message"]


def test_declined_address_is_reported_then_reset_by_the_operator(world: World) -> None:
    w = world
    w.create_pool(w.net("net-a"))
    mac = "52:54:00:00:21:01"
    with w.kvip():
        w.create_vm("vm", [("nic", "net-a", mac)])
        ip = w.ips("vm")[mac]
        intruder = w.lab.add_client("52:54:00:00:21:99")
        w.lab.add_address(intruder.netns, intruder.ifname, f"{ip}/16")
        vm_nic = w.lab.add_client(mac)
        with pytest.raises(NoLeaseError):
            # udhcpc ARP-probes the offer, finds the intruder, DECLINEs and retries.
            run_udhcpc(vm_nic, timeout=8, arp_check=True)
        status = wait_for(
            lambda: (s := nic_status(w, "vm")) and s["status"] == "ERROR" and s,
            what="the decline in the vmnetcfg status",
        )
        assert "declined" in status["message"] and "kvip vmnetcfg reset" in status["message"]
        assert any(e["reason"] == "Declined" for e in events(w, w.namespace, "vm"))
        with pytest.raises(NoLeaseError):
            run_udhcpc(vm_nic, timeout=4)  # not offered while declined

        w.lab.flush_addresses(intruder)
        result = kvip_cli(w, "vmnetcfg", "reset", f"{w.namespace}/vm")
        assert result.returncode == 0, result.stderr
        assert "reset requested" in result.stdout
        wait_for(
            lambda: (s := nic_status(w, "vm")) and s["status"] == "OK",
            what="the status to recover",
        )
        assert lease_ip(vm_nic) == ip


def test_kvip_pools_lists_usage(world: World) -> None:
    w = world
    pool = w.create_pool(w.net("net-a"))
    with w.kvip():
        w.create_vm("vm", [("nic", "net-a", "52:54:00:00:22:01")])
        w.ips("vm")
        wait_for(lambda: (w.pool(pool).get("status") or {}).get("ipv4", {}).get("used") == 1,
                 what="pool status")  # fmt: skip
    result = kvip_cli(w, "pools")
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["POOL", "NETWORK", "SUBNET", "USED", "AVAILABLE", "READY"]
    assert [pool, w.net("net-a"), "198.18.0.0/16", "1", "240", "True"] in [r.split() for r in rows]


def test_cleanup_removes_orphans_while_kvip_is_down(world: World) -> None:
    w = world
    w.create_pool(w.net("net-a"))
    with w.kvip():
        w.create_vm("keep", [("nic", "net-a", "52:54:00:00:23:01")])
        w.create_vm("gone", [("nic", "net-a", "52:54:00:00:23:02")])
        w.ips("keep")
        gone_ip = w.ips("gone")["52:54:00:00:23:02"]
    w.delete_vm("gone")
    dry = kvip_cli(w, "cleanup", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would remove vmnetcfg {w.namespace}/gone (VM gone; frees {gone_ip})" in dry.stdout
    assert f"{w.namespace}/keep" not in dry.stdout
    assert w.cfg("gone") is not None
    done = kvip_cli(w, "cleanup")
    assert done.returncode == 0 and "removing vmnetcfg" in done.stdout
    wait_for(lambda: w.cfg("gone") is None, what="the orphan to go")
    assert w.cfg("keep") is not None


def test_two_shards_split_the_pools_and_share_a_vm(world: World) -> None:
    w = world
    shard_b = f"kvip-test={unique('shard')}"
    w.create_pool(w.net("net-a"))
    name_b = unique("pool")
    body = objects.ippool(name_b, w.net("net-b"), selector=shard_b, interface="eth2",
                     server="198.19.0.1", subnet="198.19.0.0/16", start="198.19.0.10",
                     end="198.19.0.20")  # fmt: skip
    w.custom.create_cluster_custom_object("kubevirtiphelper.k8s.binbash.org", "v1", "ippools",
                                          body)  # fmt: skip
    w.pools.append(name_b)
    mac_a, mac_b = "52:54:00:00:24:0a", "52:54:00:00:24:0b"
    other = RunningKvip(w.api.kubeconfig, selector=shard_b, netns=w.lab.server)
    with w.kvip() as a, other as b:
        assert a.controller is not None and b.controller is not None
        assert list(b.controller.pools) == [name_b]
        assert name_b not in a.controller.pools
        w.create_vm("vm", [("nic-a", "net-a", mac_a), ("nic-b", "net-b", mac_b)])
        assert w.ips("vm", count=2) == {mac_a: "198.18.0.10", mac_b: "198.19.0.10"}
        statuses = wait_for(
            lambda: len(s := ((w.cfg("vm") or {}).get("status") or {}).get("networkconfig")
                        or []) == 2 and s,
            what="both shards' statuses",
        )  # fmt: skip
        assert {e["macaddress"]: e["status"] for e in statuses} == {mac_a: "OK", mac_b: "OK"}
        assert lease_ip(w.lab.add_client(mac_b, port="eth2")) == "198.19.0.10"
