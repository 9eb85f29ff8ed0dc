"""One chaos scenario: a seeded sequence of operations and faults, then the checks.

`random.Random(seed)` picks every operation, every fault and where it strikes,
so a seed names a scenario (the timing of kvip's reactions is the machine's:
a replay re-runs the same script, not the same interleaving).
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from ipaddress import IPv4Network, IPv6Network
from typing import Any

from kubernetes.client.exceptions import ApiException

from tests.chaos.invariants import (
    CfgView,
    Observation,
    PoolView,
    Tracker,
    check_settled,
)
from tests.chaos.leases import lease_checks
from tests.chaos.model import Nic, Pool, Range6, Vm, World
from tests.chaos.results import FAULTS, Result
from tests.chaos.rig import Rig, patiently
from tests.chaos.writer import MERGE, StatusWriter
from tests.lab import objects
from tests.lab.objects import CFGS, GROUP, VERSION, VMS

MAX_VMS = 8
SETTLE_TIMEOUT = 60.0
QUIET = 1.5
#: Violations must persist this long after settling to count (kvip may still be writing).
CHECK_PATIENCE = 30.0
DHCP_SAMPLES = 2
#: The share of scenarios whose dual-stack pool (net-a) starts IPv6-only.
IPV6_ONLY = 0.3


class Scenario:
    def __init__(
        self,
        rig: Rig,
        seed: int,
        *,
        min_ops: int = 10,
        max_ops: int = 25,
        faults: Mapping[str, float] = FAULTS,
    ) -> None:
        self.rig = rig
        self.fault_weights = dict(faults)
        self.seed = seed
        self.rng = random.Random(seed)
        self.min_ops, self.max_ops = min_ops, max_ops
        tag = f"{seed}-{uuid.uuid4().hex[:4]}"
        self.namespace = f"chaos-{tag}"
        self.selector = rig.selector
        pools = {}
        for index, (network, interface, subnet) in enumerate((
            ("net-a", "eth1", "198.18.0.0/16"),
            ("net-b", "eth2", "198.19.0.0/16"),
        )):  # fmt: skip
            end = 10 + self.rng.randint(10, 30)
            pools[network] = Pool(
                f"chaos-{tag}-{network}", network, interface, IPv4Network(subnet), 10, end
            )
            if index % 2 == 0:  # every other pool is dual-stack, or IPv6-only
                pools[network].v6 = self._range6(index)
                pools[network].v4 = self.rng.random() >= IPV6_ONLY
        self.world = World(self.namespace, pools)
        self.tracker = Tracker()
        self.result = Result(seed)
        self.log_mark = rig.log_mark()
        self.writer: StatusWriter | None = None
        self.writer_ops = 0
        self._macs = 0
        self._names = 0
        self.began = time.monotonic()

    # -- the run ---------------------------------------------------------------------

    def run(self) -> Result:
        rng = self.rng
        try:
            self.rig.create_namespace(self.namespace)
            for pool in self.world.pools.values():
                body = pool.body(namespace=self.namespace, selector=self.selector)
                patiently(
                    self.rig.custom.create_cluster_custom_object, GROUP, VERSION, "ippools", body
                )
                halves = [h for h, on in (("IPv4", pool.v4), ("IPv6", pool.v6)) if on]
                self.note(f"pool {pool.network}: {' and '.join(halves)}")
            count = rng.randint(self.min_ops, self.max_ops)
            faults = {
                at: rng.choices(
                    list(self.fault_weights), weights=list(self.fault_weights.values())
                )[0]
                for at in rng.sample(range(count), rng.randint(1, 2))
            }
            for step in range(count):
                if step in faults:
                    self._fault(faults[step])
                self._operation()
                self.result.operations += 1
                self._tick_writer()
                if rng.random() < 0.3:
                    time.sleep(rng.choice((0.05, 0.2, 0.5)))
                self._observe_midway()
            if rng.random() < 0.3:
                # A second writer that has the last word: nothing kvip does later
                # masks what it wrote, so only self-healing can repair it.
                self._fault("status-writer")
                time.sleep(0.5)
            self._stop_writer()
            died = self.rig.revive_kvip()
            if died is not None:
                self.result.violations.append(died)
            self._settle()
            self._final_checks()
        except Exception as exc:
            self.result.violations.append(f"driver: {type(exc).__name__}: {exc}")
        finally:
            self._stop_writer()
            self.result.kvip_logs = self.rig.logs_since(self.log_mark)
            self.rig.cleanup(self.namespace, [p.name for p in self.world.pools.values()])
            self.note("cleaned up")
        return self.result

    def note(self, text: str) -> None:
        elapsed = time.monotonic() - self.began
        self.result.log.append(f"{len(self.result.log):3d} {elapsed:6.1f}s {text}")

    # -- operations ------------------------------------------------------------------

    def _operation(self) -> None:
        world, rng = self.world, self.rng
        choices: dict[str, float] = {"pool-options": 1, "pool-range": 1.5, "pool-range6": 1}
        if any(pool.v6 is not None for pool in world.pools.values()):
            choices["pool-ipv4"] = 0.7
        if len(world.vms) < MAX_VMS:
            choices["create-vm"] = 3
        if world.vms:
            choices.update({"delete-vm": 1.5, "add-nic": 1.5, "remove-nic": 1, "change-mac": 2})
        kind = rng.choices(list(choices), weights=list(choices.values()))[0]
        getattr(self, "_op_" + kind.replace("-", "_"))()

    def _mac(self) -> str:
        self._macs += 1
        seed, n = self.seed, self._macs
        return f"52:54:{seed % 256:02x}:{(seed >> 8) % 256:02x}:{n >> 8:02x}:{n % 256:02x}"

    def _free_network(self, planned: Counter[str] | None = None) -> str | None:
        """A network with room for one more NIC (never more NICs than addresses)."""
        planned = planned or Counter()
        room = [
            network
            for network, pool in self.world.pools.items()
            if self.world.nics_on(network) + planned[network] < pool.capacity() - 1
        ]
        return self.rng.choice(sorted(room)) if room else None

    def _new_nic(self, vm: Vm | None, network: str) -> Nic:
        taken = {nic.iface for nic in vm.nics} if vm else set()
        iface = next(f"nic{i}" for i in range(10) if f"nic{i}" not in taken)
        # Sometimes without a MAC, as before kubemacpool fills it in.
        return Nic(iface, network, self._mac() if self.rng.random() < 0.85 else None)

    def _op_create_vm(self) -> None:
        self._names += 1
        name = f"vm-{self._names}"
        vm = Vm(name, "", [])
        for _ in range(self.rng.choice((1, 1, 2))):
            network = self._free_network(Counter(nic.network for nic in vm.nics))
            if network is not None:
                vm.nics.append(self._new_nic(vm, network))
        body = objects.vm(name, self.namespace, vm.body_nics())
        created = patiently(
            self.rig.custom.create_namespaced_custom_object, *VMS[:2], self.namespace, VMS[2], body
        )
        vm.uid = created["metadata"]["uid"]
        self.world.vms[name] = vm
        self.note(f"create {name} {vm.body_nics()}")

    def _pick_vm(self) -> Vm:
        return self.world.vms[self.rng.choice(sorted(self.world.vms))]

    def _patch_vm(self, vm: Vm) -> None:
        patch = vm.template_patch()
        patiently(
            self.rig.custom.patch_namespaced_custom_object,
            *VMS[:2],
            self.namespace,
            VMS[2],
            vm.name,
            patch,
            _content_type=MERGE,
        )

    def _op_delete_vm(self) -> None:
        vm = self._pick_vm()
        patiently(
            self.rig.custom.delete_namespaced_custom_object,
            *VMS[:2],
            self.namespace,
            VMS[2],
            vm.name,
        )
        del self.world.vms[vm.name]
        self.world.deleted[vm.name] = vm.uid
        self.note(f"delete {vm.name}")

    def _op_add_nic(self) -> None:
        vm = self._pick_vm()
        network = self._free_network()
        if network is None or len(vm.nics) >= 3:
            self.note(f"add-nic {vm.name}: no room, skipped")
            return
        nic = self._new_nic(vm, network)
        vm.nics.append(nic)
        self._patch_vm(vm)
        self.note(f"add-nic {vm.name} {(nic.iface, nic.network, nic.mac)}")

    def _op_remove_nic(self) -> None:
        vm = self._pick_vm()
        if not vm.nics:
            self.note(f"remove-nic {vm.name}: none, skipped")
            return
        nic = vm.nics.pop(self.rng.randrange(len(vm.nics)))
        self._patch_vm(vm)
        self.tracker.forget(vm.uid, nic.mac)
        self.note(f"remove-nic {vm.name} {(nic.iface, nic.network, nic.mac)}")

    def _op_change_mac(self) -> None:
        vm = self._pick_vm()
        if not vm.nics:
            self.note(f"change-mac {vm.name}: no NIC, skipped")
            return
        nic = self.rng.choice(vm.nics)
        old, nic.mac = nic.mac, self._mac()
        self._patch_vm(vm)
        self.tracker.forget(vm.uid, old)
        self.note(f"change-mac {vm.name} {nic.iface}: {old} -> {nic.mac}")

    def _range6(self, index: int) -> Range6:
        """A small IPv6 range (3-10 addresses: it runs out before the IPv4 one)."""
        subnet = IPv6Network(f"fd00:18:{index + 1}::/64")
        return Range6(subnet, 0x10, 0x10 + self.rng.randint(2, 9))

    def _patch_pool(self, pool: Pool) -> None:
        patch = pool.spec_patch()
        patiently(
            self.rig.custom.patch_cluster_custom_object,
            GROUP,
            VERSION,
            "ippools",
            pool.name,
            patch,
            _content_type=MERGE,
        )

    def _op_pool_options(self) -> None:
        pool = self.world.pools[self.rng.choice(sorted(self.world.pools))]
        if self.rng.random() < 0.5:
            pool.dns = [str(pool.address(self.rng.randint(50, 60)))]
        else:
            pool.leasetime = self.rng.choice((60, 300, 600, 3600))
        self._patch_pool(pool)
        self.note(f"pool-options {pool.network}: dns={pool.dns} leasetime={pool.leasetime}")

    def _op_pool_range(self) -> None:
        rng = self.rng
        network = rng.choice(sorted(self.world.pools))
        pool = self.world.pools[network]
        nics = self.world.nics_on(network)
        kind = rng.choice(("end", "end", "exclude", "include"))
        if kind == "end":
            # Never below what the NICs need: shrinking past a held address is the point.
            lowest = pool.start + nics + 1 + len(pool.exclude)
            pool.end = rng.randint(min(lowest, pool.start + 40), pool.start + 40)
        elif kind == "exclude" and pool.capacity() - 1 > nics + 1:
            pool.exclude.append(rng.choice([o for o in range(pool.start, pool.end + 1)
                                            if o not in pool.exclude]))  # fmt: skip
        elif kind == "include" and pool.exclude:
            pool.exclude.remove(rng.choice(pool.exclude))
        self._patch_pool(pool)
        excluded = [str(pool.address(e)) for e in sorted(pool.exclude)]
        self.note(
            f"pool-range {network}: {pool.address(pool.start)}-{pool.address(pool.end)} "
            f"exclude={excluded}"
        )

    def _op_pool_range6(self) -> None:
        """ipv6config added, removed, its end moved, an exclude added or removed."""
        rng = self.rng
        network = rng.choice(sorted(self.world.pools))
        pool = self.world.pools[network]
        v6 = pool.v6
        if v6 is None:
            pool.v6 = self._range6(sorted(self.world.pools).index(network))
        elif rng.random() < 0.2 and pool.v4:  # (an IPv6-only pool keeps its one half)
            pool.v6 = None
        else:
            kind = rng.choice(("end", "end", "exclude", "include"))
            if kind == "end":  # down to one address: running out is the point
                v6.end = v6.start + rng.randint(0, 9)
            elif kind == "exclude":
                v6.exclude.append(rng.randint(v6.start, v6.end))
            elif v6.exclude:
                v6.exclude.remove(rng.choice(v6.exclude))
        self._patch_pool(pool)
        self.note(f"pool-range6 {network}: {pool.spec_patch()['spec']['ipv6config']}")

    def _op_pool_ipv4(self) -> None:
        """ipv4config removed (the pool becomes IPv6-only) or added back (dual-stack)."""
        network = self.rng.choice(sorted(n for n, p in self.world.pools.items() if p.v6))
        pool = self.world.pools[network]
        pool.set_v4(not pool.v4)
        self._patch_pool(pool)
        if pool.v4:
            added = f"{pool.address(pool.start)}-{pool.address(pool.end)}"
            self.note(f"pool-ipv4 {network}: ipv4config {added} added (dual-stack)")
        else:
            self.note(f"pool-ipv4 {network}: ipv4config removed (IPv6-only)")

    # -- faults ----------------------------------------------------------------------

    def _fault(self, kind: str) -> None:
        self.result.faults[kind] += 1
        self.note(f"FAULT {kind}")
        if kind == "kill":
            self.rig.kill_kvip()
        elif kind == "apiserver-restart":
            self.rig.api.restart()
        elif kind == "compact":
            self.rig.api.etcd_compact()
            self.rig.api.restart()
        elif kind == "status-writer":
            self._stop_writer()
            self.writer = StatusWriter(self.rig, self.world, self.rng.randrange(2**32))
            self.writer_ops = self.rng.randint(2, 6)
            self.writer.start()

    def _tick_writer(self) -> None:
        if self.writer is not None:
            self.writer_ops -= 1
            if self.writer_ops <= 0:
                self._stop_writer()

    def _stop_writer(self) -> None:
        if self.writer is not None:
            self.writer.stop.set()
            self.writer.join(30)
            self.note(f"status-writer stopped after {self.writer.writes} bogus writes")
            self.writer = None

    # -- observing and checking ------------------------------------------------------

    def observe(self, *, pools: bool = True) -> Observation:
        """The vmnetcfgs of the scenario (and the pools' statuses, unless not needed)."""
        custom, ns = self.rig.custom, self.namespace
        listed = patiently(custom.list_namespaced_custom_object, GROUP, VERSION, ns, CFGS)
        cfgs = {item["metadata"]["name"]: CfgView.parse(item) for item in listed["items"]}
        views: dict[str, PoolView] = {}
        for network, pool in self.world.pools.items() if pools else ():
            body = patiently(custom.get_cluster_custom_object, GROUP, VERSION, "ippools", pool.name)
            views[network] = PoolView.parse(body)
        return Observation(cfgs, views)

    def _fingerprint(self) -> tuple[Any, ...]:
        custom, ns = self.rig.custom, self.namespace
        listed = patiently(custom.list_namespaced_custom_object, GROUP, VERSION, ns, CFGS)
        pools = patiently(
            custom.list_cluster_custom_object,
            GROUP,
            VERSION,
            "ippools",
            label_selector=self.selector,
        )
        return tuple(
            sorted(
                (item["metadata"]["name"], item["metadata"]["resourceVersion"])
                for item in listed["items"] + pools["items"]
            )
        )

    def _observe_midway(self) -> None:
        for violation in self.tracker.observe(self.world, self.observe(pools=False)):
            self.note(f"VIOLATION {violation}")
            self.result.violations.append(violation)

    def _settle(self) -> None:
        """Wait (bounded) for kvip to lead again, then for the objects to stop changing."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while not self.rig.leading():
            if time.monotonic() > deadline:
                raise TimeoutError("kvip did not become the ready leader")
            time.sleep(0.2)
        last, quiet_since = self._fingerprint(), time.monotonic()
        while time.monotonic() - quiet_since < QUIET and time.monotonic() < deadline:
            time.sleep(0.3)
            now = self._fingerprint()
            if now != last:
                last, quiet_since = now, time.monotonic()
        self.note("settled")

    def _final_checks(self) -> None:
        deadline = time.monotonic() + CHECK_PATIENCE
        while True:
            obs = self.observe()
            violations = self.tracker.observe(self.world, obs) + check_settled(self.world, obs)
            if not violations or time.monotonic() > deadline:
                break
            time.sleep(1)
        self.result.violations += violations
        checks = lease_checks(self.rig, self.world, obs, self.rng, DHCP_SAMPLES)
        self.result.dhcp_checks += len(checks)
        for verdict, violation in checks:
            self.note(verdict)
            if violation:
                self.result.violations.append(verdict)


def run_scenario(rig: Rig, seed: int, *, faults: Mapping[str, float] = FAULTS) -> Result:
    try:
        return Scenario(rig, seed, faults=faults).run()
    except ApiException as exc:
        result = Result(seed)
        result.violations.append(f"driver: cleanup failed: {exc}")
        return result
