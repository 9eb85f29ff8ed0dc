"""Example kvip objects for tests: valid by default, to be bent one field at a
time with `with_value`."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from crs import GROUP, VERSION


def ippool(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "IPPool",
        "metadata": {"name": name},
        "spec": {
            "networkname": "default/net1",
            "ipv4config": {
                "serverip": "172.16.0.2",
                "subnet": "172.16.0.0/16",
                "pool": {"start": "172.16.0.10", "end": "172.16.255.250"},
                "router": "172.16.0.1",
            },
        },
    }


def seed_readme_ippool(name: str) -> dict[str, Any]:
    """The IPPool of kubevirt-ip-helper's README, placeholders filled in as a user would."""
    text = (Path(__file__).parent / "fixtures" / "seed-readme-ippool.yaml").read_text()
    for placeholder, value in {
        "<POOL_NAME>": name,
        "<NAMESPACE>": "default",
        "<NETWORKATTACHMENTDEFINITION_NAME>": "net1",
    }.items():
        text = text.replace(placeholder, value)
    body: dict[str, Any] = yaml.safe_load(text)
    return body


def vmnetcfg(name: str) -> dict[str, Any]:
    """A vmnetcfg as kubevirt-ip-helper creates one for VM `name`."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "VirtualMachineNetworkConfig",
        "metadata": {"name": name},
        "spec": {
            "vmname": name,
            "networkconfig": [
                {
                    "ipaddress": "172.16.0.10",
                    "macaddress": "52:54:00:aa:bb:cc",
                    "networkname": "default/net1",
                }
            ],
        },
    }


def ready_condition(status: str = "True") -> dict[str, Any]:
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
