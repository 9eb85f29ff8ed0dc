"""Reading KubeVirt VMs and writing vmnetcfgs: the shapes of API.md.

Pure functions over API bodies (dicts as the API server sends them).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import AddressValueError, IPv6Address
from typing import Any

from kvip.k8s._resources import (
    FINALIZER,
    HARVESTER_MAC_ANNOTATION,
    RESET_ANNOTATION,
    STATIC_IP_ANNOTATION,
    VIRTUAL_MACHINES,
    VMNETCFGS,
)

log = logging.getLogger(__name__)

Body = dict[str, Any]

_MAC = re.compile(r"^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$")


@dataclass(frozen=True, slots=True)
class VmNic:
    """One Multus NIC of a VM, as kvip needs it."""

    interface: str
    #: The NetworkAttachmentDefinition as 'namespace/name'.
    network: str
    #: Lower-case 'aa:bb:cc:dd:ee:ff', or None while kubemacpool has not set one.
    mac: str | None
    #: From the static-ip annotation, if any (not yet validated).
    requested_ip: str | None
    #: The IPv6 address the annotation asks for (its "<v4>,<v6>" form), if any.
    requested_ip6: str | None = None


@dataclass(frozen=True, slots=True)
class NicRecord:
    """One entry of a vmnetcfg's spec.networkconfig: the durable reservation."""

    network: str
    mac: str
    ip: str | None
    #: `ipv6address`: the NIC's IPv6 address on a pool with ipv6config.
    ip6: str | None = None


def object_key(body: Mapping[str, Any]) -> str:
    meta = body.get("metadata", {})
    namespace = meta.get("namespace")
    return f"{namespace}/{meta.get('name')}" if namespace else str(meta.get("name"))


def normalize_mac(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    mac = value.strip().lower().replace("-", ":")
    return mac if _MAC.match(mac) else None


def network_key(network: str, *, namespace: str) -> str:
    network = network.strip()
    return network if "/" in network else f"{namespace}/{network}"


def _json_annotation(meta: Mapping[str, Any], name: str, key: str) -> dict[str, str]:
    text = (meta.get("annotations") or {}).get(name)
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        log.warning("VM %s: annotation %s is not JSON; ignoring it", key, name)
        return {}
    if not isinstance(value, dict):
        log.warning("VM %s: annotation %s is not a JSON object; ignoring it", key, name)
        return {}
    return {str(k): str(v) for k, v in value.items()}


def vm_nics(vm: Mapping[str, Any]) -> list[VmNic]:
    """The Multus NICs of a VirtualMachine (pod networks are skipped)."""
    meta = vm.get("metadata", {})
    namespace = str(meta.get("namespace", "default"))
    key = object_key(vm)
    spec = ((vm.get("spec") or {}).get("template") or {}).get("spec") or {}
    interfaces = ((spec.get("domain") or {}).get("devices") or {}).get("interfaces") or []
    macs_by_name = {
        str(i.get("name")): i.get("macAddress") for i in interfaces if isinstance(i, Mapping)
    }
    harvester = _json_annotation(meta, HARVESTER_MAC_ANNOTATION, key)
    static = _json_annotation(meta, STATIC_IP_ANNOTATION, key)
    nics = []
    for network in spec.get("networks") or []:
        if not isinstance(network, Mapping):
            continue
        multus = network.get("multus")
        if not isinstance(multus, Mapping) or not multus.get("networkName"):
            continue
        name = str(network.get("name", ""))
        requested, requested6 = split_static_ip(static.get(name))
        mac_text = macs_by_name.get(name) or harvester.get(name)
        mac = normalize_mac(mac_text)
        if mac_text and mac is None:
            log.warning("VM %s: interface %s has an invalid MAC %r", key, name, mac_text)
        nics.append(
            VmNic(
                interface=name,
                network=network_key(str(multus["networkName"]), namespace=namespace),
                mac=mac,
                requested_ip=requested,
                requested_ip6=requested6,
            )
        )
    return nics


def split_static_ip(text: str | None) -> tuple[str | None, str | None]:
    """The static-ip annotation's value for one NIC: an IPv4 address, an IPv6
    address, or both as "<v4>,<v6>" (either order). The parts are not validated
    here; one with a ':' is the IPv6 one."""
    if not text:
        return None, None
    v4: str | None = None
    v6: str | None = None
    for part in (piece.strip() for piece in text.split(",")):
        if not part:
            continue
        if ":" in part:
            v6 = v6 or part
        else:
            v4 = v4 or part
    return v4, v6


def vmnetcfg_records(cfg: Mapping[str, Any]) -> list[NicRecord]:
    namespace = str(cfg.get("metadata", {}).get("namespace", "default"))
    records = []
    for entry in (cfg.get("spec") or {}).get("networkconfig") or []:
        if not isinstance(entry, Mapping):
            continue
        mac = normalize_mac(entry.get("macaddress"))
        network = entry.get("networkname")
        if mac is None or not isinstance(network, str) or not network:
            continue
        ip = entry.get("ipaddress")
        ip6 = entry.get("ipv6address")
        records.append(
            NicRecord(
                network=network_key(network, namespace=namespace),
                mac=mac,
                ip=str(ip) if ip else None,
                ip6=str(ip6) if ip6 else None,
            )
        )
    return records


def recorded_ip6(record: NicRecord) -> IPv6Address | None:
    """The record's IPv6 address; None if it has none or it is no IPv6 address
    (the NIC is then served its IPv4 address, and its next claim says why)."""
    if not record.ip6:
        return None
    try:
        return IPv6Address(record.ip6)
    except AddressValueError:
        return None


def vmnetcfg_declines(cfg: Mapping[str, Any]) -> dict[tuple[str, str], tuple[str, str]]:
    """(network, MAC) -> (address, message) of the NICs whose status says the client
    DECLINEd its address (kvip's `declined` field)."""
    found: dict[tuple[str, str], tuple[str, str]] = {}
    for entry in (cfg.get("status") or {}).get("networkconfig") or []:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("declined"), str):
            continue
        mac = normalize_mac(entry.get("macaddress"))
        network = entry.get("networkname")
        if mac is not None and isinstance(network, str):
            found[(network, mac)] = (entry["declined"], str(entry.get("message") or ""))
    return found


def vmnetcfg_body(
    *, namespace: str, name: str, vm_uid: str | None, records: list[NicRecord]
) -> dict[str, Any]:
    """A new vmnetcfg for a VM: finalizer, and an ownerReference as the safety net."""
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "finalizers": [FINALIZER],
        "labels": {"app.kubernetes.io/managed-by": "kvip"},
    }
    if vm_uid:
        metadata["ownerReferences"] = [
            {
                "apiVersion": VIRTUAL_MACHINES.api_version,
                "kind": VIRTUAL_MACHINES.kind,
                "name": name,
                "uid": vm_uid,
            }
        ]
    return {
        "apiVersion": VMNETCFGS.api_version,
        "kind": VMNETCFGS.kind,
        "metadata": metadata,
        "spec": {"vmname": name, "networkconfig": records_spec(records)},
    }


def records_spec(records: list[NicRecord]) -> list[dict[str, str]]:
    spec = []
    for record in records:
        entry = {"networkname": record.network, "macaddress": record.mac}
        if record.ip:
            entry["ipaddress"] = record.ip
        if record.ip6:
            entry["ipv6address"] = record.ip6
        spec.append(entry)
    return spec


def vmnetcfg_update(
    cfg: Body, *, name: str, vm_uid: str | None, records: list[NicRecord]
) -> Body | None:
    """The vmnetcfg `cfg` as kvip keeps it for the VM `name`: these records, kvip's
    finalizer, the VM as owner, no reset annotation. None if it is so already.
    Shallow copies: the cached body is shared, never mutated (a deep copy of
    every vmnetcfg cost more than the rest of a reconcile together)."""
    meta = cfg["metadata"]
    spec = cfg.get("spec") or {}
    wanted_spec = {**spec, "vmname": name, "networkconfig": records_spec(records)}
    wanted_meta = dict(meta)
    finalizers = meta.get("finalizers") or []
    if FINALIZER not in finalizers:
        wanted_meta["finalizers"] = [*finalizers, FINALIZER]
    annotations = meta.get("annotations") or {}
    if RESET_ANNOTATION in annotations:
        wanted_meta["annotations"] = {k: v for k, v in annotations.items() if k != RESET_ANNOTATION}
    owners = meta.get("ownerReferences") or []
    if vm_uid and not any(ref.get("uid") == vm_uid for ref in owners):
        namespace = str(meta.get("namespace"))
        mine = vmnetcfg_body(namespace=namespace, name=name, vm_uid=vm_uid, records=[])
        wanted_meta["ownerReferences"] = [
            ref for ref in owners if ref.get("kind") != "VirtualMachine"
        ] + mine["metadata"]["ownerReferences"]
    if wanted_spec == spec and wanted_meta == meta and "spec" in cfg:
        return None
    return {**cfg, "metadata": wanted_meta, "spec": wanted_spec}


def finalizer_removal(cfg: Body) -> Body | None:
    """A merge patch that takes kvip's finalizer off `cfg`, conditional on its
    resourceVersion (a concurrent change gets a 409 and a retry); None if the
    finalizer is not there."""
    meta = cfg["metadata"]
    finalizers = meta.get("finalizers") or []
    if FINALIZER not in finalizers:
        return None
    return {
        "metadata": {
            "finalizers": [f for f in finalizers if f != FINALIZER],
            "resourceVersion": meta["resourceVersion"],
        }
    }
