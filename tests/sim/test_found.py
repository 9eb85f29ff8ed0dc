"""Defects the simulation found once IPv6-only pools joined it, pinned by their
shrunk replays (see test_simulation.py's header; the earlier ones are there)."""

from __future__ import annotations

from tests.sim.steps import ChangeMac, Crash, CreateVm, DeletePool, Fault, LeaderLoss, RemoveNic
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
