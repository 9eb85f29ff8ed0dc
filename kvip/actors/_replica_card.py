"""A replica's card: which address it answers with on which IPPool, as kept in its
heartbeat Lease (labels, annotations and name), and read back."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

from kvip.k8s import Body

SERVING_ANNOTATION = "kvip.io/serving"
READY_ANNOTATION = "kvip.io/ready"
DECLINED_ANNOTATION = "kvip.io/declined"
REPLICA_OF_LABEL = "kvip.io/replica-of"
NAME_LABEL = "app.kubernetes.io/name"


@dataclass(frozen=True, slots=True)
class ReplicaCard:
    """What one replica announces: its pod name, and per IPPool the server address
    it answers with there. `ready` is False while it says it is not serving."""

    replica: str
    serving: Mapping[str, str]
    ready: bool = True
    #: DECLINEs this replica received that the vmnetcfgs do not show yet:
    #: (IPPool name, MAC, address), for the leader to record.
    declined: tuple[tuple[str, str, str], ...] = ()


def dns_safe(raw: str, limit: int) -> str:
    """`raw` as a DNS-1123 label/subdomain of at most `limit` characters; a name
    that had to change ends with a hash of the original, so two never collide."""
    safe = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")
    if safe == raw and len(safe) <= limit:
        return safe
    digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
    return f"{safe[: limit - 9].rstrip('-')}-{digest}".lstrip("-")


def replica_lease_name(lease_name: str, replica: str) -> str:
    """The name of `replica`'s heartbeat Lease: `<lease_name>-replica-<replica>`."""
    return dns_safe(f"{lease_name}-replica-{replica}", 253)


def replica_selector(lease_name: str) -> str:
    """The label selector of the heartbeat Leases of the replicas of `lease_name`."""
    return f"{REPLICA_OF_LABEL}={dns_safe(lease_name, 63)}"


def card_labels(lease_name: str) -> dict[str, str]:
    """The labels of the heartbeat Leases of the replicas of `lease_name`."""
    return {NAME_LABEL: "kvip", REPLICA_OF_LABEL: dns_safe(lease_name, 63)}


def card_annotations(
    serving: Mapping[str, str],
    ready: bool | None,
    declined: Sequence[tuple[str, str, str]] = (),
) -> dict[str, str]:
    """A card as Lease annotations (no `kvip.io/ready` when `ready` is None, no
    `kvip.io/declined` without declines)."""
    annotations = {SERVING_ANNOTATION: json.dumps(dict(serving), sort_keys=True)}
    if declined:
        entries = [{"pool": p, "mac": m, "ip": ip} for p, m, ip in sorted(declined)]
        annotations[DECLINED_ANNOTATION] = json.dumps(entries)
    if ready is not None:
        annotations[READY_ANNOTATION] = "true" if ready else "false"
    return annotations


def parse_card(lease: Body) -> ReplicaCard:
    """The card in a heartbeat Lease; ValueError when its annotations are malformed."""
    spec: dict[str, Any] = lease.get("spec") or {}
    replica = spec.get("holderIdentity") or lease["metadata"]["name"]
    annotations: dict[str, str] = lease["metadata"].get("annotations") or {}
    raw = annotations.get(SERVING_ANNOTATION)
    if raw is None:
        raise ValueError(f"no {SERVING_ANNOTATION} annotation")
    serving = json.loads(raw)
    if not isinstance(serving, dict) or not all(
        isinstance(pool, str) and isinstance(address, str) for pool, address in serving.items()
    ):
        raise ValueError(f"{SERVING_ANNOTATION} is not an object of strings")
    for address in serving.values():
        IPv4Address(address)  # raises ValueError
    ready = annotations.get(READY_ANNOTATION, "true")
    if ready not in ("true", "false"):
        raise ValueError(f"{READY_ANNOTATION} is neither true nor false")
    declined = []
    for entry in json.loads(annotations.get(DECLINED_ANNOTATION, "[]")):
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(k), str) for k in ("pool", "mac", "ip")
        ):
            raise ValueError(f"{DECLINED_ANNOTATION} is not a list of pool, mac, ip")
        IPv4Address(entry["ip"])  # raises ValueError
        declined.append((entry["pool"], entry["mac"], entry["ip"]))
    return ReplicaCard(replica, serving, ready=ready == "true", declined=tuple(declined))
