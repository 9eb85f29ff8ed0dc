"""What kvip writes into IPPool.status and vmnetcfg.status."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kvip.actors._messages import Inspect, PoolState, PoolState6
from kvip.actors._pool import PoolStopped
from kvip.actors._status import now_rfc3339, set_condition
from kvip.actors._supervisor import PoolHandle
from kvip.k8s import ALLOCATED_LIST_MAX_ANNOTATION

#: status.ipv4.allocated (kubevirt-ip-helper's map, about 55 bytes an entry) is
#: written whole up to this many entries and this many bytes of JSON, and left
#: out above: the API server refuses an IPPool past etcd's 1.5 MiB request limit
#: ("etcdserver: request is too large", measured at about 28,800 entries), and
#: until about 20,000 entries it also keeps managedFields of about 20 bytes an entry.
ALLOCATED_LIST_MAX = 10_000
ALLOCATED_LIST_MAX_BYTES = 800_000
TRUNCATED = "AllocatedListTruncated"


@dataclass(slots=True)
class NicStatus:
    network: str
    mac: str
    ok: bool
    message: str
    ip: str | None = None
    #: The NIC's IPv6 address on a pool with ipv6config (the entry's ipv6address).
    ip6: str | None = None
    #: The client DECLINEd `ip` (kvip's addition to the status entry: every replica
    #: reads it, and honours the decline).
    declined: bool = False
    #: The client DECLINEd `ip6` (DHCPv6): the entry's `declined` names it when
    #: the IPv4 address is not declined.
    declined6: bool = False

    def as_status(self) -> dict[str, str]:
        entry = {"networkname": self.network, "macaddress": self.mac}
        if not self.mac:
            del entry["macaddress"]  # a NIC without one (said in the message)
        entry.update(status="OK" if self.ok else "ERROR", message=self.message)
        if self.declined and self.ip is not None:
            entry["declined"] = self.ip
        elif self.declined6 and self.ip6 is not None:
            entry["declined"] = self.ip6
        if self.ip6 is not None:
            entry["ipv6address"] = self.ip6
        return entry


REPLICA_ADDRESSES = "ReplicaAddressesOutsideRange"
UNKNOWN_CLIENTS = "UnknownClients"


async def render_pool_status(
    handle: PoolHandle, current: dict[str, Any], *, replicas: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    """Conditions (Ready, Serving; UnknownClients, ReplicaAddressesOutsideRange and
    AllocatedListTruncated once they had something to say), the replicas that
    serve the pool and the allocated map; the timestamps move only when
    something else does, so a rewrite is a no-op."""
    status = dict(current)
    conditions = list(current.get("conditions") or [])
    state: PoolState | None = None
    if handle.actor is not None and handle.started.is_set():
        with contextlib.suppress(PoolStopped):  # restarting: shown as not ready
            state = await handle.actor.ask(Inspect())
    if handle.problem is not None:
        reason, message = handle.problem
        # An edit that made a serving pool invalid: it still serves the last good spec.
        ready = state is not None and reason == "InvalidPool"
    elif state is None:
        reason, message, ready = "Starting", "the pool is starting", False
    else:
        reason, message, ready = "Loaded", "reservations loaded", True
    generation = handle.generation
    conditions = set_condition(
        conditions, "Ready", status=ready, reason=reason, message=message, generation=generation
    )
    serving = state is not None and state.serving
    paused = handle.config is not None and handle.config.paused
    no_address = handle.actor.no_address if handle.actor is not None else None
    only6 = state is not None and not state.v4
    protocol = "DHCPv6" if only6 else "DHCP"
    if only6 and handle.actor is not None and handle.actor.no_dhcp6 is not None:
        serving, no_address = False, handle.actor.no_dhcp6  # its one service is down
    reason = "Paused" if paused else ("Listening" if serving else "NotListening")
    if serving and handle.config is not None:
        serving_message = f"answering {protocol} on {handle.config.interface}"
    elif paused:
        serving_message = f"paused: reservations kept, {protocol} not answered"
    elif no_address is not None:
        reason, serving_message = ("NoDhcpv6" if only6 else "NoAddress"), no_address
    else:
        serving_message = f"not answering {protocol}"
    conditions = set_condition(
        conditions,
        "Serving",
        status=serving,
        reason=reason,
        message=serving_message,
        generation=generation,
    )
    unknown = handle.actor.figures().unknown_macs if handle.actor is not None else 0
    if unknown or any(c.get("type") == UNKNOWN_CLIENTS for c in conditions):
        conditions = set_condition(
            conditions,
            UNKNOWN_CLIENTS,
            status=bool(unknown),
            reason="Heard" if unknown else "NoneHeard",
            message=f"{unknown} MACs with no reservation sent DHCP lately (not answered; "
            "`kvip why`, or GET /debug/mac/<mac> on a replica's metrics port)"
            if unknown
            else "no DHCP from MACs without a reservation lately",
            generation=generation,
        )
    problems = handle.actor.address_problems if handle.actor is not None else {}
    if problems or any(c.get("type") == REPLICA_ADDRESSES for c in conditions):
        conditions = set_condition(
            conditions,
            REPLICA_ADDRESSES,
            status=not problems,
            reason="InsideRange" if problems else "OutsideRange",
            message="; ".join(problems[ip] for ip in sorted(problems))
            or "every kvip replica's address is outside the range",
            generation=generation,
        )
    status["conditions"] = conditions
    if replicas is not None:
        status["replicas"] = replicas
    if state is not None:
        left_out = _left_out(state, handle.annotations)
        if left_out is None and state.v6 is not None:
            left_out = _left_out6(state.v6, handle.annotations)
        if not state.v4:
            status.pop("ipv4", None)  # an IPv6-only pool
        elif left_out is not None:
            status["ipv4"] = {"used": state.used, "available": state.available}
        else:
            allocated = {str(ip): "EXCLUDED" for ip in state.excluded}
            allocated.update((str(ip), owner) for ip, owner in state.allocations)
            status["ipv4"] = {
                "allocated": allocated,
                "used": state.used,
                "available": state.available,
            }
        # Only pools that were ever over the cap carry the condition: the others
        # keep the status they always had.
        if left_out is not None or any(c.get("type") == TRUNCATED for c in conditions):
            conditions = set_condition(
                conditions,
                TRUNCATED,
                status=left_out is not None,
                reason=left_out[0] if left_out is not None else "Listed",
                message=left_out[1]
                if left_out is not None
                else "every address is listed in status.ipv4.allocated (and status.ipv6's)",
                generation=generation,
            )
            status["conditions"] = conditions
        if state.v6 is not None:
            status["ipv6"] = _ipv6_status(state.v6, handle.annotations)
        else:
            status.pop("ipv6", None)
    if status != current:
        status["lastupdate"] = now_rfc3339()
    return status


def _ipv6_status(state: PoolState6, annotations: dict[str, str]) -> dict[str, Any]:
    """status.ipv6: counts as strings (a /64's available does not fit an int64),
    and the allocated map under the same cap as the IPv4 one."""
    entries = len(state.excluded) + len(state.allocations)
    shown: dict[str, Any] = {
        "used": str(state.used),
        "available": str(state.available),
        "excluded": str(len(state.excluded)),
    }
    if entries <= allocated_list_max(annotations):
        allocated = {str(ip): "EXCLUDED" for ip in state.excluded}
        allocated.update((str(ip), owner) for ip, owner in state.allocations)
        shown["allocated"] = allocated
    return shown


def _left_out6(state: PoolState6, annotations: dict[str, str]) -> tuple[str, str] | None:
    """(reason, message) when status.ipv6.allocated is left out, else None."""
    entries = len(state.excluded) + len(state.allocations)
    cap = allocated_list_max(annotations)
    if entries <= cap:
        return None
    return "TooManyEntries", (
        f"{entries} IPv6 entries, over the cap of {cap}: status.ipv6.allocated is left out; "
        "used and available stay exact; every reservation is in the vmnetcfgs "
        "(spec.networkconfig[].ipv6address)"
    )


def allocated_list_max(annotations: dict[str, str]) -> int:
    """The pool's cap on allocated entries: ALLOCATED_LIST_MAX, or lower by
    annotation (a value that is not a whole number >= 0 is ignored)."""
    value = annotations.get(ALLOCATED_LIST_MAX_ANNOTATION, "").strip()
    return min(int(value), ALLOCATED_LIST_MAX) if value.isdigit() else ALLOCATED_LIST_MAX


def _left_out(state: PoolState, annotations: dict[str, str]) -> tuple[str, str] | None:
    """(reason, message) when the allocated map is too big to write, else None."""
    entries = len(state.excluded) + len(state.allocations)
    cap = allocated_list_max(annotations)
    where = (
        "used and available stay exact; every reservation is in the vmnetcfgs "
        "(spec.networkconfig[].ipaddress): kubectl get virtualmachinenetworkconfigs -A"
    )
    counted = f"{entries} {'entry' if entries == 1 else 'entries'}"
    if entries > cap and cap < ALLOCATED_LIST_MAX:
        return "CappedByAnnotation", (
            f"{counted}, over this pool's {ALLOCATED_LIST_MAX_ANNOTATION} of {cap}: "
            f"status.ipv4.allocated is left out; {where}"
        )
    if entries > cap:
        return "TooManyEntries", (
            f"{counted}, over the cap of {cap} that keeps the IPPool within the API server's "
            f"size limit: status.ipv4.allocated is left out; {where}"
        )
    # JSON of each entry: two quoted strings, a colon and a comma.
    size = sum(len(str(ip)) + 14 for ip in state.excluded) + sum(
        len(str(ip)) + len(owner) + 6 for ip, owner in state.allocations
    )
    if size > ALLOCATED_LIST_MAX_BYTES:
        return "TooLarge", (
            f"{counted}, {size} bytes, over the {ALLOCATED_LIST_MAX_BYTES} bytes that keep "
            f"the IPPool within the API server's size limit: status.ipv4.allocated is left out; "
            f"{where}"
        )
    return None


def render_vmnetcfg_status(
    nics: list[NicStatus], current: dict[str, Any], *, theirs: Callable[[str, str], bool]
) -> dict[str, Any]:
    """Our NICs' entries, plus the entries that `theirs(network, mac)` says belong to
    another shard (a network this kvip does not serve, of a NIC the VM still has)."""
    status = dict(current)
    ours = {(nic.network, nic.mac) for nic in nics}
    kept = [
        entry
        for entry in current.get("networkconfig") or []
        if (entry.get("networkname"), entry.get("macaddress") or "") not in ours
        and theirs(str(entry.get("networkname")), str(entry.get("macaddress")))
    ]
    status["networkconfig"] = [nic.as_status() for nic in nics] + kept
    return status
