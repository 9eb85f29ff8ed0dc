"""The Kubernetes objects tests, benchmarks and scripts create: one builder per kind.

- `ippool(name, network, ...)`: an IPPool as a user writes it;
- `vm(name, namespace, nics, ...)`: a KubeVirt VirtualMachine with Multus NICs;
- `vmnetcfg(vm, entries, ...)`: a VirtualMachineNetworkConfig (a record of
  addresses, as kvip or kubevirt-ip-helper writes one).

Every builder returns a fresh dict, valid by default; keyword arguments set or
(with None) remove fields, and `with_value` bends one field of a finished body.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml

GROUP = "kubevirtiphelper.k8s.binbash.org"
VERSION = "v1"
#: (group, version, plural) of KubeVirt's VirtualMachines, for CustomObjectsApi calls.
VMS = ("kubevirt.io", "v1", "virtualmachines")
CFGS = "virtualmachinenetworkconfigs"
FINALIZER = f"{GROUP}/vmnetcfg-cleanup"

#: The DHCP options an IPPool starts from, by `options=`:
#: - "bare": none (the addresses only);
#: - "typical": router (the server's address), one DNS server, a domain, 600 s leases;
#: - "full": every option kvip can send, the router apart from the server.
OptionSet = Literal["bare", "typical", "full"]
FULL_ROUTER = "198.18.0.254"
FULL_DNS = ("198.18.0.53", "198.18.0.54")
FULL_ROUTES = ({"destination": "10.0.0.0/8", "gateway": "198.18.0.253"},)

#: A NIC of `vm`: (interface name, Multus networkName, macAddress or None for KubeVirt's).
VmNic = tuple[str, str, str | None]
#: A vmnetcfg entry: (networkname, macaddress, ipaddress or None for "not yet").
CfgEntry = tuple[str, str, str | None]


def _option_set(kind: OptionSet, server: str) -> dict[str, Any]:
    if kind == "bare":
        return {}
    if kind == "typical":
        return {
            "router": server,
            "dns": ["198.18.0.53"],
            "domainname": "example.test",
            "domainsearch": ["example.test"],
            "leasetime": 600,
        }
    return {
        "router": FULL_ROUTER,
        "dns": list(FULL_DNS),
        "domainname": "lab.example",
        "domainsearch": ["lab.example", "example"],
        "leasetime": 600,
        "mtu": 1450,
        "routes": [dict(route) for route in FULL_ROUTES],
    }


def ippool(
    name: str,
    network: str | None = None,
    *,
    options: OptionSet = "typical",
    interface: str | None = "eth1",
    selector: str | None = None,
    server: str = "198.18.0.1",
    subnet: str = "198.18.0.0/16",
    start: str = "198.18.0.10",
    end: str = "198.18.0.250",
    exclude: Sequence[str] = (),
    paused: bool = False,
    ipv6config: Mapping[str, Any] | None = None,
    **ipv4config: Any,
) -> dict[str, Any]:
    """An IPPool serving `start`..`end` of `subnet` from `server` on `interface`
    (None: no bindinterface) for the Multus `network` (default `default/<name>-net`).

    `selector` ("key=value") labels the pool for a kvip that serves a label
    selector. `ipv4config` keywords (router, dns, leasetime, mtu, ntp, ...) set
    options over the `options` set; a keyword set to None leaves that option out.
    `ipv6config` makes it a dual-stack pool (API.md), as given.
    """
    config: dict[str, Any] = {
        "serverip": server,
        "subnet": subnet,
        "pool": {"start": start, "end": end},
    }
    if exclude:
        config["pool"]["exclude"] = list(exclude)
    for key, value in {**_option_set(options, server), **ipv4config}.items():
        if value is not None:
            config[key] = value
    metadata: dict[str, Any] = {"name": name}
    if selector is not None:
        key, _, value = selector.partition("=")
        metadata["labels"] = {key: value}
    spec: dict[str, Any] = {"networkname": network or f"default/{name}-net"}
    if interface is not None:
        spec["bindinterface"] = interface
    spec["ipv4config"] = config
    if ipv6config is not None:
        spec["ipv6config"] = dict(ipv6config)
    if paused:
        spec["paused"] = True
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "IPPool",
        "metadata": metadata,
        "spec": spec,
    }


def vm(
    name: str,
    namespace: str,
    nics: Sequence[VmNic],
    *,
    running: bool = True,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A VirtualMachine as a user writes it: the pod network plus one bridged
    Multus NIC per (interface name, networkName, macAddress or None)."""
    interfaces: list[dict[str, Any]] = [{"name": "default", "masquerade": {}}]
    networks: list[dict[str, Any]] = [{"name": "default", "pod": {}}]
    for iface, network, mac in nics:
        interface: dict[str, Any] = {"name": iface, "bridge": {}}
        if mac:
            interface["macAddress"] = mac
        interfaces.append(interface)
        networks.append({"name": iface, "multus": {"networkName": network}})
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": metadata,
        "spec": {
            "running": running,
            "template": {
                "spec": {
                    "domain": {
                        "devices": {"interfaces": interfaces},
                        "resources": {"requests": {"memory": "64Mi"}},
                    },
                    "networks": networks,
                }
            },
        },
    }


def vmnetcfg(
    vm_name: str,
    entries: Sequence[CfgEntry],
    *,
    namespace: str | None = None,
    owner_uid: str | None = None,
    managed: bool = False,
) -> dict[str, Any]:
    """The vmnetcfg of VM `vm_name` with one entry per (networkname, macaddress,
    ipaddress or None). `owner_uid` makes the VM its owner; `managed` adds what
    kvip puts on the records it writes (its finalizer and managed-by label)."""
    metadata: dict[str, Any] = {"name": vm_name}
    if namespace is not None:
        metadata["namespace"] = namespace
    if managed:
        metadata["finalizers"] = [FINALIZER]
        metadata["labels"] = {"app.kubernetes.io/managed-by": "kvip"}
    if owner_uid is not None:
        owner = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "name": vm_name}
        metadata["ownerReferences"] = [{**owner, "uid": owner_uid}]
    config: list[dict[str, str]] = []
    for network, mac, ip in entries:
        entry = {"networkname": network, "macaddress": mac}
        if ip is not None:
            entry["ipaddress"] = ip
        config.append(entry)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "VirtualMachineNetworkConfig",
        "metadata": metadata,
        "spec": {"vmname": vm_name, "networkconfig": config},
    }


#: The CRD tests' example (kubevirt-ip-helper's README pool: 65,000 addresses),
#: as `ippool(name, **CRD_EXAMPLE_POOL)`, and its one VM's record.
CRD_EXAMPLE_POOL: dict[str, Any] = {
    "network": "default/net1",
    "options": "bare",
    "interface": None,
    "server": "172.16.0.2",
    "subnet": "172.16.0.0/16",
    "start": "172.16.0.10",
    "end": "172.16.255.250",
    "router": "172.16.0.1",
}
CRD_EXAMPLE_ENTRY: CfgEntry = ("default/net1", "52:54:00:aa:bb:cc", "172.16.0.10")
SEED_README_IPPOOL = Path(__file__).resolve().parents[1] / "fixtures" / "seed-readme-ippool.yaml"


def seed_readme_ippool(name: str) -> dict[str, Any]:
    """The IPPool of kubevirt-ip-helper's README, placeholders filled in as a user would."""
    text = SEED_README_IPPOOL.read_text()
    for placeholder, value in {
        "<POOL_NAME>": name,
        "<NAMESPACE>": "default",
        "<NETWORKATTACHMENTDEFINITION_NAME>": "net1",
    }.items():
        text = text.replace(placeholder, value)
    body: dict[str, Any] = yaml.safe_load(text)
    return body


def ready_condition(status: str = "True") -> dict[str, Any]:
    """An IPPool status's Ready condition."""
    return {
        "type": "Ready",
        "status": status,
        "reason": "Serving",
        "message": "",
        "lastTransitionTime": "2024-01-02T03:04:05Z",
        "observedGeneration": 1,
    }


def with_value(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `obj` with the dotted `path` set to `value` (None deletes it)."""
    result = copy.deepcopy(obj)
    *parents, last = path.split(".")
    node = result
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is None:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return result
