"""Diagnostics through the whole of kvip: the API server, the controller, a real
client, JSON log lines with their fields, and /debug over the controller's pools
(the probe server wired as `kvip run` wires it)."""

from __future__ import annotations

import json
import logging
import urllib.request
from typing import Any

import pytest
import trio
from kubernetes import client
from prometheus_client.registry import CollectorRegistry

from kvip.app._http import ProbeServer
from kvip.app._logging import JsonFormatter
from tests.lab.dhcpclients import NoLeaseError, run_udhcpc
from tests.lab.e2e_world import World, lease_ip
from tests.lab.kvip_rig import RunningKvip, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.apiserver]


def probes_for(kvip: RunningKvip) -> str:
    controller = kvip.controller
    assert controller is not None
    probes = ProbeServer(
        registry=CollectorRegistry(),
        ready=lambda: (True, "ok"),
        address="127.0.0.1",
        port=0,
        pools=lambda: {n: h.actor for n, h in controller.pools.items() if h.actor is not None},
    )

    async def start() -> None:
        trio.lowlevel.spawn_system_task(probes.run)

    kvip.call(start)
    port = wait_for(lambda: probes.bound_port, what="the probe server")
    return f"http://127.0.0.1:{port}"


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_allocation_lines_are_structured_and_debug_follows_the_vm(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    w = world
    caplog.set_level(logging.DEBUG, logger="kvip")
    mac = "52:54:00:00:31:01"
    pool = w.create_pool(w.net("net-a"))
    with w.kvip() as kvip:
        w.create_vm("vm", [("nic", "net-a", mac)])
        ip = w.ips("vm")[mac]
        got = lease_ip(w.lab.add_client(mac))
        base = probes_for(kvip)
        seen = get(f"{base}/debug/mac/{mac}")
        pools = get(f"{base}/debug/pools")
    assert got == ip
    reserved = [r for r in caplog.records if "reserved for" in r.getMessage()]
    entry = json.loads(JsonFormatter().format(reserved[0]))
    assert {k: entry[k] for k in ("vm", "ip", "mac", "network", "pool")} == {
        "vm": f"{w.namespace}/vm",
        "ip": ip,
        "mac": mac,
        "network": w.net("net-a"),
        "pool": pool,
    }
    (found,) = seen["pools"]
    assert found["pool"] == pool and found["reservation"]["ip"] == ip
    assert found["reservation"]["owner"].startswith(f"{w.namespace}/vm")
    assert [(h["received"], h["answer"], h["ip"]) for h in found["history"][-2:]] == [
        ("DISCOVER", "OFFER", ip),
        ("REQUEST", "ACK", ip),
    ]
    assert pool in [p["pool"] for p in pools["pools"]]


def test_dhcp_from_an_unknown_mac_is_an_event_and_a_condition_on_the_ippool(
    world: World, kube_client: client.ApiClient
) -> None:
    """Issue 14: a MAC with no reservation on a pool's wire is not answered, and
    that is said on the IPPool: an Event at its first sighting and the
    UnknownClients condition (besides the log line and the history)."""
    w = world
    pool = w.create_pool(w.net("net-a"))
    stranger = "52:54:00:00:31:99"
    with w.kvip():
        with pytest.raises(NoLeaseError):
            run_udhcpc(w.lab.add_client(stranger), timeout=3)

        def condition() -> dict[str, Any] | None:
            conditions = (w.pool(pool).get("status") or {}).get("conditions") or []
            return next((c for c in conditions if c["type"] == "UnknownClients"), None)

        shown = wait_for(condition, what="the UnknownClients condition")
        core = client.CoreV1Api(kube_client)

        def event() -> bool:
            items = core.list_namespaced_event(
                "default", field_selector=f"involvedObject.name={pool}"
            ).items
            return any(e.reason == "UnknownClient" and stranger in (e.message or "") for e in items)

        wait_for(event, what="an UnknownClient Event on the IPPool")
    assert shown["status"] == "True" and shown["message"].startswith("1 MACs with no reservation")
