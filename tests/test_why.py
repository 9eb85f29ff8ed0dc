"""`kvip why NAMESPACE/VM` (issue 14) from the command line, against the real API
server and a running `kvip run`: it follows each NIC to its pool (or says why
there is none), its record and status, and names the leader and the replicas."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.lab.e2e_world import World
from tests.lab.kvip_process import KvipProcess
from tests.lab.kvip_rig import unique, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.apiserver, pytest.mark.slow]


def kvip_why(w: World, vm: str, lease: str, *extra: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "kvip", "why", f"{w.namespace}/{vm}",
         "--kubeconfig", str(w.api.kubeconfig), "--lease-name", lease,
         "--lease-namespace", w.namespace, *extra],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_why_follows_each_nic_to_its_pool_record_and_status(world: World) -> None:
    w = world
    pool = w.create_pool(w.net("net-a"))
    lease = unique("lease")
    mac = "52:54:00:00:13:01"
    with KvipProcess(
        w.api.kubeconfig, "--socket-netns", w.lab.server, "--lease-name", lease,
        "--lease-namespace", w.namespace,
    ) as kvip:  # fmt: skip
        wait_for(kvip.is_leader, what="kvip to lead")
        w.create_vm("vm", [("served", "net-a", mac), ("nomac", "net-a", None),
                           ("elsewhere", "no-pool", "52:54:00:00:13:02")])  # fmt: skip
        ip = w.ips("vm")[mac]

        def told() -> str | None:
            out = kvip_why(w, "vm", lease)
            shown = ("has no MAC address", "no IPPool serves", f"serves {pool} as 198.18.0.1")
            return out if all(text in out for text in shown) else None

        out = wait_for(told, timeout=30, what="kvip why to show every NIC's status")
    assert f"VM {w.namespace}/vm" in out
    assert "leader: " in out and "none" not in out.split("leader: ")[1].split("\n")[0]
    served = out.split("NIC served:")[1].split("\nNIC ")[0]
    assert f"IPPool {pool}" in served and "Ready=True" in served and "Serving=True" in served
    assert f"record:   {ip}" in served and "status:   OK" in served
    nomac = out.split("NIC nomac:")[1].split("\nNIC ")[0]
    assert "MAC (none)" in nomac and "status:   ERROR" in nomac
    elsewhere = out.split("NIC elsewhere:")[1]
    assert f"no IPPool has networkname {w.net('no-pool')}" in elsewhere
    replicas = out.split("replicas: ")[1].split("\n")[0]
    assert f"serves {pool} as 198.18.0.1" in replicas
    assert "Allocated" in out  # the VM's Events
