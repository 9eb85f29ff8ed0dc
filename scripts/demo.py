"""`make demo`: kvip's main job on one machine, with nothing but this repo.

A local etcd + kube-apiserver, kvip's CRDs, an IPPool and a KubeVirt VM
object; then `kvip run` (the real entry point, as a child process) serving
the pool inside a private network namespace, and a real DHCP client (busybox
udhcpc) in another namespace getting the VM's reserved address. Prints the
objects and cleans everything up, also on Ctrl-C.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

from tests.lab import objects
from tests.lab.apiserver import ApiServer, missing_binaries
from tests.lab.dhcpclients import run_udhcpc
from tests.lab.k8s_crds import KUBEVIRT_CRDS, KVIP_CRDS, install_crds
from tests.lab.netlab import netlab
from tests.lab.objects import GROUP, VERSION

REPO = Path(__file__).resolve().parent.parent

NAMESPACE = "demo"
VM_MAC = "52:54:00:de:30:01"

POOL = objects.ippool(
    "demo-pool",
    f"{NAMESPACE}/vlan100",
    options="bare",
    server="198.18.0.2",
    start="198.18.0.10",
    end="198.18.0.250",
    exclude=["198.18.0.11"],
    router="198.18.0.1",
    dns=["198.18.0.53"],
    domainname="demo.example",
    domainsearch=["demo.example"],
    leasetime=300,
)
VM = objects.vm("demo-vm", NAMESPACE, [("vlan100", "vlan100", VM_MAC)])


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def show(kind: str, body: Any) -> None:
    for key in ("managedFields",):
        body.get("metadata", {}).pop(key, None)
    print(f"--- {kind}\n" + yaml.safe_dump(body, sort_keys=False), flush=True)


def wait_for_ip(custom: Any, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            cfg = custom.get_namespaced_custom_object(
                GROUP, VERSION, NAMESPACE, "virtualmachinenetworkconfigs", "demo-vm"
            )
            for entry in cfg.get("spec", {}).get("networkconfig", []):
                if entry.get("ipaddress"):
                    return str(entry["ipaddress"])
        except client.ApiException as exc:
            if exc.status != 404:
                raise
        time.sleep(0.2)
    raise SystemExit("demo: kvip did not reserve an address within 30 s")


def main() -> int:
    if os.geteuid() != 0:
        print("demo: needs root (network namespaces)", file=sys.stderr)
        return 1
    if missing_binaries():
        say("First run: building etcd + kube-apiserver from Debian's source (about 7 minutes)")
        subprocess.run(["bash", str(REPO / "scripts" / "build-apiserver.sh")], check=True)
    say("Starting a local etcd and kube-apiserver on 127.0.0.1")
    with ApiServer() as api, netlab("kvdemo", server_address="198.18.0.2/16", veth=True) as lab:
        print(f"API server {api.url} ready in {api.startup_seconds:.1f}s")
        api_client = config.new_client_from_config(config_file=str(api.kubeconfig))  # type: ignore[no-untyped-call]
        install_crds(api_client, KVIP_CRDS, KUBEVIRT_CRDS)
        custom: Any = client.CustomObjectsApi(api_client)
        client.CoreV1Api(api_client).create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE))
        )
        say(f"A private wire: namespace {lab.server} holds eth1 (198.18.0.2/16), the pod's NIC")
        vm_nic = lab.add_client(VM_MAC)
        print(f"the VM's NIC: {vm_nic.ifname} ({VM_MAC}) in namespace {vm_nic.netns}")

        say("Creating IPPool demo-pool and VirtualMachine demo/demo-vm")
        custom.create_cluster_custom_object(GROUP, VERSION, "ippools", POOL)
        custom.create_namespaced_custom_object(
            "kubevirt.io", "v1", NAMESPACE, "virtualmachines", VM
        )

        say("Running `kvip run` (LOGLEVEL=INFO)")
        env = {**os.environ, "LOGLEVEL": "INFO", "KUBECONFIG": str(api.kubeconfig)}
        kvip = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kvip",
                "run",
                "--socket-netns",
                lab.server,
                "--metrics-address",
                "127.0.0.1",
                "--metrics-port",
                "0",
            ],
            env=env,
        )
        try:
            ip = wait_for_ip(custom)
            print(f"vmnetcfg demo/demo-vm records {ip} for {VM_MAC}", flush=True)
            say("A real DHCP client (udhcpc) on the VM's NIC asks for an address")
            lease = run_udhcpc(vm_nic, timeout=15)
            print(
                f"udhcpc got {lease.ip} mask {lease.mask} router {','.join(map(str, lease.router))}"
                f" dns {','.join(map(str, lease.dns))} domain {lease.domain}"
                f" lease {lease.lease_time}s from server {lease.server_id}",
                flush=True,
            )
            if str(lease.ip) != ip:
                print(f"demo: FAILED: the client got {lease.ip}, kvip reserved {ip}")
                return 1
            time.sleep(1)  # let the status writer catch up
            say("The objects")
            show("IPPool", custom.get_cluster_custom_object(GROUP, VERSION, "ippools", "demo-pool"))
            show(
                "VirtualMachineNetworkConfig",
                custom.get_namespaced_custom_object(
                    GROUP, VERSION, NAMESPACE, "virtualmachinenetworkconfigs", "demo-vm"
                ),
            )
            say(f"OK: the VM's client got its reserved address {ip}")
        finally:
            kvip.send_signal(signal.SIGTERM)
            kvip.wait(timeout=30)
        say("Cleaning up: kvip stopped, namespaces and the API server go next")
    print(json.dumps({"demo": "ok", "ip": ip}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
