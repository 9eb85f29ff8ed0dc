"""Defects the simulation found once IPv6-only pools joined it, pinned by their
shrunk replays (see test_simulation.py's header; the earlier ones are there)."""

from __future__ import annotations

from tests.sim.steps import (
    ChangeMac,
    Crash,
    CreateVm,
    DeletePool,
    Fault,
    LeaderLoss,
    PoolRange,
    RemoveNic,
    Wait,
)
from tests.sim.test_simulation import assert_holds


def test_a_claim_answered_before_another_pool_stopped_is_released() -> None:
    """Found by the simulation (a pre-existing defect, under every PYTHONHASHSEED):
    a reconcile whose claim on one pool was answered, and whose next claim found
    its pool stopped (IPPool deleted), ended before any write; the first claim
    stayed held, recorded nowhere. The NIC was removed meanwhile, so no later
    reconcile claimed it again: IPPool pool-net-b allocated 198.18.2.10 to a MAC
    the VM no longer had, for good."""
    assert_holds(
        [CreateVm(((1, True), (0, False))), ChangeMac(0, 1), Crash(0),
         Fault("watch", "unavailable", None), LeaderLoss(0.0), DeletePool(0),
         CreateVm(((0, False),)), RemoveNic(0, 0)],
        1,
    )  # fmt: skip


def test_a_nic_left_without_ipv6_keeps_no_ipv4_record_once_its_pool_is_ipv6_only() -> None:
    """Found by the simulation (IPv6-only pools): a NIC of a dual-stack pool whose
    IPv6 claim found the range exhausted (recorded at its IPv4 address alone)
    kept that ipaddress in its record after the ipv4config was removed: its
    IPv6-only claim failed again (exhausted), and a failed claim kept the
    record whole, though the pool had let the IPv4 address go."""
    assert_holds(
        [CreateVm(((0, True), (0, True))), CreateVm(((0, True), (0, True))), Wait(2.0),
         PoolRange(0, "remove", 0), Wait(2.0)]
    )  # fmt: skip
