"""The Kubernetes resources kvip reads and writes."""

from __future__ import annotations

from dataclasses import dataclass

GROUP = "kubevirtiphelper.k8s.binbash.org"
VERSION = "v1"
FINALIZER = f"{GROUP}/vmnetcfg-cleanup"
STATIC_IP_ANNOTATION = f"{GROUP}/static-ip"
#: Set by `kvip vmnetcfg reset`: clear declines and errors of this VM, retry.
RESET_ANNOTATION = f"{GROUP}/reset"
HARVESTER_MAC_ANNOTATION = "harvesterhci.io/mac-address"
#: On an IPPool: at most this many entries in status.ipv4.allocated ("0": none).
ALLOCATED_LIST_MAX_ANNOTATION = f"{GROUP}/allocated-list-max"


@dataclass(frozen=True, slots=True)
class Resource:
    """A custom resource type, addressed by group, version and plural."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}"


IPPOOLS = Resource(GROUP, VERSION, "ippools", "IPPool", namespaced=False)
VMNETCFGS = Resource(
    GROUP, VERSION, "virtualmachinenetworkconfigs", "VirtualMachineNetworkConfig", namespaced=True
)
VIRTUAL_MACHINES = Resource("kubevirt.io", "v1", "virtualmachines", "VirtualMachine", True)
