"""A replica whose VM watch lags its vmnetcfgs never takes a live VM for deleted.

The whole Controller against the in-memory API double (tests/sim) under trio's
MockClock. A vmnetcfg can reach a replica before the VM it was written for
(another replica wrote it; the VM watch is behind): the VM is asked for at the
API server before its vmnetcfg is removed and its addresses released.
"""

from __future__ import annotations

import trio
from prometheus_client.registry import CollectorRegistry

from kvip.actors import Controller
from kvip.k8s import VMNETCFGS
from tests.sim.apidouble import ApiDouble
from tests.test_metrics_controller import NS, create_vm, eventually, recorded, with_controller


def test_a_vmnetcfg_whose_vm_the_cache_lacks_stays_while_the_vm_exists() -> None:
    """Before the fix, the reconcile of such a vmnetcfg released the address and
    removed the record: the VM came back at whatever address was free."""

    async def test(double: ApiDouble, controller: Controller, _: CollectorRegistry) -> None:
        create_vm(double, "vm-1", "02:00:00:00:00:01")
        await eventually(lambda: recorded(double, "vm-1"), "vm-1's vmnetcfg written")
        before = double.get(VMNETCFGS, "vm-1", namespace=NS)
        # The VM watch "lags": the cache lacks the VM that the API server has.
        key = f"{NS}/vm-1"
        controller.vms.pop(key)
        controller.queue.add(key)
        await trio.sleep(5)
        assert key in controller.vms  # cached again from the API server
        after = double.get(VMNETCFGS, "vm-1", namespace=NS)
        assert after["metadata"]["uid"] == before["metadata"]["uid"]
        assert after["spec"] == before["spec"]

    with_controller(test)
