"""What kvip writes into IPPool.status and vmnetcfg.status."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kvip.actors._messages import Inspect, PoolState
from kvip.actors._pool import PoolStopped
from kvip.actors._status import now_rfc3339, set_condition
from kvip.actors._supervisor import PoolHandle


@dataclass(slots=True)
class NicStatus:
    network: str
    mac: str
    ok: bool
    message: str
    ip: str | None = None
    #: The client DECLINEd `ip` (kvip's addition to the status entry: every replica
    #: reads it, and honours the decline).
    declined: bool = False

    def as_status(self) -> dict[str, str]:
        entry = {"networkname": self.network, "macaddress": self.mac}
        if not self.mac:
            del entry["macaddress"]  # a NIC without one (said in the message)
        entry.update(status="OK" if self.ok else "ERROR", message=self.message)
        if self.declined and self.ip is not None:
            entry["declined"] = self.ip
        return entry


REPLICA_ADDRESSES = "ReplicaAddressesOutsideRange"
UNKNOWN_CLIENTS = "UnknownClients"


async def render_pool_status(
    handle: PoolHandle, current: dict[str, Any], *, replicas: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    """Conditions (Ready, Serving, and ReplicaAddressesOutsideRange once a replica's
    address was inside the range), the replicas that serve the pool and the
    allocated map; the timestamps move only when something else does, so a
    rewrite is a no-op."""
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
    conditions = set_condition(conditions, "Ready", status=ready, reason=reason, message=message)
    serving = state is not None and state.serving
    paused = handle.config is not None and handle.config.paused
    no_address = handle.actor.no_address if handle.actor is not None else None
    reason = "Paused" if paused else ("Listening" if serving else "NotListening")
    if serving and handle.config is not None:
        serving_message = f"answering DHCP on {handle.config.interface}"
    elif paused:
        serving_message = "paused: reservations kept, DHCP not answered"
    elif no_address is not None:
        reason, serving_message = "NoAddress", no_address
    else:
        serving_message = "not answering DHCP"
    conditions = set_condition(
        conditions, "Serving", status=serving, reason=reason, message=serving_message
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
        )
    status["conditions"] = conditions
    if replicas is not None:
        status["replicas"] = replicas
    if state is not None:
        allocated = {str(ip): "EXCLUDED" for ip in state.excluded}
        allocated.update((str(ip), owner) for ip, owner in state.allocations)
        status["ipv4"] = {"allocated": allocated, "used": state.used, "available": state.available}
    if status != current:
        status["lastupdate"] = now_rfc3339()
    return status


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
