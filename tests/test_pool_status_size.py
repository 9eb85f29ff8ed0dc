"""An IPPool's status stays within the API server's size limit (issue 14).

kubevirt-ip-helper's `status.ipv4.allocated` lists every address (about 55
bytes each); the local API server refuses the IPPool past about 28,800 entries
(etcd: "request is too large"). Up to ALLOCATED_LIST_MAX entries (and
ALLOCATED_LIST_MAX_BYTES) the map is written as always; above, it is left out
and the condition AllocatedListTruncated says so, while used and available stay
exact. Conditions carry the IPPool's metadata.generation (observedGeneration).

The fast tests drive the Supervisor and the pool actors without a network
(paused pools open no socket); the last one writes a 30,000-reservation pool's
status through the StatusWriter to the real API server.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from ipaddress import IPv4Address
from typing import Any

import trio

from kvip.actors._messages import RestoreReservation
from kvip.actors._status_render import render_pool_status
from kvip.actors._supervisor import Supervisor
from kvip.ipam import Owner
from tests.lab import objects

#: A /16 pool: 198.18.0.10 .. 198.18.255.250 is 65,521 addresses.
START, END = IPv4Address("198.18.0.10"), IPv4Address("198.18.255.250")
RANGE = int(END) - int(START) + 1


def big_pool(
    name: str, *, paused: bool = True, exclude: tuple[str, ...] = (), **metadata: Any
) -> dict[str, Any]:
    """A /16 IPPool as the API server hands it out (generation 1)."""
    body = objects.ippool(
        name, "ns/net", subnet="198.18.0.0/16", start=str(START), end=str(END),
        exclude=exclude, paused=paused,
    )  # fmt: skip
    body["metadata"] |= {"generation": 1, **metadata}
    return body


def reservations(count: int, *, vm: str = "vm") -> list[RestoreReservation]:
    return [
        RestoreReservation(Owner(f"default/{vm}{i} [{mac(i)}]"), mac(i), START + i, hostname=None)
        for i in range(count)
    ]


def mac(i: int) -> str:
    return f"52:54:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"


def conditions_of(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


Check = Callable[[Supervisor, list[str]], Awaitable[None]]


def with_pool(body: dict[str, Any], held: list[RestoreReservation], check: Check) -> None:
    """Runs a Supervisor with `body` applied and its actor started holding
    `held`, then `check(supervisor, changed)` (the names on_change was told)."""

    async def main() -> None:
        changed: list[str] = []
        async with trio.open_nursery() as nursery:
            supervisor = Supervisor(
                nursery,
                restore=lambda config: held,
                on_change=changed.append,
                on_started=lambda name, errors: None,
            )
            await supervisor.apply(body)
            await supervisor.pools[body["metadata"]["name"]].started.wait()
            await check(supervisor, changed)
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_below_the_cap_the_status_is_kubevirt_ip_helpers_and_conditions_carry_the_generation() -> (
    None
):
    held = reservations(3)
    body = big_pool("p", exclude=("198.18.0.20",))

    async def check(supervisor: Supervisor, changed: list[str]) -> None:
        status = await render_pool_status(supervisor.pools["p"], {})
        assert status["ipv4"] == {
            "allocated": {
                "198.18.0.20": "EXCLUDED",
                "198.18.0.10": "default/vm0 [52:54:00:00:00:00]",
                "198.18.0.11": "default/vm1 [52:54:00:00:00:01]",
                "198.18.0.12": "default/vm2 [52:54:00:00:00:02]",
            },
            "used": 3,
            "available": RANGE - 3 - 1,
        }
        conditions = conditions_of(status)
        assert set(conditions) == {"Ready", "Serving"}  # no word of a cap
        assert {c["observedGeneration"] for c in conditions.values()} == {1}

        # A new generation the pool's config does not care about (here: the
        # same spec) still moves observedGeneration, and only that.
        changed.clear()
        newer = copy.deepcopy(body)
        newer["metadata"]["generation"] = 7
        await supervisor.apply(newer)
        assert changed == ["p"]
        again = await render_pool_status(supervisor.pools["p"], status)
        assert {c["observedGeneration"] for c in again["conditions"]} == {7}
        assert again["ipv4"] == status["ipv4"]
        before = {c["type"]: c["lastTransitionTime"] for c in status["conditions"]}
        assert {c["type"]: c["lastTransitionTime"] for c in again["conditions"]} == before

    with_pool(body, held, check)
