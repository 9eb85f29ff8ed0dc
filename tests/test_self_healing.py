"""kvip repairs what another writer put into the statuses it owns, and keeps the
durable records right across pool changes. Each test pins a bug the chaos
scenarios (tests/chaos) found."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from kvip.k8s import VMNETCFGS, Conflict, KubeError, Unavailable
from tests.lab import objects
from tests.lab.e2e_world import World, lease_ip
from tests.lab.kvip_rig import wait_for
from tests.lab.objects import CFGS, GROUP, VERSION

pytestmark = [pytest.mark.netns, pytest.mark.apiserver]

MERGE = "application/merge-patch+json"


def pool_ipv4(w: World, name: str) -> dict[str, Any]:
    ipv4: dict[str, Any] = w.pool(name).get("status", {}).get("ipv4", {})
    return ipv4


def cfg_status(w: World, name: str) -> list[dict[str, Any]]:
    status: list[dict[str, Any]] = ((w.cfg(name) or {}).get("status") or {}).get(
        "networkconfig"
    ) or []
    return status


def quiet(w: World, pool: str) -> None:
    """Wait until kvip has written its last status: a later foreign write is not
    masked by one kvip was going to make anyway."""
    versions = [w.pool(pool)["metadata"]["resourceVersion"]]

    def unchanged() -> bool:
        time.sleep(0.5)
        versions.append(w.pool(pool)["metadata"]["resourceVersion"])
        return len(versions) > 3 and len(set(versions[-3:])) == 1

    wait_for(unchanged, what="kvip to stop writing the pool status")


def test_pool_status_heals_after_a_foreign_write(world: World) -> None:
    w = world
    pool = w.create_pool(w.net("net-a"), start="198.18.0.10", end="198.18.0.20")
    mac = "52:54:00:00:20:01"
    with w.kvip():
        w.create_vm("vm", [("nic", "net-a", mac)])
        assert w.ips("vm") == {mac: "198.18.0.10"}
        owner = f"{w.namespace}/vm [{mac}]"
        wait_for(lambda: pool_ipv4(w, pool).get("used") == 1, what="pool status")
        quiet(w, pool)
        # Another writer claims an address for a VM that does not exist.
        bogus = {"status": {"ipv4": {"allocated": {"198.18.0.15": "x/ghost [02:00:00:00:00:01]"},
                                     "used": 999}}}  # fmt: skip
        w.custom.patch_cluster_custom_object_status(
            GROUP, VERSION, "ippools", pool, bogus, _content_type=MERGE
        )
        healed = wait_for(
            lambda: (ipv4 := pool_ipv4(w, pool)).get("used") == 1 and ipv4,
            what="the pool status to be repaired",
        )
        assert {ip: who for ip, who in healed["allocated"].items() if who != "EXCLUDED"} == {
            "198.18.0.10": owner
        }


def test_vmnetcfg_status_drops_an_entry_written_by_another_writer(world: World) -> None:
    w = world
    w.create_pool(w.net("net-a"))
    mac = "52:54:00:00:21:01"
    with w.kvip():
        w.create_vm("vm", [("nic", "net-a", mac)])
        w.ips("vm")
        mine = wait_for(lambda: cfg_status(w, "vm"), what="vmnetcfg status")
        assert [entry["macaddress"] for entry in mine] == [mac]
        ghost = {"networkname": w.net("net-a"), "macaddress": "02:00:00:00:00:02",
                 "status": "OK", "message": "not kvip's"}  # fmt: skip
        w.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, w.namespace, CFGS, "vm",
            {"status": {"networkconfig": [*mine, ghost]}}, _content_type=MERGE,
        )  # fmt: skip
        wait_for(
            lambda: [e["macaddress"] for e in cfg_status(w, "vm")] == [mac],
            what="the ghost entry to be removed",
        )


def test_an_address_that_fits_again_goes_back_to_its_vm_not_to_a_new_one(world: World) -> None:
    w = world
    pool = w.create_pool(w.net("net-a"), start="198.18.0.10", end="198.18.0.20")
    mac_a, mac_b, mac_c = "52:54:00:00:22:01", "52:54:00:00:22:02", "52:54:00:00:22:03"

    def set_end(end: str) -> None:
        w.custom.patch_cluster_custom_object(
            GROUP, VERSION, "ippools", pool, {"spec": {"ipv4config": {"pool": {"end": end}}}},
            _content_type=MERGE,
        )  # fmt: skip

    with w.kvip():
        w.create_vm("vm-a", [("nic", "net-a", mac_a)])
        assert w.ips("vm-a") == {mac_a: "198.18.0.10"}
        w.create_vm("vm-b", [("nic", "net-a", mac_b)])
        assert w.ips("vm-b") == {mac_b: "198.18.0.11"}
        # vm-b's address leaves the range: kept in its record, reported, not served.
        set_end("198.18.0.10")
        wait_for(lambda: pool_ipv4(w, pool).get("used") == 1, what="vm-b's address evicted")
        wait_for(
            lambda: [e["status"] for e in cfg_status(w, "vm-b")] == ["ERROR"],
            what="vm-b's eviction reported",
        )
        set_end("198.18.0.20")
        wait_for(
            lambda: (ipv4 := pool_ipv4(w, pool)).get("used", 0) + ipv4.get("available", 0) == 11,
            what="the pool grown back",
        )
        w.create_vm("vm-c", [("nic", "net-a", mac_c)])
        assert w.ips("vm-c")[mac_c] != "198.18.0.11", "vm-b's recorded address given away"
        assert w.ips("vm-b") == {mac_b: "198.18.0.11"}
        wait_for(lambda: pool_ipv4(w, pool).get("used") == 3, what="all three held")
        assert wait_for(
            lambda: [e["status"] for e in cfg_status(w, "vm-b")] == ["OK"] or None,
            what="vm-b served again",
        )


@pytest.mark.parametrize("error", [Conflict, Unavailable])
def test_a_claim_whose_write_failed_is_not_leaked_when_the_mac_moves_on(
    world: World, error: type[KubeError]
) -> None:
    """The vmnetcfg write of a new MAC's address fails (a 409, or no answer: the
    write may or may not have landed), and the MAC changes again before the
    retry: the address claimed for the in-between MAC was never recorded, so
    nothing would ever release it."""
    w = world
    pool = w.create_pool(w.net("net-a"), start="198.18.0.10", end="198.18.0.20")
    mac1, mac2, mac3 = "52:54:00:00:23:01", "52:54:00:00:23:02", "52:54:00:00:23:03"
    with w.kvip() as kvip:
        w.create_vm("vm", [("nic", "net-a", mac1)])
        assert w.ips("vm") == {mac1: "198.18.0.10"}
        assert kvip.controller is not None
        kube = kvip.controller.kube
        replace = kube.replace
        fired: list[bool] = []

        def conflict_once(resource: Any, body: Any, *, status: bool = False) -> Any:
            if resource == VMNETCFGS and not status and not fired:
                fired.append(True)
                w.patch_vm("vm", mac_patch("vm", mac3))  # the MAC moves on meanwhile
                raise error("injected by the test")
            return replace(resource, body, status=status)

        kube.replace = conflict_once  # type: ignore[method-assign]
        w.patch_vm("vm", mac_patch("vm", mac2))
        wait_for(lambda: mac3 in w.ips("vm"), what="the third MAC recorded")
        assert fired
        owner = f"{w.namespace}/vm [{mac3}]"

        def held() -> list[str]:
            ipv4 = pool_ipv4(w, pool)
            return [who for who in (ipv4.get("allocated") or {}).values() if who != "EXCLUDED"]

        # Before the fix the in-between MAC's address stayed held for good.
        wait_for(lambda: held() == [owner], what="only the third MAC's address held")
        assert pool_ipv4(w, pool)["used"] == 1


def mac_patch(name: str, mac: str) -> dict[str, Any]:
    body = objects.vm(name, "unused", [("nic", "net-a", mac)])
    interfaces = body["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"]
    return {"spec": {"template": {"spec": {"domain": {"devices": {"interfaces": interfaces}}}}}}


def test_a_mac_listed_twice_in_a_vmnetcfg_keeps_its_first_address(world: World) -> None:
    """A hand-edited vmnetcfg listing one MAC twice: kvip restores and serves the
    first entry, rewrites the record with one, and the second address is free."""
    w = world
    pool = w.create_pool(w.net("net-a"), start="198.18.0.10", end="198.18.0.20")
    mac = "52:54:00:00:24:01"
    entries = [(w.net("net-a"), mac, ip) for ip in ("198.18.0.15", "198.18.0.16")]
    cfg = objects.vmnetcfg("twice", entries, namespace=w.namespace)
    w.custom.create_namespaced_custom_object(GROUP, VERSION, w.namespace, CFGS, cfg)
    w.create_vm("twice", [("nic", "net-a", mac)])  # already there when kvip starts
    with w.kvip():
        wait_for(
            lambda: len((w.cfg("twice") or {})["spec"]["networkconfig"]) == 1,
            what="the record rewritten with one entry",
        )
        assert w.ips("twice") == {mac: "198.18.0.15"}
        wait_for(lambda: pool_ipv4(w, pool).get("used") == 1, what="one address held")
        w.create_vm(
            "next",
            [("nic", "net-a", "52:54:00:00:24:02")],
            annotations={f"{GROUP}/static-ip": json.dumps({"nic": "198.18.0.16"})},
        )
        assert w.ips("next") == {"52:54:00:00:24:02": "198.18.0.16"}
        assert lease_ip(w.lab.add_client(mac)) == "198.18.0.15"
