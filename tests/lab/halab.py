"""The HA lab of issue 12: one L2 segment, three `kvip run` replicas, real clients.

Layout (every namespace made and deleted by netlab)::

    switch netns: bridge eth1 198.18.0.1/16 (the VMs' router)
      +-- replica r0 netns: eth1 198.18.0.2/16    kvip sockets (--socket-netns)
      +-- replica r1 netns: eth1 198.18.0.3/16
      +-- replica r2 netns: eth1 198.18.0.4/16
      +-- one netns per VM: eth0 with the VM's MAC (real clients, the probe, the new VM)

Each replica is a `kvip run` process in the test's own namespace (it reaches
the local API server on loopback) that opens its DHCP sockets in its replica
namespace, with short Lease timings. The IPPool (``leasetime: 10``) names
replica r0's address as ``serverip``: a single-replica install scaled out to
three. Every replica has an address of its own on the segment; what kvip does
with it is kvip's business (the lab measures, it does not assume).
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.lab import objects
from tests.lab.apiserver import ApiServer
from tests.lab.dhcpsend import wait_for_wire
from tests.lab.haclients import STARTERS, AddressWatch, Watched, available
from tests.lab.haprobe import Probe
from tests.lab.kvip_process import KvipProcess
from tests.lab.netlab import Client, Lab, LabError, netlab
from tests.lab.objects import CFGS, GROUP, VERSION, VMS

SWITCH_ADDRESS = "198.18.0.1/16"
REPLICA_ADDRESSES = ("198.18.0.2/16", "198.18.0.3/16", "198.18.0.4/16")
SERVER_IP = "198.18.0.2"
LEASE_TIME = 10
#: The Lease timings of every replica (kvip run's flags), short so that a run is short.
LEASE_DURATION = 6.0
ELECTION = ("--lease-duration", "6", "--renew-deadline", "4", "--retry-period", "1")
NETWORK = "vmnet"


def mac(n: int) -> str:
    return f"52:54:00:4a:00:{n:02x}"


@dataclass
class Replica:
    """One kvip replica: its namespace on the segment and its current process."""

    name: str
    netns: str
    address: IPv4Interface
    process: KvipProcess | None = None
    #: Logs of this replica's ended processes (tails), oldest first.
    logs: list[str] = field(default_factory=list)

    def is_leader(self) -> bool:
        if self.process is None or self.process.proc.poll() is not None:
            return False
        try:
            return self.process.is_leader()
        except OSError:
            return False

    def ready(self) -> bool:
        if self.process is None or self.process.proc.poll() is not None:
            return False
        try:
            return self.process.get("/readyz")[0] == 200
        except OSError:
            return False


class HaLab:
    """The running lab. Build it with ``open_ha_lab``; everything stops on exit."""

    def __init__(self, api: ApiServer, lab: Lab, work: Path) -> None:
        self.api = api
        self.lab = lab
        self.work = work
        api_client = config.new_client_from_config(config_file=str(api.kubeconfig))  # type: ignore[no-untyped-call]
        self.api_client: client.ApiClient = api_client
        self.custom: Any = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.namespace = f"kvip-ha-{uuid.uuid4().hex[:6]}"
        self.selector = f"kvip-ha={uuid.uuid4().hex[:8]}"
        self.pool = f"ha-{uuid.uuid4().hex[:6]}"
        self.replicas: list[Replica] = []
        self.watched: list[Watched] = []
        self.watch: AddressWatch | None = None
        self.probe: Probe | None = None
        #: Where each ended replica process's whole log is copied (None: only tails kept).
        self.log_dir: Path | None = None
        self._vms = 0
        self._ended = 0

    # --- the API side ----------------------------------------------------------------

    def create_objects(self) -> None:
        self.core.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=self.namespace))
        )
        body = objects.ippool(
            self.pool,
            f"{self.namespace}/{NETWORK}",
            selector=self.selector,
            server=SERVER_IP,
            router=SWITCH_ADDRESS.split("/")[0],
            start="198.18.1.10",
            end="198.18.1.250",
            leasetime=LEASE_TIME,
        )
        self.custom.create_cluster_custom_object(GROUP, VERSION, "ippools", body)

    def create_vm(self, vm_mac: str) -> str:
        self._vms += 1
        name = f"vm-{self._vms}"
        body = objects.vm(name, self.namespace, [("nic", NETWORK, vm_mac)])
        self.custom.create_namespaced_custom_object(*VMS[:2], self.namespace, VMS[2], body)
        return name

    def recorded(self, vm: str) -> IPv4Address | None:
        """The address the VM's vmnetcfg records, if any yet."""
        try:
            cfg = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, CFGS, vm)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        for entry in cfg.get("spec", {}).get("networkconfig", []):
            if entry.get("ipaddress"):
                return IPv4Address(entry["ipaddress"])
        return None

    def wait_recorded(self, vm: str, *, timeout: float = 60) -> IPv4Address:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (found := self.recorded(vm)) is not None:
                return found
            time.sleep(0.2)
        raise LabError(f"no address recorded for {vm} within {timeout}s")

    # --- replicas --------------------------------------------------------------------

    def add_replicas(self, count: int = 3) -> None:
        for index, address in enumerate(REPLICA_ADDRESSES[:count]):
            wire = self.lab.add_client(f"02:00:00:4a:01:{index:02x}", ifname="eth1")
            self.lab.add_address(wire.netns, "eth1", address)
            wait_for_wire(self.lab, wire)
            self.replicas.append(Replica(f"r{index}", wire.netns, IPv4Interface(address)))

    def start(self, replica: Replica) -> None:
        replica.process = KvipProcess(
            self.api.kubeconfig,
            "--socket-netns", replica.netns,
            "--pool-selector", self.selector,
            "--lease-name", "kvip-ha",
            "--lease-namespace", self.namespace,
            "--workers", "2",
            *ELECTION,
        )  # fmt: skip

    def _retire(self, replica: Replica) -> None:
        assert replica.process is not None
        replica.process.stop()
        text = replica.process.log()
        replica.logs.append("\n".join(text.splitlines()[-40:]))
        if self.log_dir is not None:
            self._ended += 1
            (self.log_dir / f"{self._ended:02d}-{replica.name}.log").write_text(text)
        replica.process.log_file.unlink(missing_ok=True)
        replica.process = None

    def stop(self, replica: Replica) -> None:
        """SIGTERM, and wait for the process to end (as a pod's termination)."""
        if replica.process is not None:
            self._retire(replica)

    def kill(self, replica: Replica) -> None:
        assert replica.process is not None
        replica.process.kill()
        self._retire(replica)

    def leader(self, *, timeout: float = 30) -> Replica | None:
        """The replica that holds the Lease (by its metrics), waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            for replica in self.replicas:
                if replica.is_leader():
                    return replica
            if time.monotonic() > deadline:
                return None
            time.sleep(0.2)

    def wait_ready(self, replica: Replica, *, timeout: float = 30) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if replica.ready():
                return True
            time.sleep(0.2)
        return False

    def set_link(self, replica: Replica, *, up: bool) -> None:
        state = "up" if up else "down"
        argv = ["ip", "-n", replica.netns, "link", "set", "eth1", state]
        subprocess.run(argv, check=True, timeout=10, capture_output=True)

    # --- VMs on the segment ----------------------------------------------------------

    def plug_vm(self, vm_mac: str) -> Client:
        """A VM's namespace on the segment, its wire forwarding."""
        vm = self.lab.add_client(vm_mac)
        wait_for_wire(self.lab, vm)
        return vm

    def start_clients(self, *, names: tuple[str, ...] | None = None) -> None:
        """One VM per real client this machine has, and the scripted probe's VM."""
        have = available()
        for index, name in enumerate(names or tuple(n for n, ok in have.items() if ok), 1):
            vm_mac = mac(index)
            vm = self.plug_vm(vm_mac)
            expected = self.wait_recorded(self.create_vm(vm_mac))
            work = self.work / name
            work.mkdir()
            process = STARTERS[name](self.lab, vm, work)
            self.watched.append(Watched(name, vm, expected, process))
        self.watch = AddressWatch(self.watched).start()
        probe_vm = self.plug_vm(mac(0x10))
        expected = self.wait_recorded(self.create_vm(probe_vm.mac))
        self.lab.add_address(probe_vm.netns, probe_vm.ifname, f"{expected}/16")
        self.probe = Probe(probe_vm, expected=expected, server_id=IPv4Address(SERVER_IP)).start()

    def shutdown(self) -> None:
        if self.probe is not None:
            self.probe.stop()
        if self.watch is not None:
            self.watch.stop()
        for replica in self.replicas:
            if replica.process is not None:
                with contextlib.suppress(Exception):
                    self._retire(replica)

    def cleanup_objects(self) -> None:
        """Remove the lab's pool and VMs (kvip is stopped by then; vmnetcfg finalizers
        are stripped). Without kube-controller-manager the namespace stays Terminating."""
        custom = self.custom
        # Best effort: the API server may be the thing that failed.
        with contextlib.suppress(Exception):
            for item in custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, CFGS)[
                "items"
            ]:
                name = item["metadata"]["name"]
                custom.patch_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, CFGS, name, {"metadata": {"finalizers": None}},
                    _content_type="application/merge-patch+json",
                )  # fmt: skip
            custom.delete_cluster_custom_object(GROUP, VERSION, "ippools", self.pool)
            self.core.delete_namespace(self.namespace)


@contextlib.contextmanager
def open_ha_lab(
    api: ApiServer, *, clients: tuple[str, ...] | None = None, log_dir: Path | None = None
) -> Iterator[HaLab]:
    """The lab, running: replicas up (r0 the first leader), every client bound.
    Everything is stopped and every namespace deleted on exit, also on errors.
    With ``log_dir``, every replica process's log is kept there, numbered by end."""
    with (
        tempfile.TemporaryDirectory(prefix="kvip-ha-", ignore_cleanup_errors=True) as tmp,
        netlab("kvha", server_address=SWITCH_ADDRESS) as lab,
    ):
        ha = HaLab(api, lab, Path(tmp))
        ha.log_dir = log_dir
        try:
            ha.create_objects()
            ha.add_replicas()
            ha.start(ha.replicas[0])
            if ha.leader(timeout=30) is None:
                raise LabError("replica r0 did not become the leader")
            for replica in ha.replicas[1:]:
                ha.start(replica)
            ha.start_clients(names=clients)
            assert ha.watch is not None
            unbound = ha.watch.wait_bound(30)
            if unbound:
                raise LabError(f"real clients without an address at the start: {unbound}")
            yield ha
        finally:
            try:
                ha.shutdown()
            finally:
                ha.cleanup_objects()
                ha.api_client.close()  # type: ignore[no-untyped-call]
