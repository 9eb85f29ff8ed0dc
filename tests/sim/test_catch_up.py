"""A new leader's catch-up against a list answer that is older than a watch event.

The API server makes a list answer, then sends it; a watch event made later may
be applied first. The simulation's double answers a list at once, so its runs
never had this order: here the answer travels for a second, and the VM it
lists is deleted meanwhile (the chaos tier's seed 7027: a deleted VM kept its
vmnetcfg and its addresses for good).
"""

from __future__ import annotations

from typing import Any

import trio
from trio.testing import MockClock

from kvip.k8s import VIRTUAL_MACHINES
from tests.sim.driver import Sim
from tests.sim.replicas import ReplicaView
from tests.sim.steps import CreateVm, DeleteVm, LeaderLoss, Step, Wait


class DeletedWhileListed(Sim):
    """At the leader loss, the next leader's list of VMs is answered late: the
    first VM is deleted (and the watch says so) before the answer arrives."""

    async def apply(self, step: Step) -> None:
        if isinstance(step, LeaderLoss) and self.follower is not None:
            self._answer_late(self.follower.kube)
        await Sim.apply(self, step)

    def _answer_late(self, view: Any) -> None:
        listed: list[bool] = []

        def list_(resource: Any, **kwargs: Any) -> Any:
            if resource == VIRTUAL_MACHINES:
                listed.append(True)
            return self.double.list(resource, **kwargs)

        async def run(fn: Any, *args: Any) -> Any:
            answer = await ReplicaView.run(view, fn, *args)
            if listed == [True]:
                listed.append(False)  # once
                await Sim.apply(self, DeleteVm(0))
                await trio.sleep(1.0)  # the watch brings the deletion meanwhile
            return answer

        view.list, view.run = list_, run


def test_a_vm_deleted_while_the_new_leader_lists_the_vms_stays_deleted() -> None:
    sim = DeletedWhileListed(0)
    steps: list[Step] = [CreateVm(((0, True),)), CreateVm(((1, True),)), Wait(2.0),
                         LeaderLoss(0.0), Wait(5.0)]  # fmt: skip
    trio.run(sim.run, steps, clock=MockClock(autojump_threshold=0))
    assert "vm-1" in sim.world.deleted  # the race was run
    assert sim.violations == []
