"""One simulation: kvip's Controller, Supervisor and PoolActors against the API
double, under trio's MockClock, driven by a list of steps (steps.py).

The driver plays the user (VMs, IPPools), the cluster (faults, compaction,
API server restarts, the Lease) and the VMs' DHCP clients; checks.py checks
the chaos invariants on what the double stores.

Pools are paused (no socket, no packet thread: threads and MockClock do not
mix); a DHCP packet goes to the pool's Responder the way the packet thread
hands it over (checks.deliver; DHCPv6: dhcp6.deliver6).
"""

from __future__ import annotations

import contextlib
import json
import random
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Network
from typing import Any

import trio
import trio.testing

from kvip.actors import Controller, PoolActor
from kvip.k8s import IPPOOLS, STATIC_IP_ANNOTATION, VIRTUAL_MACHINES, VMNETCFGS
from protocol import MessageType
from protocol.dhcp6 import MessageType as MessageType6
from tests.chaos.invariants import (
    Tracker,
)
from tests.chaos.model import Nic, Pool, Range6, Vm, World
from tests.lab import objects
from tests.sim import steps as s
from tests.sim.apidouble import ApiDouble, DoubleWatcher
from tests.sim.apirules import Fault as DoubleFault
from tests.sim.checks import NAMESPACE, Checks
from tests.sim.dhcp6 import Checks6, Declined6, offered
from tests.sim.replicas import ReplicaView

SELECTOR = "kvip-sim=yes"
#: The first starts dual-stack, the second IPv4-only, the third IPv6-only. The
#: pinned replays run on the first two (a third pool's actor would change their
#: interleavings), the main run on all three.
NETWORKS = ("net-a", "net-b", "net-c")
WORKERS = 4


class Stop(Exception):
    """The simulation cannot go on (kvip's controller died)."""


def no_socket(interface: str) -> Any:
    raise OSError(f"simulated pools are paused: no socket for {interface}")


def range6(index: int) -> Range6:
    """The IPv6 range of the index-th network while its pool has an ipv6config."""
    return Range6(IPv6Network(f"2001:db8:{index + 1}::/64"))


@dataclass(slots=True)
class Sim(Checks, Checks6):
    seed: int
    #: How many of NETWORKS the simulation has.
    networks: int = 2
    nets: tuple[str, ...] = field(init=False)
    double: ApiDouble = field(init=False)
    world: World = field(init=False)
    tracker: Tracker = field(default_factory=Tracker)
    violations: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    absent: set[str] = field(default_factory=set)
    declined: set[str] = field(default_factory=set)
    declined6: list[Declined6] = field(default_factory=list)
    #: The leader, and the replica that follows (serves, never writes).
    controller: Controller | None = None
    follower: Controller | None = None
    terms: int = 0
    dhcp_checks: int = 0
    _rng: random.Random = field(init=False)
    _names: int = 0
    _macs: int = 0
    _nursery: trio.Nursery | None = None
    #: (cancel scope, ended) of the leader's process, and of the follower's.
    _term: tuple[trio.CancelScope, trio.Event] | None = None
    _follower_term: tuple[trio.CancelScope, trio.Event] | None = None

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        latencies = (0.001, 0.005, 0.02, 0.1)
        self.double = ApiDouble(latency=lambda: self._rng.choice(latencies))
        self.nets = NETWORKS[: self.networks]
        pools = {
            net: Pool(f"pool-{net}", net, "eth1", IPv4Network(f"198.18.{i + 1}.0/24"), 10, 20)
            for i, net in enumerate(self.nets)
        }
        for i, net in enumerate(self.nets):
            if i % 2 == 0:  # every other pool starts with an ipv6config
                pools[net].v6 = range6(i)
            pools[net].v4 = i != 2
        self.world = World(NAMESPACE, pools)

    # -- running ------------------------------------------------------------------

    async def run(self, steps: list[s.Step]) -> list[str]:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for network in self.nets:
                    self._create_pool(network)
                self._start_term()
                self._start_follower()
                for step in steps:
                    self.log.append(repr(step))
                    await self.apply(step)
                    self._midway()
                await self.finish()
                nursery.cancel_scope.cancel()
        except* Stop:
            pass
        return self.violations

    def _replica(self, *, leading: bool) -> Controller:
        self.terms += 1
        name = f"replica-{self.terms}"
        controller = Controller(
            self.double,
            socket_factory=no_socket,
            pool_selector=SELECTOR,
            workers=WORKERS,
            watcher_factory=DoubleWatcher,
            leading=leading,
        )
        view = ReplicaView(self.double, name, lambda: controller.leading, self.violations)
        controller.kube = view.kube
        return controller

    def _start_term(self) -> None:
        """A leader from the start (the first replica, or one that took over)."""
        self.controller = self._replica(leading=True)
        self._term = self._start(self.controller)

    def _start_follower(self) -> None:
        self.follower = self._replica(leading=False)
        self._follower_term = self._start(self.follower)

    def _start(self, controller: Controller) -> tuple[trio.CancelScope, trio.Event]:
        term = (trio.CancelScope(), trio.Event())
        assert self._nursery is not None
        self._nursery.start_soon(self._lead, controller, *term)
        return term

    async def _lead(self, controller: Controller, term: trio.CancelScope, done: trio.Event) -> None:
        try:
            with term:
                await controller.run()
        except Exception as exc:
            self.violations.append(f"crash: the controller died: {exc!r}")
            raise Stop from exc
        finally:
            done.set()

    # -- the steps ------------------------------------------------------------------

    async def apply(self, step: s.Step) -> None:
        world = self.world
        vm: Vm | None
        if isinstance(step, s.Wait):
            await trio.sleep(step.seconds)
        elif isinstance(step, s.CreateVm):
            self._names += 1
            vm = Vm(f"vm-{self._names}", "", [])
            for net, has_mac in step.nics:
                network = self._network(net, extra=vm)
                if network is not None:
                    vm.nics.append(
                        Nic(f"nic{len(vm.nics)}", network, self._mac() if has_mac else None)
                    )
            created = self.double.create(
                VIRTUAL_MACHINES, objects.vm(vm.name, NAMESPACE, vm.body_nics())
            )
            vm.uid = created["metadata"]["uid"]
            world.vms[vm.name] = vm
        elif isinstance(step, s.DeleteVm):
            if (vm := self._vm(step.vm)) is not None:
                self.double.delete(VIRTUAL_MACHINES, vm.name, namespace=NAMESPACE)
                del world.vms[vm.name]
                world.deleted[vm.name] = vm.uid
        elif isinstance(step, s.AddNic):
            vm = self._vm(step.vm)
            network = self._network(step.net)
            if vm is not None and network is not None and len(vm.nics) < 3:
                names = {nic.iface for nic in vm.nics}
                iface = next(f"nic{i}" for i in range(4) if f"nic{i}" not in names)
                vm.nics.append(Nic(iface, network, self._mac()))
                self._patch_vm(vm)
        elif isinstance(step, s.RemoveNic):
            if (vm := self._vm(step.vm)) is not None and vm.nics:
                nic = vm.nics.pop(step.nic % len(vm.nics))
                self.tracker.forget(vm.uid, nic.mac)
                self._patch_vm(vm)
        elif isinstance(step, s.ChangeMac):
            if (vm := self._vm(step.vm)) is not None and vm.nics:
                nic = vm.nics[step.nic % len(vm.nics)]
                self.tracker.forget(vm.uid, nic.mac)
                nic.mac = self._mac()
                self._patch_vm(vm)
        elif isinstance(step, s.PoolRange | s.PoolOptions):
            self._change_pool(step)
        elif isinstance(step, s.PoolRange6):
            self._change_pool6(step)
        elif isinstance(step, s.DeletePool):
            network = self.nets[step.net % len(self.nets)]
            if network not in self.absent:
                self.double.delete(IPPOOLS, world.pools[network].name)
                self.absent.add(network)
        elif isinstance(step, s.CreatePool):
            network = self.nets[step.net % len(self.nets)]
            if network in self.absent:
                self._create_pool(network)
        elif isinstance(step, s.Crash):
            self._crash(self.nets[step.net % len(self.nets)])
            if not step.with_next:
                await trio.testing.wait_all_tasks_blocked()
        elif isinstance(step, s.Fault):
            self.double.inject(DoubleFault(step.op, step.error, step.plural))
        elif isinstance(step, s.Compact):
            self.double.compact()
            self.double.drop_watches()
        elif isinstance(step, s.DropWatches):
            self.double.drop_watches()
        elif isinstance(step, s.LeaderLoss):
            # The leader's process dies; the follower takes the Lease `gap` s later
            # and a new replica starts, following.
            assert self._term is not None
            scope, ended = self._term
            scope.cancel()
            await ended.wait()
            await trio.sleep(step.gap)
            self.controller, self._term = self.follower, self._follower_term
            assert self.controller is not None
            self._start_follower()
            await self.controller.lead()
        elif isinstance(step, s.Handover):
            # The leader could not renew and steps down; it goes on serving.
            assert self.controller is not None and self.follower is not None
            self.controller.follow()
            self.controller, self.follower = self.follower, self.controller
            self._term, self._follower_term = self._follower_term, self._term
            await self.controller.lead()
        elif isinstance(step, s.Dhcp):
            self._dhcp(step)
        elif isinstance(step, s.Dhcp6):
            self._dhcp6(step)
        elif isinstance(step, s.DeleteVmnetcfg):
            if (vm := self._vm(step.vm)) is not None:
                self.double.delete(VMNETCFGS, vm.name, namespace=NAMESPACE)
        elif isinstance(step, s.StaticIp):
            self._static_ip(step)
        else:
            raise AssertionError(f"unknown step {step!r}")

    def _vm(self, index: int) -> Vm | None:
        names = sorted(self.world.vms)
        return self.world.vms[names[index % len(names)]] if names else None

    def _network(self, index: int, *, extra: Vm | None = None) -> str | None:
        """The index-th network with room for one more NIC (never more NICs than
        addresses: the invariants promise every NIC an address)."""
        planned = extra.nics if extra is not None else []
        room = [
            net
            for net in self.nets
            if self.world.nics_on(net) + sum(n.network == net for n in planned)
            < self.world.pools[net].capacity() - 1
        ]
        return room[index % len(room)] if room else None

    def _mac(self) -> str:
        self._macs += 1
        return f"52:54:00:5e:{self._macs >> 8:02x}:{self._macs % 256:02x}"

    def _patch_vm(self, vm: Vm) -> None:
        self.double.patch(VIRTUAL_MACHINES, vm.name, vm.template_patch(), namespace=NAMESPACE)

    def _pool_body(self, network: str) -> dict[str, Any]:
        body = self.world.pools[network].body(namespace=NAMESPACE, selector=SELECTOR)
        body["spec"]["paused"] = True
        return body

    def _create_pool(self, network: str) -> None:
        self.double.create(IPPOOLS, self._pool_body(network))
        self.absent.discard(network)

    def _change_pool(self, step: s.PoolRange | s.PoolOptions) -> None:
        network = self.nets[step.net % len(self.nets)]
        pool, nics = self.world.pools[network], self.world.nics_on(network)
        if isinstance(step, s.PoolOptions):
            pool.dns = [str(pool.address(step.dns))]
        elif step.kind in ("add", "remove"):
            if step.kind == "remove" and pool.v6 is None:
                return  # a pool keeps one family at least
            pool.set_v4(step.kind == "add")
            if network not in self.absent:
                self.double.patch(IPPOOLS, pool.name, pool.spec_patch())
            return
        elif step.kind == "end":
            # Never below what the NICs need: shrinking past a held address is the point.
            lowest = pool.start + nics + 1 + len(pool.exclude)
            pool.end = max(lowest, min(pool.start + step.value, pool.start + 40))
        elif step.kind == "exclude" and pool.capacity() - 1 > nics + 1:
            free = [o for o in range(pool.start, pool.end + 1) if o not in pool.exclude]
            pool.exclude.append(free[step.value % len(free)])
        elif step.kind == "include" and pool.exclude:
            pool.exclude.pop(step.value % len(pool.exclude))
        if network not in self.absent and pool.v4:  # (else kept for when it comes back)
            self.double.patch(IPPOOLS, pool.name, {"spec": {"ipv4config": pool.ipv4config()}})

    def _change_pool6(self, step: s.PoolRange6) -> None:
        index = step.net % len(self.nets)
        network = self.nets[index]
        pool = self.world.pools[network]
        v6 = pool.v6
        if step.kind == "add" and v6 is None:
            pool.v6 = range6(index)
        elif step.kind == "remove":
            if not pool.v4:
                return  # a pool keeps one family at least
            pool.v6 = None
        elif v6 is None:
            return
        elif step.kind == "end":
            # Down to one address: running out, and shrinking past held ones, is the point.
            v6.end = v6.start + step.value
        elif step.kind == "exclude":
            v6.exclude.append(v6.start + step.value % (v6.end - v6.start + 1))
        elif step.kind == "include" and v6.exclude:
            v6.exclude.pop(step.value % len(v6.exclude))
        if network not in self.absent:
            self.double.patch(IPPOOLS, pool.name, pool.spec_patch())

    def _static_ip(self, step: s.StaticIp) -> None:
        vm = self._vm(step.vm)
        if vm is None or not vm.nics:
            return
        nic = vm.nics[step.nic % len(vm.nics)]
        pool = self.world.pools[nic.network]
        ip = str(pool.address(pool.start + step.offset % (pool.end - pool.start + 1)))
        if step.offset6 is not None and pool.v6 is not None:
            v6 = pool.v6
            ip += f",{v6.address(v6.start + step.offset6 % (v6.end - v6.start + 1))}"
        annotations = {STATIC_IP_ANNOTATION: json.dumps({nic.iface: ip})}
        self.double.patch(
            VIRTUAL_MACHINES,
            vm.name,
            {"metadata": {"annotations": annotations}},
            namespace=NAMESPACE,
        )

    def _actor(self, network: str, replica: Controller | None = None) -> PoolActor | None:
        """The network's pool in `replica` (default: the leader's)."""
        controller = replica or self.controller
        if controller is None or not controller.ready.is_set():
            return None
        return controller.supervisor.by_network(self.world.network_key(network))

    def _crash(self, network: str) -> None:
        actor = self._actor(network)
        nursery = actor._nursery if actor is not None else None
        if nursery is None:
            return

        async def crash() -> None:
            raise RuntimeError("simulated crash of the pool actor")

        with contextlib.suppress(RuntimeError):  # the actor has stopped already
            nursery.start_soon(crash)

    # -- DHCP -----------------------------------------------------------------------

    def _dhcp(self, step: s.Dhcp) -> None:
        vm = self._vm(step.vm)
        if vm is None or not vm.nics:
            return
        nic = vm.nics[step.nic % len(vm.nics)]
        actor = self._actor(nic.network)
        if nic.mac is None or actor is None:
            return
        recorded = self._recorded(nic.network).get(nic.mac, set())
        pool = self.world.pools[nic.network]
        ip = IPv4Address(min(recorded)) if recorded else pool.address(pool.start)
        reply = self.send(actor, nic.mac, MessageType[step.kind], ip, pool.server)
        self._check_answer(nic.network, nic.mac, reply, settled=False)
        follower = self._actor(nic.network, self.follower)
        if follower is not None and step.kind != "DECLINE":
            # (A DECLINE reaches the leader only: a follower keeps its own to itself.)
            reply = self.send(follower, nic.mac, MessageType[step.kind], ip, pool.server)
            self._check_answer(nic.network, nic.mac, reply, settled=False)
        if step.kind == "DECLINE":
            # The pool may hold the address even when no record shows it right now
            # (its vmnetcfg being re-created): the VM is reset before the checks.
            self.declined.add(vm.name)

    def _dhcp6(self, step: s.Dhcp6) -> None:
        vm = self._vm(step.vm)
        if vm is None or not vm.nics:
            return
        nic = vm.nics[step.nic % len(vm.nics)]
        actor = self._actor(nic.network)
        if nic.mac is None or actor is None or self.controller is None:
            return
        recorded = sorted(self._recorded6(nic.network).get(nic.mac, set()))
        kind = MessageType6[step.kind]
        ip6 = recorded[0] if recorded else None
        if kind == MessageType6.DECLINE and ip6 is None:
            return
        asked = ip6 if kind != MessageType6.SOLICIT else None
        reply = self.send6(actor, nic.mac, kind, asked)
        self._check_answer6(nic.network, nic.mac, reply, settled=False)
        follower = self._actor(nic.network, self.follower)
        if follower is not None and kind != MessageType6.DECLINE:
            reply = self.send6(follower, nic.mac, kind, asked)
            self._check_answer6(nic.network, nic.mac, reply, settled=False)
        if kind == MessageType6.DECLINE and ip6 is not None:
            self.declined.add(vm.name)  # reset before the final checks
            served = actor.book.v6
            if served is not None and ip6 in {str(a) for a in served.responder.declined}:
                self.declined6.append(Declined6(self.controller, nic.network, nic.mac, ip6))
                # At once, and until the reset: not handed out again to it.
                again = offered(self.send6(actor, nic.mac, MessageType6.SOLICIT))
                if ip6 in again:
                    self.violations.append(f"decline6: {nic.network} offers {ip6} to "
                                           f"{nic.mac} right after its DECLINE")  # fmt: skip
