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

import pytest
import trio

from kvip.actors._messages import RestoreReservation
from kvip.actors._status import StatusWriter
from kvip.actors._status_render import (
    ALLOCATED_LIST_MAX,
    ALLOCATED_LIST_MAX_BYTES,
    TRUNCATED,
    render_pool_status,
)
from kvip.actors._supervisor import Supervisor
from kvip.ipam import Owner
from kvip.k8s import ALLOCATED_LIST_MAX_ANNOTATION, IPPOOLS, Kube
from tests.lab import objects
from tests.lab.apiserver import ApiServer
from tests.lab.crs import Resource
from tests.lab.pool_harness import FakeSocketFactory

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


def test_the_cap_leaves_the_map_out_says_so_and_lifting_it_lists_it_again() -> None:
    held = reservations(6)
    body = big_pool("p", annotations={ALLOCATED_LIST_MAX_ANNOTATION: "5"})

    async def check(supervisor: Supervisor, changed: list[str]) -> None:
        handle = supervisor.pools["p"]
        status = await render_pool_status(handle, {})
        assert status["ipv4"] == {"used": 6, "available": RANGE - 6}
        truncated = conditions_of(status)[TRUNCATED]
        assert truncated["status"] == "True"
        assert truncated["reason"] == "CappedByAnnotation"
        assert truncated["observedGeneration"] == 1
        assert "6 entries" in truncated["message"]
        assert "virtualmachinenetworkconfigs" in truncated["message"]

        # An annotation edit (no new generation) is applied to the status.
        changed.clear()
        lifted = copy.deepcopy(body)
        lifted["metadata"]["annotations"] = {}
        await supervisor.apply(lifted)
        assert changed == ["p"]
        listed = await render_pool_status(handle, status)
        assert len(listed["ipv4"]["allocated"]) == 6
        assert listed["ipv4"]["used"] == 6
        assert conditions_of(listed)[TRUNCATED]["status"] == "False"
        assert conditions_of(listed)[TRUNCATED]["reason"] == "Listed"

    with_pool(body, held, check)


@pytest.mark.parametrize(("value", "listed"), [("0", False), ("x", True), ("-1", True)])
def test_the_annotation_zero_always_leaves_the_map_out_and_a_bad_value_is_ignored(
    value: str, listed: bool
) -> None:
    body = big_pool("p", annotations={ALLOCATED_LIST_MAX_ANNOTATION: value})

    async def check(supervisor: Supervisor, changed: list[str]) -> None:
        status = await render_pool_status(supervisor.pools["p"], {})
        assert ("allocated" in status["ipv4"]) is listed
        assert status["ipv4"]["used"] == 1
        assert (TRUNCATED in conditions_of(status)) is not listed

    with_pool(body, reservations(1), check)


def test_long_owner_names_are_capped_by_size_below_the_entry_cap() -> None:
    # VM names may be 253 characters long: 3,000 of them pass the byte budget.
    count = 3_000
    assert count < ALLOCATED_LIST_MAX and count * 280 > ALLOCATED_LIST_MAX_BYTES
    held = reservations(count, vm="v" * 250)

    async def check(supervisor: Supervisor, changed: list[str]) -> None:
        status = await render_pool_status(supervisor.pools["p"], {})
        assert status["ipv4"] == {"used": count, "available": RANGE - count}
        assert conditions_of(status)[TRUNCATED]["reason"] == "TooLarge"

    with_pool(big_pool("p"), held, check)


def test_a_pool_of_30000_reservations_keeps_an_accepted_status_on_the_api_server(
    apiserver: ApiServer, crds: list[str], ippools: Resource, pool_name: str
) -> None:
    """Through the real path from the pool on: the IPPool as the API server
    stores it, a serving PoolActor holding 30,000 reservations (restored as at
    start-up; 30,000 VMs and vmnetcfgs would take minutes to create), its
    status rendered and written by the StatusWriter to the API server. Before
    the cap, that write was refused (500, "etcdserver: request is too large")."""
    count = 30_000
    created = ippools.create(
        objects.ippool(pool_name, "ns/net", subnet="198.18.0.0/16", start=str(START), end=str(END))
    )
    held = reservations(count)

    async def main() -> None:
        kube = Kube.connect(kubeconfig=str(apiserver.kubeconfig))
        async with trio.open_nursery() as nursery:
            supervisor: Supervisor

            async def render(name: str, current: dict[str, Any]) -> dict[str, Any] | None:
                return await render_pool_status(supervisor.pools[name], current)

            writer = StatusWriter(kube, IPPOOLS, render)
            supervisor = Supervisor(
                nursery,
                restore=lambda config: held,
                on_change=writer.mark,
                on_started=lambda name, errors: None,
                socket_factory=FakeSocketFactory(),
            )
            nursery.start_soon(writer.run)
            await supervisor.apply(created)
            with trio.fail_after(120):  # a bound on a hang, not a measurement
                await supervisor.pools[pool_name].started.wait()
                while not writer.idle.is_set() and writer.failures == 0:
                    await trio.sleep(0.05)
            assert writer.failures == 0, "the API server refused the status"
            nursery.cancel_scope.cancel()
        kube.close()

    trio.run(main)
    stored = ippools.get(pool_name)
    status = stored["status"]
    assert status["ipv4"] == {"used": count, "available": RANGE - count}
    conditions = conditions_of(status)
    assert conditions["Ready"]["status"] == "True"
    assert conditions["Serving"]["status"] == "True"
    assert conditions[TRUNCATED]["status"] == "True"
    assert conditions[TRUNCATED]["reason"] == "TooManyEntries"
    assert f"{count} entries" in conditions[TRUNCATED]["message"]
    generation = stored["metadata"]["generation"]
    assert {c["observedGeneration"] for c in conditions.values()} == {generation}
