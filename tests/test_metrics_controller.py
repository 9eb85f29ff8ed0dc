"""The controller's metrics, moved by what a running controller meets: a whole
Controller against the in-memory API double (tests/sim) under trio's MockClock,
scraped through the registry `kvip run` serves.

Failed vmnetcfg writes count as reconcile errors by reason, a 409 on a status
write as a conflict, a pool whose socket cannot open as restarts, a full Event
queue as dropped Events, and every reconcile as a wait in the work queue.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio
import trio.testing
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from kvip.actors import Controller
from kvip.actors._events import QUEUE_SIZE, Event, ObjectRef
from kvip.app._metrics import LogCounter, registry_for
from kvip.k8s import IPPOOLS, VIRTUAL_MACHINES, VMNETCFGS
from tests.lab import objects
from tests.sim.apidouble import ApiDouble, DoubleWatcher
from tests.sim.apirules import Fault

NS = "default"
NETWORK = "default/net-a"


def no_socket(interface: str) -> Any:
    raise OSError(f"no interface {interface} here")


def scraped(registry: CollectorRegistry) -> dict[str, float]:
    text = generate_latest(registry).decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            label = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            found[f"{sample.name}{{{label}}}"] = sample.value
    return found


async def eventually(check: Callable[[], bool], what: str) -> None:
    for _ in range(600):
        if check():
            return
        await trio.sleep(0.1)
    raise AssertionError(f"never: {what}")


def with_controller(
    test: Callable[[ApiDouble, Controller, CollectorRegistry], Awaitable[None]],
) -> None:
    async def main() -> None:
        double = ApiDouble()
        # A paused pool (no socket: its reservations are made and recorded).
        double.create(IPPOOLS, objects.ippool("pool-a", NETWORK, subnet="198.18.0.0/24",
                                              server="198.18.0.1", start="198.18.0.10",
                                              end="198.18.0.20", paused=True))  # fmt: skip
        controller = Controller(double, socket_factory=no_socket, workers=2,
                                watcher_factory=DoubleWatcher)  # fmt: skip
        controller.queue.clock = trio.current_time
        registry = registry_for(controller=lambda: controller, elector=None, logs=LogCounter())
        async with trio.open_nursery() as nursery:
            await nursery.start(controller.run)
            await test(double, controller, registry)
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def create_vm(double: ApiDouble, name: str, mac: str) -> None:
    double.create(VIRTUAL_MACHINES, objects.vm(name, NS, [("nic1", NETWORK, mac)]))


def recorded(double: ApiDouble, name: str) -> bool:
    return any(body["metadata"]["name"] == name for body in double.stored(VMNETCFGS))


def test_failed_reconciles_are_counted_by_reason() -> None:
    async def test(double: ApiDouble, controller: Controller, registry: CollectorRegistry) -> None:
        before = scraped(registry)
        for reason in ("api_unavailable", "api_refused", "api_race", "ipam", "unexpected"):
            assert before[f"kvip_reconcile_errors_total{{reason={reason}}}"] == 0
        # The first vmnetcfg write meets a 500, the second a 403; the third lands.
        double.inject(Fault("create", "unavailable", plural=VMNETCFGS.plural))
        double.inject(Fault("create", "forbidden", plural=VMNETCFGS.plural))
        create_vm(double, "vm-1", "02:00:00:00:00:01")
        await eventually(lambda: recorded(double, "vm-1"), "vm-1's vmnetcfg written")
        seen = scraped(registry)
        assert seen["kvip_reconcile_errors_total{reason=api_unavailable}"] == 1
        assert seen["kvip_reconcile_errors_total{reason=api_refused}"] == 1
        assert seen["kvip_reconcile_errors_total{reason=unexpected}"] == 0
        assert seen["kvip_vmnetcfg_nics{status=OK}"] == 1
        # Every reconcile went through the queue: each waited, none waits now.
        assert seen["kvip_workqueue_wait_seconds_count{}"] >= 3
        assert seen["kvip_workqueue_depth{}"] == 0

    with_controller(test)


def test_a_nic_that_gets_no_address_counts_as_an_error() -> None:
    """The pool is full: the VM's vmnetcfg says ERROR (an alert's input), which is
    no reconcile error: nothing a retry alone would fix."""

    async def test(double: ApiDouble, controller: Controller, registry: CollectorRegistry) -> None:
        for n in range(12):  # the pool holds 11
            create_vm(double, f"vm-{n}", f"02:00:00:00:01:{n:02x}")
        await eventually(
            lambda: scraped(registry)["kvip_vmnetcfg_nics{status=ERROR}"] == 1,
            "the twelfth NIC in ERROR",
        )
        seen = scraped(registry)
        assert seen["kvip_vmnetcfg_nics{status=OK}"] == 11
        assert seen["kubevirtiphelper_ippool_available{ippool=pool-a,network=default/net-a,"
                    "subnet=198.18.0.0/24}"] == 0  # fmt: skip

    with_controller(test)


def test_status_write_conflicts_are_counted() -> None:
    async def test(double: ApiDouble, controller: Controller, registry: CollectorRegistry) -> None:
        await eventually(lambda: controller._pool_status is not None, "the pool status writer")
        double.inject(Fault("replace_status", "conflict", plural=IPPOOLS.plural))
        create_vm(double, "vm-1", "02:00:00:00:00:01")  # the pool's status changes
        await eventually(
            lambda: scraped(registry)["kvip_status_write_conflicts_total{resource=ippools}"] == 1,
            "the 409 counted",
        )
        assert scraped(registry)["kvip_status_write_conflicts_total{resource=vmnetcfgs}"] == 0

    with_controller(test)


def test_a_pool_whose_server_fails_counts_its_restarts() -> None:
    async def test(double: ApiDouble, controller: Controller, registry: CollectorRegistry) -> None:
        assert scraped(registry)["kvip_ippool_restarts_total{ippool=pool-a}"] == 0
        # Not paused: it needs a socket on eth2, and there is none.
        double.create(IPPOOLS, objects.ippool("pool-b", "default/net-b", interface="eth2",
                                              subnet="198.19.0.0/24", server="198.19.0.1",
                                              start="198.19.0.10", end="198.19.0.20"))  # fmt: skip
        await eventually(
            lambda: scraped(registry).get("kvip_ippool_restarts_total{ippool=pool-b}", 0) >= 2,
            "pool-b restarted twice",
        )
        seen = scraped(registry)
        assert seen["kvip_ippool_ready{ippool=pool-b}"] == 0
        assert seen["kvip_ippool_restarts_total{ippool=pool-a}"] == 0
        # Both serve nothing; only pool-b fails (pool-a is paused, by choice).
        assert seen["kvip_ippool_ready{ippool=pool-a}"] == 0
        assert seen["kvip_ippool_paused{ippool=pool-a}"] == 1
        assert seen["kvip_ippool_paused{ippool=pool-b}"] == 0

    with_controller(test)


def test_events_that_do_not_fit_the_queue_are_counted_as_dropped() -> None:
    async def test(double: ApiDouble, controller: Controller, registry: CollectorRegistry) -> None:
        assert scraped(registry)["kvip_events_dropped_total{}"] == 0
        recorder = controller._events
        assert recorder is not None
        ref = ObjectRef("kubevirt.io/v1", "VirtualMachine", "vm-1", namespace=NS)
        # A burst with no checkpoint in between: the writer cannot drain the queue.
        for n in range(600):
            recorder.record(Event(ref, "Allocated", f"burst {n}"))
        dropped = scraped(registry)["kvip_events_dropped_total{}"]
        # The queue holds QUEUE_SIZE; the writer, waiting in its receive, took one more.
        assert dropped == recorder.dropped == 600 - QUEUE_SIZE - 1

    with_controller(test)
