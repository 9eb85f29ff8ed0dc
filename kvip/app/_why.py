"""`kvip why NAMESPACE/VM`: one screen that follows a VM through kvip.

Each NIC: its network, the IPPool that matched (or why none did), the
reservation and its vmnetcfg record and status, declines; which replica
leads and which replicas serve; the recent Events. With `--debug-url` (a
replica's metrics endpoint, e.g. through `kubectl port-forward`), the last
DHCP messages each replica saw from each MAC and what it answered.

It reads the API server only (and the debug endpoints): it works from
outside the pod, whether kvip runs or not.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from kvip.ipam import InvalidPool
from kvip.k8s import IPPOOLS, VIRTUAL_MACHINES, VMNETCFGS, Kube, KubeError, NotFound
from kvip.k8s._bodies import VmNic, vm_nics, vmnetcfg_declines, vmnetcfg_records
from kvip.serving import parse_ippool

#: Fetches a replica's view of one MAC: {"pools": [...]} (see kvip.app._http).
Fetch = Callable[[str, str], Mapping[str, Any] | None]


@dataclass(slots=True)
class Evidence:
    """What `kvip why` found, before it is written out (tests read it too)."""

    vm: dict[str, Any]
    cfg: dict[str, Any] | None
    pools: list[dict[str, Any]]
    lease: dict[str, Any] | None = None
    replicas: list[dict[str, Any]] = field(default_factory=list)
    events: list[tuple[str, str, str, str]] = field(default_factory=list)
    #: debug URL -> MAC -> that replica's JSON about the MAC.
    dhcp: dict[str, dict[str, Mapping[str, Any]]] = field(default_factory=dict)


def gather(
    kube: Kube,
    reference: str,
    *,
    lease_namespace: str,
    lease_name: str,
    debug_urls: Sequence[str] = (),
    fetch: Fetch | None = None,
) -> Evidence:
    namespace, _, name = reference.partition("/")
    vm = kube.get(VIRTUAL_MACHINES, name, namespace=namespace)
    try:
        cfg: dict[str, Any] | None = kube.get(VMNETCFGS, name, namespace=namespace)
    except NotFound:
        cfg = None
    pools, _ = kube.list(IPPOOLS)
    evidence = Evidence(vm, cfg, pools)
    leases = kube.coordination
    try:
        evidence.lease = leases.read_namespaced_lease(lease_name, lease_namespace).to_dict()
        selector = f"kvip.io/replica-of={lease_name}"
        found = leases.list_namespaced_lease(lease_namespace, label_selector=selector)
        evidence.replicas = [item.to_dict() for item in found.items]
    except Exception:  # no Lease (kvip never ran, or no RBAC): said as unknown
        evidence.lease = None
    try:
        for obj in (vm, cfg):
            if obj is None:
                continue
            uid = obj["metadata"].get("uid")
            events = kube.core.list_namespaced_event(
                namespace, field_selector=f"involvedObject.uid={uid}"
            ).items
            for event in events:
                when = event.last_timestamp or event.event_time or event.first_timestamp
                evidence.events.append(
                    (str(when or ""), str(event.type), str(event.reason), str(event.message))
                )
    except Exception:  # Events are a nicety: no RBAC for them is no reason to fail
        pass
    evidence.events.sort()
    macs = [nic.mac for nic in vm_nics(vm) if nic.mac]
    for url in debug_urls:
        fetcher = fetch or fetch_debug
        evidence.dhcp[url] = {mac: got for mac in macs if (got := fetcher(url, mac)) is not None}
    return evidence


def fetch_debug(url: str, mac: str) -> Mapping[str, Any] | None:
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/debug/mac/{mac}", timeout=5) as answer:
            body: Mapping[str, Any] = json.loads(answer.read())
            return body
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _pool_for(nic: VmNic, pools: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, str]:
    """The IPPool serving the NIC's network, and a line about it."""
    for pool in pools:
        name = str(pool["metadata"]["name"])
        try:
            config = parse_ippool(pool)
        except InvalidPool as exc:
            if str((pool.get("spec") or {}).get("networkname", "")) in (nic.network,):
                return pool, f"IPPool {name} names it but is invalid: {exc}"
            continue
        if config.network == nic.network:
            conditions = {
                c.get("type"): c for c in (pool.get("status") or {}).get("conditions") or []
            }
            state = ", ".join(
                f"{kind}={c.get('status')} ({c.get('reason')}: {c.get('message')})"
                for kind, c in sorted(conditions.items())
                if kind in ("Ready", "Serving", "ReplicaAddressesOutsideRange")
            )
            subnets = [str(config.spec.subnet)] if config.spec is not None else []
            if config.v6 is not None:
                subnets.append(str(config.v6.spec.subnet))
            subnet = f"subnet {' and '.join(subnets)}"
            return pool, f"IPPool {name}, {subnet}: {state or 'no status yet'}"
    return None, f"no IPPool has networkname {nic.network}: kvip gives this NIC no address"


def explain(evidence: Evidence, out: TextIO) -> None:
    vm, cfg = evidence.vm, evidence.cfg
    meta = vm["metadata"]
    key = f"{meta['namespace']}/{meta['name']}"
    running = (vm.get("spec") or {}).get("running")
    print(f"VM {key} (uid {meta.get('uid')}, running: {running})", file=out)
    _leadership(evidence, out)
    records = {(r.network, r.mac): r for r in vmnetcfg_records(cfg)} if cfg else {}
    statuses = {
        (str(e.get("networkname")), str(e.get("macaddress") or "")): e
        for e in ((cfg or {}).get("status") or {}).get("networkconfig") or []
    }
    declines = vmnetcfg_declines(cfg) if cfg else {}
    print(f"vmnetcfg: {'present' if cfg else 'none yet'}", file=out)
    nics = vm_nics(vm)
    if not nics:
        print("no Multus NICs: kvip has nothing to do for this VM", file=out)
    for nic in nics:
        print(f"\nNIC {nic.interface}: network {nic.network}, MAC {nic.mac or '(none)'}", file=out)
        _, pool_line = _pool_for(nic, evidence.pools)
        print(f"  pool:     {pool_line}", file=out)
        if nic.requested_ip:
            print(f"  asked:    {nic.requested_ip} (static-ip annotation)", file=out)
        record = records.get((nic.network, nic.mac or ""))
        recorded = [ip for ip in (record.ip, record.ip6) if ip] if record is not None else []
        print(f"  record:   {' and '.join(recorded) or 'none'}", file=out)
        status = statuses.get((nic.network, nic.mac or ""))
        if status is not None:
            print(f"  status:   {status.get('status')}: {status.get('message')}", file=out)
        if (nic.network, nic.mac or "") in declines:
            ip, _ = declines[(nic.network, nic.mac or "")]
            print(f"  declined: {ip} (in use on the wire; `kvip vmnetcfg reset {key}`)", file=out)
        for url, seen in evidence.dhcp.items():
            _dhcp(url, seen.get(nic.mac or ""), out)
    if evidence.events:
        print("\nEvents:", file=out)
        for when, kind, reason, message in evidence.events[-10:]:
            print(f"  {when}  {kind:<7} {reason}: {message}", file=out)


def _leadership(evidence: Evidence, out: TextIO) -> None:
    lease = evidence.lease
    spec = (lease or {}).get("spec") or {}
    holder = spec.get("holder_identity") or spec.get("holderIdentity")
    print(f"leader: {holder or 'none (no kvip holds the Lease)'}", file=out)
    serving = []
    for replica in evidence.replicas:
        annotations = (replica.get("metadata") or {}).get("annotations") or {}
        name = ((replica.get("spec") or {}).get("holder_identity")) or "?"
        try:
            pools = json.loads(annotations.get("kvip.io/serving", "{}"))
        except ValueError:
            pools = {}
        shown = ", ".join(f"{pool} as {ip}" for pool, ip in sorted(pools.items())) or "nothing"
        serving.append(f"{name} serves {shown}")
    if serving:
        print("replicas: " + "; ".join(serving), file=out)


def _dhcp(url: str, seen: Mapping[str, Any] | None, out: TextIO) -> None:
    if not seen or not seen.get("pools"):
        print(f"  dhcp @ {url}: nothing seen from this MAC", file=out)
        return
    for pool in seen["pools"]:
        history = pool.get("history") or []
        reservation = pool.get("reservation") or {}
        reserved = [reservation.get(family) for family in ("ip", "ip6")]
        serves = " and ".join(ip for ip in reserved if ip) or "no reservation"
        if reservation.get("declined"):
            serves += ", declined"
        answers_as = pool.get("server_ip") or "DHCPv6 only"
        print(f"  dhcp @ {url} (IPPool {pool.get('pool')} as {answers_as}, "
              f"reserves {serves}, heard {pool.get('count')} packets):", file=out)  # fmt: skip
        for entry in history[-5:]:
            answer = entry.get("answer")
            if answer:
                outcome = f"{answer} {entry.get('ip') or ''}".rstrip()
                if entry.get("reason"):
                    outcome += f" ({entry['reason']})"  # a NAK's message
            else:
                outcome = f"no answer ({entry.get('reason') or 'unknown'})"
            print(f"    {entry.get('time')}  {entry.get('received')} -> {outcome}", file=out)


def why(
    kube: Kube,
    reference: str,
    out: TextIO,
    *,
    lease_namespace: str,
    lease_name: str,
    debug_urls: Sequence[str] = (),
) -> int:
    if "/" not in reference:
        print(f"kvip: {reference!r}: expected NAMESPACE/VM", file=out)
        return 2
    try:
        evidence = gather(kube, reference, lease_namespace=lease_namespace,
                          lease_name=lease_name, debug_urls=debug_urls)  # fmt: skip
    except NotFound:
        print(f"kvip: VirtualMachine {reference} not found", file=out)
        return 1
    except KubeError as exc:
        print(f"kvip: {exc}", file=out)
        return 1
    explain(evidence, out)
    return 0
