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

    def as_status(self) -> dict[str, str]:
        return {
            "networkname": self.network,
            "macaddress": self.mac,
            "status": "OK" if self.ok else "ERROR",
            "message": self.message,
        }


async def render_pool_status(handle: PoolHandle, current: dict[str, Any]) -> dict[str, Any]:
    """Conditions (Ready, Serving) and the allocated map of one pool; the
    timestamps move only when something else does, so a rewrite is a no-op."""
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
    if serving and handle.config is not None:
        serving_message = f"answering DHCP on {handle.config.interface}"
    elif paused:
        serving_message = "paused: reservations kept, DHCP not answered"
    else:
        serving_message = "not answering DHCP"
    conditions = set_condition(
        conditions,
        "Serving",
        status=serving,
        reason="Paused" if paused else ("Listening" if serving else "NotListening"),
        message=serving_message,
        generation=generation,
    )
    status["conditions"] = conditions
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
        if (entry.get("networkname"), entry.get("macaddress")) not in ours
        and theirs(str(entry.get("networkname")), str(entry.get("macaddress")))
    ]
    status["networkconfig"] = [nic.as_status() for nic in nics] + kept
    return status
