"""Operator commands: `kvip pools`, `kvip vmnetcfg reset`, `kvip cleanup`.

They talk to the API server directly (one-shot, synchronous) and work
whether or not kvip runs: the objects are the state.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any, TextIO

from kvip.k8s import (
    FINALIZER,
    IPPOOLS,
    RESET_ANNOTATION,
    VIRTUAL_MACHINES,
    VMNETCFGS,
    Kube,
    NotFound,
)
from kvip.k8s._bodies import object_key


def _ready(pool: dict[str, Any]) -> str:
    for condition in (pool.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return str(condition.get("status"))
    return "Unknown"


def _table(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip(), file=out)


def _subnets(spec: dict[str, Any]) -> str:
    """The pool's subnet, and its IPv6 subnet after a comma on a dual-stack pool
    (an IPv6-only pool's alone)."""
    subnets = [
        str((spec.get(config) or {}).get("subnet", "")) for config in ("ipv4config", "ipv6config")
    ]
    return ",".join(subnet for subnet in subnets if subnet)


def pool_rows(pools: list[dict[str, Any]]) -> list[list[str]]:
    """`kvip pools`'s table: a header, then one row per IPPool, by name."""
    rows = [["POOL", "NETWORK", "SUBNET", "USED", "AVAILABLE", "READY"]]
    for pool in sorted(pools, key=lambda p: str(p["metadata"]["name"])):
        spec = pool.get("spec") or {}
        status = pool.get("status") or {}
        # An IPv6-only pool's counts are its IPv6 range's (strings: a /64 is big).
        counts = status.get("ipv4") or status.get("ipv6") or {}
        rows.append([
            str(pool["metadata"]["name"]),
            str(spec.get("networkname", "")),
            _subnets(spec),
            str(counts.get("used", "-")),
            str(counts.get("available", "-")),
            _ready(pool),
        ])  # fmt: skip
    return rows


def list_pools(kube: Kube, out: TextIO) -> int:
    pools, _ = kube.list(IPPOOLS)
    _table(pool_rows(pools), out)
    return 0


def reset_vmnetcfg(kube: Kube, reference: str, out: TextIO) -> int:
    """Ask kvip to retry a VM: it clears the VM's declines and errors, rewrites
    the status and serves the address again (the annotation is its signal)."""
    namespace, _, name = reference.partition("/")
    if not namespace or not name:
        print(f"kvip: {reference!r}: expected NAMESPACE/NAME", file=out)
        return 2
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        # Status first: kvip rewrites it when it sees the annotation.
        kube.patch(VMNETCFGS, name, {"status": None}, namespace=namespace, status=True)
        kube.patch(
            VMNETCFGS, name, {"metadata": {"annotations": {RESET_ANNOTATION: stamp}}},
            namespace=namespace,
        )  # fmt: skip
    except NotFound:
        print(f"kvip: vmnetcfg {reference} not found", file=out)
        return 1
    print(f"vmnetcfg {reference}: reset requested; kvip retries it now", file=out)
    return 0


def cleanup(kube: Kube, out: TextIO, *, dry_run: bool) -> int:
    """Remove the vmnetcfgs whose VM is gone (what kvip does at start-up)."""
    vms = {object_key(vm) for vm in kube.list(VIRTUAL_MACHINES)[0]}
    orphans = []
    for cfg in kube.list(VMNETCFGS)[0]:
        meta = cfg["metadata"]
        managed = FINALIZER in (meta.get("finalizers") or []) or meta.get("ownerReferences")
        if object_key(cfg) not in vms and managed:
            orphans.append(cfg)
    if not orphans:
        print("no orphaned vmnetcfgs", file=out)
        return 0
    verb = "would remove" if dry_run else "removing"
    for cfg in orphans:
        entries = (cfg.get("spec") or {}).get("networkconfig") or []
        ips = ", ".join(str(e.get("ipaddress")) for e in entries if e.get("ipaddress")) or "-"
        print(f"{verb} vmnetcfg {object_key(cfg)} (VM gone; frees {ips})", file=out)
        if dry_run:
            continue
        meta = cfg["metadata"]
        name, namespace = str(meta["name"]), str(meta["namespace"])
        finalizers = [f for f in meta.get("finalizers") or [] if f != FINALIZER]
        with contextlib.suppress(NotFound):
            kube.patch(
                VMNETCFGS, name, {"metadata": {"finalizers": finalizers}}, namespace=namespace
            )
        kube.delete(VMNETCFGS, name, namespace=namespace)
    return 0
