"""kvip as a process: metrics, probes, SIGTERM, and failover (every replica serves,
the Lease holder writes)."""

from __future__ import annotations

import re
import socket
import subprocess
from typing import Any, cast

import pytest
from kubernetes import client

from kvip import __version__
from kvip.actors._replica_card import card_annotations, card_labels, replica_lease_name
from tests.lab.e2e_world import World, lease_ip
from tests.lab.kvip_process import kvip_process
from tests.lab.kvip_rig import unique, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.apiserver, pytest.mark.slow]


def dhcp_listeners(w: World) -> str:
    """Who holds UDP port 67 in the server namespace (ss prints the owning pids)."""
    out = subprocess.run(
        ["ip", "netns", "exec", w.lab.server, "ss", "-Hulpn", "sport", "=", ":67"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout


def metric(body: str, name: str, **labels: str) -> float | None:
    for line in body.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_and_probes(world: World) -> None:
    w = world
    pool = w.create_pool(w.net("net-a"))
    mac = "52:54:00:00:10:01"
    with kvip_process(w, unique("lease")) as kvip:
        assert kvip.get("/healthz") == (200, "ok\n")
        wait_for(lambda: kvip.get("/readyz")[0] == 200, what="readiness")
        # Ready means serving; it leads once it has taken the Lease (a moment later).
        wait_for(lambda: "(leader)" in kvip.get("/readyz")[1], what="the lead")
        w.create_vm("vm", [("nic", "net-a", mac)])
        ip = w.ips("vm")[mac]
        assert lease_ip(w.lab.add_client(mac)) == ip
        status, body = kvip.get("/metrics")
        assert status == 200
        network = w.net("net-a")
        labels = {"ippool": pool, "subnet": "198.18.0.0/16", "network": network}
        assert metric(body, "kubevirtiphelper_ippool_used", **labels) == 1
        assert metric(body, "kubevirtiphelper_ippool_available", **labels) == 240
        vm = f"{w.namespace}/vm"
        assert metric(body, "kubevirtiphelper_vmnetcfg_status", vm=vm, ip=ip, status="OK") == 1
        assert metric(body, "kvip_dhcp_sent_total", ippool=pool, type="ACK") == 1
        assert metric(body, "kvip_dhcp_received_total", ippool=pool, type="DISCOVER") == 1
        assert metric(body, "kvip_dhcp_reply_latency_seconds_count", ippool=pool) == 2
        assert metric(body, "kubevirtiphelper_app_logs", loglevel="error") == 0
        assert metric(body, "kvip_leader") == 1
        # Issue 14's metrics, from the process itself.
        assert metric(body, "kvip_build_info", version=__version__) == 1
        assert (metric(body, "process_resident_memory_bytes") or 0) > 0
        assert (metric(body, "kvip_workqueue_wait_seconds_count") or 0) >= 1
        assert metric(body, "kvip_reconcile_errors_total", reason="unexpected") == 0
        assert metric(body, "kvip_vmnetcfg_nics", status="OK") == 1
        assert kvip.get("/nope")[0] == 404
        assert kvip.stop() == 0
    assert "released lease" in kvip.log()


def test_every_replica_serves_and_a_follower_leads_when_the_leader_is_killed(
    world: World,
) -> None:
    w = world
    w.create_pool(w.net("net-a"))
    mac, later = "52:54:00:00:11:01", "52:54:00:00:11:02"
    lease = unique("lease")
    first = kvip_process(w, lease)
    second = kvip_process(w, lease)
    with first, second:
        leader, follower = wait_for(
            lambda: (first, second) if first.is_leader() else (second, first) if second.is_leader()
            else None,
            what="one leader",
        )  # fmt: skip
        w.create_vm("vm", [("nic", "net-a", mac)])
        ip = w.ips("vm")[mac]
        client = w.lab.add_client(mac)
        assert lease_ip(client) == ip
        # The follower serves too (its own socket), and is ready as such.
        wait_for(lambda: follower.get("/readyz")[0] == 200, what="the follower to be ready")
        assert "follower" in follower.get("/readyz")[1]
        listeners = dhcp_listeners(w)
        assert f"pid={leader.pid}," in listeners and f"pid={follower.pid}," in listeners

        leader.kill()
        # Before any takeover, the follower answers for what is recorded.
        assert lease_ip(client, timeout=5) == ip
        assert not follower.is_leader()
        wait_for(follower.is_leader, timeout=15, what="the follower to take the lease")
        assert re.search(r"became the leader", follower.log())
        # The new leader claims and writes: a new VM gets an address.
        w.create_vm("vm2", [("nic", "net-a", later)])
        assert lease_ip(w.lab.add_client(later)) == w.ips("vm2")[later]


def test_sigterm_releases_the_lease_for_an_immediate_takeover(world: World) -> None:
    w = world
    w.create_pool(w.net("net-a"))
    lease = unique("lease")
    first = kvip_process(w, lease, "--lease-duration", "30", "--renew-deadline", "20")
    with first:
        wait_for(first.is_leader, what="the first kvip to lead")
        second = kvip_process(w, lease, "--lease-duration", "30", "--renew-deadline", "20")
        with second:
            # A follower is ready once it serves its pools.
            wait_for(lambda: second.get("/readyz")[0] == 200, what="the follower to be ready")
            assert "follower" in second.get("/readyz")[1]
            assert first.stop() == 0
            # Released on SIGTERM: the follower need not wait out the 30 s lease.
            wait_for(second.is_leader, timeout=10, what="the follower to lead")
            assert "released lease" in first.log()


def test_the_ippool_status_lists_the_replicas_and_no_replica_address_is_handed_out(
    world: World, kube_client: client.ApiClient
) -> None:
    """Every replica's heartbeat Lease says which address it answers as; the
    leader shows them in the IPPool status, and an address inside the range
    (here a third replica's, announced by hand) is held by every pool, shown
    in a condition and an Event, and never given to a VM."""
    w = world
    pool = w.create_pool(w.net("net-a"), start="198.18.0.10", end="198.18.0.20")
    lease = unique("lease")
    far = "far-replica"
    body = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": replica_lease_name(lease, far),
            "labels": card_labels(lease),
            "annotations": card_annotations({pool: "198.18.0.10"}, None),
        },
        "spec": {"holderIdentity": far, "leaseDurationSeconds": 3600},
    }
    leases = client.CoordinationV1Api(kube_client)
    leases.create_namespaced_lease(w.namespace, cast(Any, body))
    first, second = kvip_process(w, lease), kvip_process(w, lease)
    with first, second:

        def listed() -> list[dict[str, str]] | None:
            replicas = (w.pool(pool).get("status") or {}).get("replicas") or []
            return replicas if len(replicas) == 3 else None

        replicas = wait_for(listed, timeout=30, what="three replicas in the IPPool status")
        assert {r["name"]: r["address"] for r in replicas} == {
            f"{socket.gethostname()}-{first.pid}": "198.18.0.1",
            f"{socket.gethostname()}-{second.pid}": "198.18.0.1",
            far: "198.18.0.10",
        }
        status = w.pool(pool)["status"]
        assert status["ipv4"]["allocated"]["198.18.0.10"] == "kvip replica address"
        condition = next(
            c for c in status["conditions"] if c["type"] == "ReplicaAddressesOutsideRange"
        )
        assert (condition["status"], condition["reason"]) == ("False", "InsideRange")
        core = client.CoreV1Api(kube_client)

        def reported() -> bool:
            selector = f"involvedObject.name={pool}"
            events = core.list_namespaced_event("default", field_selector=selector).items
            return any(e.reason == "ReplicaAddressInRange" for e in events)

        wait_for(reported, timeout=15, what="a ReplicaAddressInRange Event on the IPPool")
        w.create_vm("vm", [("nic", "net-a", "52:54:00:00:12:01")])
        assert w.ips("vm") == {"52:54:00:00:12:01": "198.18.0.11"}
