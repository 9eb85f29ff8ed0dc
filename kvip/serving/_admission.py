"""What kvip's validating admission webhook decides, without I/O.

The API server asks before it stores an IPPool or a vmnetcfg; the answer is
one `Verdict`. An IPPool is judged by `parse_ippool`, the parser the
controller uses, so the webhook never refuses what the controller would
serve, nor lets in what it would reject. What only the cluster can tell
(other pools, the reservations recorded in vmnetcfgs) comes in as arguments,
read by the caller.

Every refusal names the field to edit. The refusals that protect existing
reservations (an IPPool update that strands them, an IPPool delete, a moved
NIC address) give way to the annotation `FORCE_ANNOTATION: "true"`, and the
answer then carries a warning that lists what was forced.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import AddressValueError, IPv4Address, IPv6Address
from typing import Any

from kvip.ipam import ExclusionReason, InvalidPool, PoolSpec, PoolSpec6
from kvip.serving._pool_config import PoolConfig, PoolConfig6, parse_ippool

FORCE_ANNOTATION = "kubevirtiphelper.k8s.binbash.org/force"
#: Reservations named in one message; the rest are counted.
SHOWN = 5


def _fields_of_exclusion(config: str) -> dict[ExclusionReason, str]:
    return {
        ExclusionReason.SERVER_IP: f"it is spec.{config}.serverip",
        ExclusionReason.ROUTER: f"it is spec.{config}.router",
        ExclusionReason.SPEC: f"it is listed in spec.{config}.pool.exclude",
    }


_FIELD_OF_EXCLUSION = _fields_of_exclusion("ipv4config")
_FIELD_OF_EXCLUSION6 = _fields_of_exclusion("ipv6config")


@dataclass(frozen=True, slots=True)
class Recorded:
    """One address recorded in a vmnetcfg: the durable reservation of a NIC."""

    #: The vmnetcfg (= the VM) as namespace/name.
    vm: str
    network: str
    mac: str
    ip: str | None
    #: The NIC's IPv6 address (`ipv6address`) on a pool with ipv6config.
    ip6: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """Allowed or not; `message` says why not, `warnings` what was forced."""

    allowed: bool
    message: str = ""
    warnings: tuple[str, ...] = ()


ALLOWED = Verdict(True)


def forced(body: Mapping[str, Any] | None) -> bool:
    """Whether the object carries FORCE_ANNOTATION set to true."""
    annotations = ((body or {}).get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(FORCE_ANNOTATION, "")).lower() == "true"


def _address(text: str | None) -> IPv4Address | None:
    try:
        return None if text is None else IPv4Address(text)
    except AddressValueError:
        return None


def _address6(text: str | None) -> IPv6Address | None:
    try:
        return None if text is None else IPv6Address(text)
    except AddressValueError:
        return None


def _why_unusable6(config: PoolConfig6 | None, ip: IPv6Address) -> str | None:
    """Why a pool with the IPv6 half `config` cannot hand out `ip` (None: it can)."""
    if config is None:
        return "the pool has no spec.ipv6config"
    spec = config.spec
    if ip < spec.start:
        return f"it is before spec.ipv6config.pool.start {spec.start}"
    if ip > spec.end:
        return f"it is after spec.ipv6config.pool.end {spec.end}"
    reason = spec.exclusions().get(ip) or spec.boundary_reason(ip)
    if reason is None:
        return None
    return _FIELD_OF_EXCLUSION6.get(reason, reason.explanation)


def _why_unusable(config: PoolConfig, ip: IPv4Address) -> str | None:
    """Why the pool `config` cannot hand out `ip` (None: it can)."""
    spec = config.spec
    if spec is None:
        return "the pool has no spec.ipv4config"
    if ip < spec.start:
        return f"it is before spec.ipv4config.pool.start {spec.start}"
    if ip > spec.end:
        return f"it is after spec.ipv4config.pool.end {spec.end}"
    reason = spec.exclusions().get(ip) or spec.boundary_reason(ip)
    if reason is None:
        return None
    return _FIELD_OF_EXCLUSION.get(reason, reason.explanation)


def _listed(found: Sequence[str]) -> str:
    shown = "; ".join(found[:SHOWN])
    return shown + (f"; and {len(found) - SHOWN} more" if len(found) > SHOWN else "")


def _parsed(body: Mapping[str, Any] | None) -> PoolConfig | None:
    try:
        return None if body is None else parse_ippool(body)
    except InvalidPool:
        return None


def _network_conflict(config: PoolConfig, others: Iterable[Mapping[str, Any]]) -> str | None:
    """The controller serves one IPPool per network (it marks a second one
    invalid): say so, and whether the ranges overlap too."""
    for body in others:
        other = _parsed(body)
        if other is None or other.name == config.name or other.network != config.network:
            continue
        ranges: list[tuple[int, PoolSpec | PoolSpec6, PoolSpec | PoolSpec6]] = []
        if config.spec is not None and other.spec is not None:
            ranges.append((4, config.spec, other.spec))
        if config.v6 is not None and other.v6 is not None:
            ranges.append((6, config.v6.spec, other.v6.spec))
        for family, mine, theirs in ranges:
            if int(mine.start) <= int(theirs.end) and int(theirs.start) <= int(mine.end):
                return (
                    f"spec.ipv{family}config.pool {mine.start}-{mine.end} overlaps IPPool "
                    f"{other.name}'s range {theirs.start}-{theirs.end} on the same network "
                    f"{config.network} (spec.networkname); kvip serves one IPPool per network"
                )
        return (
            f"spec.networkname {config.network} is already served by IPPool {other.name}; "
            "kvip serves one IPPool per network: widen that pool instead"
        )
    return None


def _stranded(
    old: PoolConfig | None, new: PoolConfig, reservations: Iterable[Recorded]
) -> list[str]:
    """Reservations that the old pool could hand out and the new one cannot."""
    found = []
    network = old.network if old is not None else new.network
    for record in reservations:
        if record.network != network:
            continue
        moved = f"spec.networkname is now {new.network}" if new.network != network else None
        ip = _address(record.ip)
        if ip is not None and (old is None or _why_unusable(old, ip) is None):
            why = moved or _why_unusable(new, ip)
            if why is not None:
                found.append(f"{record.vm} {ip} ({why})")
        ip6 = _address6(record.ip6)
        # An address the old pool could not hand out is not the pool's to begin with.
        if ip6 is not None and (old is None or _why_unusable6(old.v6, ip6) is None):
            why = moved or _why_unusable6(new.v6, ip6)
            if why is not None:
                found.append(f"{record.vm} {ip6} ({why})")
    return found


def review_ippool(
    operation: str,
    *,
    new: Mapping[str, Any] | None,
    old: Mapping[str, Any] | None,
    others: Iterable[Mapping[str, Any]] = (),
    reservations: Iterable[Recorded] = (),
) -> Verdict:
    """CREATE, UPDATE or DELETE of an IPPool. `others`: every IPPool in the
    cluster (this one may be among them); `reservations`: every address
    recorded in a vmnetcfg."""
    if operation == "DELETE":
        return _review_delete(old, reservations)
    if new is None:
        return Verdict(False, f"{operation} of an IPPool without an object")
    try:
        config = parse_ippool(new)
    except InvalidPool as exc:
        return Verdict(False, str(exc))
    conflict = _network_conflict(config, others)
    if conflict is not None:
        return Verdict(False, conflict)
    if operation != "UPDATE":
        return ALLOWED
    stranded = _stranded(_parsed(old), config, reservations)
    if not stranded:
        return ALLOWED
    if forced(new):
        return Verdict(True, warnings=(f"forced: strands {len(stranded)} reservations",))
    return Verdict(
        False,
        f"this change strands {len(stranded)} reservations recorded in vmnetcfgs: "
        f"{_listed(stranded)}. Move those VMs first, or set the annotation "
        f'{FORCE_ANNOTATION}: "true" on the IPPool to force it',
    )


def _review_delete(old: Mapping[str, Any] | None, reservations: Iterable[Recorded]) -> Verdict:
    name = str(((old or {}).get("metadata") or {}).get("name", "?"))
    network = ((old or {}).get("spec") or {}).get("networkname")
    if not isinstance(network, str):
        return ALLOWED  # no network: nothing can be reserved in it
    network = network if "/" in network else f"default/{network}"
    held = [
        f"{r.vm} {ip}"
        for r in reservations
        if r.network == network
        for ip in (_address(r.ip), _address6(r.ip6))
        if ip is not None
    ]
    if not held:
        return ALLOWED
    if forced(old):
        return Verdict(True, warnings=(f"forced: {len(held)} reservations lose their pool",))
    return Verdict(
        False,
        f"IPPool {name} still holds {len(held)} reservations recorded in vmnetcfgs on "
        f"{network} (spec.networkname): {_listed(held)}. Remove those VMs' NICs first, or "
        f'set the annotation {FORCE_ANNOTATION}: "true" on the IPPool to force it',
    )


def review_vmnetcfg(
    *,
    new: Mapping[str, Any] | None,
    old_records: Iterable[Recorded],
    new_records: Iterable[Recorded],
) -> Verdict:
    """An UPDATE of a vmnetcfg by someone other than kvip: a NIC listed before
    and after (same network and MAC) keeps its addresses, IPv4 and IPv6."""
    before: dict[tuple[str, str], Recorded] = {}
    for r in old_records:  # a NIC listed twice: its first entry counts, as in the controller
        before.setdefault((r.network, r.mac), r)
    moved = []
    fields = set()
    for r in new_records:
        was = before.get((r.network, r.mac))
        if was is None:
            continue
        for field, old_ip, new_ip in (("ipaddress", was.ip, r.ip), ("ipv6address", was.ip6, r.ip6)):
            if new_ip and old_ip not in (None, new_ip):
                moved.append(f"the NIC {r.mac} on {r.network} from {old_ip} to {new_ip}")
                fields.add(field)
    if not moved:
        return ALLOWED
    if forced(new):
        return Verdict(True, warnings=(f"forced: moved {_listed(moved)}",))
    return Verdict(
        False,
        f"{' and '.join(f'spec.networkconfig[].{f}' for f in sorted(fields))}: "
        f"this edit moves a running VM's address: "
        f"{_listed(moved)}. kvip assigns these addresses (a VM asks for one with its "
        f'static-ip annotation); set the annotation {FORCE_ANNOTATION}: "true" on the '
        "vmnetcfg to force it",
    )


def admission_response(uid: str, verdict: Verdict) -> dict[str, Any]:
    """The AdmissionReview (admission.k8s.io/v1) that answers request `uid`."""
    response: dict[str, Any] = {"uid": uid, "allowed": verdict.allowed}
    if not verdict.allowed:
        response["status"] = {"code": 403, "reason": "Forbidden", "message": verdict.message}
    if verdict.warnings:
        response["warnings"] = list(verdict.warnings)
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
