"""Reconciling one VM: plan (pure, _plan.py), then claim, write, serve, release.

The Controller's workers run this; a VM is never reconciled by two at once
(the WorkQueue). The durability rule holds on every path: an address is
written to the vmnetcfg before its pool is told to serve it. A write the API
server refuses for good (403, 422) is reported once and retried with a capped
backoff; a pool that has stopped is retried like any temporary failure.
"""

from __future__ import annotations

import contextlib
import logging
from ipaddress import IPv4Address, IPv6Address

from kvip.actors._controller_state import ControllerState, owner_of
from kvip.actors._events import Event
from kvip.actors._messages import (
    ClaimAddress,
    ClaimAddress6,
    ClearDecline,
    MarkDeclined,
    ReleaseOwner,
    ReleaseVm,
    ServeReservation,
)
from kvip.actors._plan import (
    Answer6,
    Claim,
    Outcome,
    Settled,
    first_per_nic,
    newly_claimed,
    no_pool,
    plan_nics,
    refused_statuses,
    released_records,
)
from kvip.actors._pool import PoolActor
from kvip.actors._vm_state import NicKey, VmState, store_newest
from kvip.ipam import IpamError, Owner
from kvip.k8s import (
    FINALIZER,
    RESET_ANNOTATION,
    VIRTUAL_MACHINES,
    VMNETCFGS,
    Body,
    KubeError,
    NotFound,
)
from kvip.k8s._bodies import (
    NicRecord,
    finalizer_removal,
    vm_nics,
    vmnetcfg_body,
    vmnetcfg_declines,
    vmnetcfg_records,
    vmnetcfg_update,
)

log = logging.getLogger(__name__)


class VmReconciler(ControllerState):
    """The Controller's reconciling half (a mixin: the Controller owns the state
    and runs the workers)."""

    __slots__ = ()

    # -- reconciling one VM ---------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        vm = self.vms.get(key)
        cfg = self.cfgs.get(key)
        if cfg is not None and cfg["metadata"].get("deletionTimestamp"):
            await self._finalize(key, cfg)
            return
        if vm is None:
            await self._vm_gone(key, cfg)
            return
        await self._sync_vm(key, vm, cfg)

    async def _sync_vm(self, key: str, vm: Body, cfg: Body | None) -> None:
        """Plan each NIC's claim, ask the pools, write the records, and only then
        serve the new reservations and release what the records no longer hold."""
        state = self._state(key)
        recorded = vmnetcfg_records(cfg) if cfg is not None else state.orphans
        listed = first_per_nic(key, recorded)
        # A NIC is its (network, MAC): one VM may use one MAC on two networks.
        old = {(record.network, record.mac): record for record in listed}
        if cfg is not None and RESET_ANNOTATION in (cfg["metadata"].get("annotations") or {}):
            await self._reset(key, list(old.values()))
        supervisor = self.supervisor
        steps = plan_nics(
            key,
            vm_nics(vm),
            listed,
            has_pool=lambda network: supervisor.by_network(network) is not None,
            configured=lambda network: supervisor.config_for_network(network) is not None,
            all_pools=self.pool_selector is None,
        )
        self._tell_problems(key, vm, steps)
        outcome = await self._claim(key, vm, steps)
        if cfg is None and not outcome.records and not outcome.statuses:
            await self._sweep(key, frozenset())  # nothing recorded: nothing to keep
            state.nics = None
            self._tidy(key)
            return
        try:
            await self._write_records(key, vm, cfg, outcome.records)
        except KubeError as exc:
            await self._not_written(key, cfg, old, outcome, exc)
            raise
        state.orphans = []  # listed again, durably
        await self._written(key, vm, old, outcome)

    def adopt_recorded_declines(self) -> None:
        """Taking the lead (or starting as the only replica): the declines the
        vmnetcfg statuses record (an earlier leader's, or this process's before a
        restart) are this leader's to show and honour. Only then: later, the
        cached status may lag this leader's own writes (a reset, say)."""
        for key, cfg in self.cfgs.items():
            records = {(r.network, r.mac): r for r in vmnetcfg_records(cfg)}
            for nic, (ip, message) in vmnetcfg_declines(cfg).items():
                record = records.get(nic)
                if record is not None and record.ip == ip:
                    self._state(key).declined.setdefault(nic, message)
                elif record is not None and record.ip6 == ip:
                    self._state(key).declined6.setdefault(nic, message)

    def _tell_problems(self, key: str, vm: Body, steps: list[Claim | Settled]) -> None:
        """A NIC kvip cannot serve (no MAC, no IPPool): a log line (within the
        diagnostics budget) and an Event, once while it lasts. With a pool
        selector, a NIC on a network without a pool here may be another shard's:
        said once for the process."""
        state = self._state(key)
        problems = {step.problem for step in steps if isinstance(step, Settled) and step.problem}
        for problem in sorted(problems - state.told):
            self.diagnostics.warn("VM %s: %s", key, problem)
            self._event(vm, "NicNotServed", problem, warning=True)
        state.told = problems
        if self.pool_selector is not None and any(
            isinstance(step, Settled) and step.status is None for step in steps
        ):
            self.diagnostics.once(
                "shards",
                "VM NICs on networks without an IPPool matching %r are left alone: another "
                "kvip (another selector) may serve them (first seen: VM %s)",
                self.pool_selector,
                key,
            )

    async def _claim(self, key: str, vm: Body, steps: list[Claim | Settled]) -> Outcome:
        """Ask the pools for the planned claims; nothing is served yet."""
        state = self._state(key)
        outcome = Outcome()
        try:
            await self._ask_pools(key, steps, outcome)
        except BaseException:
            # A later claim's pool stopped (or the term ended): the claims answered so
            # far are held, recorded nowhere, and the retry may not claim them again
            # (their NIC removed meanwhile): its sweep lets go of those.
            state.unsure.update(serve.network for serve in outcome.to_serve)
            raise
        for failed, message in outcome.failed:
            log.error("VM %s NIC %s (%s): %s", key, failed.nic.interface, failed.mac, message)
            self._event(vm, "ReservationFailed", f"{failed.mac}: {message}", warning=True)
        for serve in outcome.to_serve:
            state.restore_errors.pop((serve.network, serve.mac), None)
        return outcome

    async def _ask_pools(self, key: str, steps: list[Claim | Settled], outcome: Outcome) -> None:
        name, state, supervisor = key.rpartition("/")[2], self._state(key), self.supervisor
        for step in steps:
            if isinstance(step, Settled):
                outcome.add(step)
                continue
            network = step.nic.network
            pool = supervisor.by_network(network)
            if pool is None:  # gone while an earlier NIC's claim was answered
                configured = supervisor.config_for_network(network) is not None
                outcome.add(no_pool(network, step.mac, step.previous, configured=configured))
                continue
            replaces = step.replaces
            claim = ClaimAddress(
                owner_of(key, step.mac),
                step.mac,
                requested=step.requested,
                hostname=name,
                replaces=owner_of(key, replaces.mac) if replaces is not None else None,
            )
            try:
                answer: IPv4Address | IpamError | None = await pool.ask(claim)
            except IpamError as exc:
                answer = exc
            answer6: Answer6 = None
            if pool.config.v6 is not None and not isinstance(answer, IpamError):
                answer6 = await self._claim6(key, pool, step)
            outcome.settle(
                step,
                answer,
                restore_error=state.restore_errors.get(step.key),
                declined=state.declined.get(step.key),
                answer6=answer6,
                declined6=state.declined6.get(step.key),
            )

    async def _claim6(self, key: str, pool: PoolActor, step: Claim) -> IPv6Address | IpamError:
        """The NIC's IPv6 address on a pool with ipv6config (after its ClaimAddress)."""
        replaces = step.replaces
        claim6 = ClaimAddress6(
            owner_of(key, step.mac),
            step.mac,
            requested=step.requested6,
            replaces=owner_of(key, replaces.mac) if replaces is not None else None,
        )
        try:
            ip6: IPv6Address = await pool.ask(claim6)
        except IpamError as exc:
            return exc
        return ip6

    async def _not_written(
        self,
        key: str,
        cfg: Body | None,
        old: dict[NicKey, NicRecord],
        outcome: Outcome,
        exc: KubeError,
    ) -> None:
        """Refused (4xx): not recorded, so nothing would ever release a new claim; it
        goes back and the retry claims for the NICs the VM has by then. (Unavailable,
        or 409: a write of ours may have landed unseen, recording it; the claim must
        stay, and what it dropped is swept after the next good write.)"""
        state = self._state(key)
        refused = exc.status is not None and 400 <= exc.status < 500 and exc.status != 409
        if not refused:
            # Landed, perhaps: the retry reads records that no longer list what
            # this write dropped, so its sweep must let go of those claims.
            for record in released_records(old, outcome.records):
                state.unsure.add(record.network)
        for network, mac, ip, _ in newly_claimed(old, outcome.to_serve):
            if not refused:
                state.unsure.add(network)
                continue
            back = outcome.moved.get((network, mac))
            if back is None or ip is None or not await self._move_back(key, mac, ip, back):
                await self._release(key, NicRecord(network, mac, None))
        if exc.permanent and cfg is not None:
            # Say so where the operator looks.
            problem = f"not recorded: the API server refused the vmnetcfg write: {exc}"
            statuses = refused_statuses(outcome.statuses, old.values(), problem)
            self._set_status(key, statuses, cfg)

    async def _written(
        self, key: str, vm: Body, old: dict[NicKey, NicRecord], outcome: Outcome
    ) -> None:
        """The records are durable: serve them, and let go of what they dropped."""
        await self._sweep(key, frozenset(owner_of(key, r.mac) for r in outcome.records))
        # The durable record is written: only now may the pools answer for it.
        for network, mac, ip, ip6 in outcome.to_serve:
            pool = self.supervisor.by_network(network)
            if pool is not None:
                if ip6 is not None and ((network, mac) not in old
                                        or old[(network, mac)].ip6 != str(ip6)):  # fmt: skip
                    log.info("VM %s: %s reserved for %s on %s", key, ip6, mac, network,
                             extra={"vm": key, "ip": str(ip6), "mac": mac, "network": network,
                                    "pool": pool.name})  # fmt: skip
                    self._event(vm, "Allocated", f"{ip6} reserved for {mac} on {network}")
                if ip is not None and ((network, mac) not in old
                                       or old[(network, mac)].ip != str(ip)):  # fmt: skip
                    log.info("VM %s: %s reserved for %s on %s", key, ip, mac, network,
                             extra={"vm": key, "ip": str(ip), "mac": mac, "network": network,
                                    "pool": pool.name})  # fmt: skip
                    self._event(vm, "Allocated", f"{ip} reserved for {mac} on {network}")
                await pool.ask(ServeReservation(mac, ip, ip6))
                if ip is not None and (network, mac) in self._state(key).declined:
                    await pool.ask(MarkDeclined(ip))  # declined where another replica saw it
                if ip6 is not None and (network, mac) in self._state(key).declined6:
                    await pool.ask(MarkDeclined(ip6))
        for record in released_records(old, outcome.records):
            await self._release(key, record)
        self._set_status(key, outcome.statuses, self.cfgs.get(key))

    async def _sweep(self, key: str, keep: frozenset[Owner]) -> None:
        """On the networks where the VM is unsure, whatever it holds beyond `keep`
        (its recorded NICs) is stale: e.g. the claim of a MAC it no longer has."""
        state = self._state(key)
        for network in sorted(state.unsure):
            pool = self.supervisor.by_network(network)
            if pool is None:
                continue  # swept when its pool has started (_requeue_pool_vms)
            for ip in await pool.ask(ReleaseVm(key, keep=keep)):
                log.info("VM %s: released %s, claimed but never recorded", key, ip)
            state.unsure.discard(network)

    async def _write_records(
        self, key: str, vm: Body, cfg: Body | None, records: list[NicRecord]
    ) -> None:
        namespace, _, name = key.partition("/")
        vm_uid = vm["metadata"].get("uid")
        if cfg is None:
            body = vmnetcfg_body(namespace=namespace, name=name, vm_uid=vm_uid, records=records)
            created = await self.kube.run(lambda: self.kube.create(VMNETCFGS, body))
            store_newest(self.cfgs, key, created)
            return
        updated = vmnetcfg_update(cfg, name=name, vm_uid=vm_uid, records=records)
        if updated is not None:
            replaced = await self.kube.run(lambda: self.kube.replace(VMNETCFGS, updated))
            store_newest(self.cfgs, key, replaced)

    async def _reset(self, key: str, records: list[NicRecord]) -> None:
        """An operator asked to retry this VM: forget its declines and errors."""
        log.info("VM %s: reset requested; clearing its declines and errors", key)
        state = self._state(key)
        for record in records:
            state.declined.pop((record.network, record.mac), None)
            state.declined6.pop((record.network, record.mac), None)
            state.restore_errors.pop((record.network, record.mac), None)
            pool = self.supervisor.by_network(record.network)
            if pool is not None and record.ip:
                await pool.ask(ClearDecline(IPv4Address(record.ip)))
            if pool is not None and record.ip6:
                await pool.ask(ClearDecline(IPv6Address(record.ip6)))

    async def _move_back(self, key: str, mac: str, ip: IPv4Address, record: NicRecord) -> bool:
        """A claim moved from `record`'s MAC to `mac` was not written: the address is
        still recorded for the old MAC, so it goes back there (and is served), never
        through the free pool where another NIC could take it. Whether it did."""
        pool = self.supervisor.by_network(record.network)
        if pool is None:
            return False
        hostname = key.rpartition("/")[2]
        back = ClaimAddress(owner_of(key, record.mac), record.mac, requested=ip,
                            hostname=hostname, replaces=owner_of(key, mac))  # fmt: skip
        try:
            await pool.ask(back)
        except IpamError as exc:
            log.warning("VM %s: %s cannot go back to %s: %s", key, ip, record.mac, exc)
            return False
        await pool.ask(ServeReservation(record.mac, ip))
        return True

    async def _release(self, key: str, record: NicRecord) -> None:
        pool = self.supervisor.by_network(record.network)
        if pool is None:
            # Stopped or away: its claims may be carried to its next actor, which
            # sweeps this VM's once it runs.
            self._state(key).unsure.add(record.network)
            return
        released = await pool.ask(ReleaseOwner(owner_of(key, record.mac)))
        for ip in released:
            log.info("VM %s: released %s of %s on %s", key, ip, record.mac, record.network,
                     extra={"vm": key, "ip": str(ip), "mac": record.mac, "pool": pool.name,
                            "network": record.network})  # fmt: skip
            vm = self.vms.get(key)
            if vm is not None:
                self._event(vm, "Released", f"{ip} of {record.mac} released")

    async def _vm_gone(self, key: str, cfg: Body | None) -> None:
        """The VM was deleted: release its addresses at once, then drop its vmnetcfg.
        Every pool is asked, so that an address claimed but never written is freed too.
        The VM's state goes with it, but for a refusal to remove the vmnetcfg: that is
        told once, however often the removal is retried.

        A recorded VM is first asked for at the API server: a replica's VM watch
        may lag its vmnetcfgs (a new leader lists those afresh), and taking a
        live VM for deleted would give its addresses away."""
        if cfg is not None and _adopted(cfg) and await self._still_there(key):
            return
        state = self.states.pop(key, None)
        if state is not None and state.refusal is not None:
            self.states[key] = VmState(refusal=state.refusal)
        for pool in self.supervisor.running():
            for ip in await pool.ask(ReleaseVm(key)):
                log.info("VM %s deleted: released %s in IPPool %s", key, ip, pool.name,
                         extra={"vm": key, "ip": str(ip), "pool": pool.name})  # fmt: skip
                self._record(
                    Event(
                        self._supervisor_ref(pool.name),
                        "Released",
                        f"{ip} released: VM {key} was deleted",
                    )
                )
        if cfg is None:
            return
        if not _adopted(cfg):
            return  # written ahead by a user for a VM still to come
        namespace, _, name = key.partition("/")
        log.info("VM %s deleted: removing its vmnetcfg", key)
        await self._drop_finalizer(cfg)
        await self.kube.run(lambda: self.kube.delete(VMNETCFGS, name, namespace=namespace))

    async def _still_there(self, key: str) -> bool:
        """Whether the API server still has the VM `key` that the cache lacks; if
        so it is cached (and reconciled again) as the watch would have."""
        namespace, _, name = key.partition("/")
        try:
            vm = await self.kube.run(
                lambda: self.kube.get(VIRTUAL_MACHINES, name, namespace=namespace)
            )
        except NotFound:
            return False
        log.info("VM %s: not seen by the watch yet, but there: keeping its records", key)
        store_newest(self.vms, key, vm)
        self.queue.add(key)
        return True

    async def _finalize(self, key: str, cfg: Body) -> None:
        """Someone deleted the vmnetcfg, then the finalizer goes. Without its VM, its
        addresses go too. A live VM's NICs keep theirs: the pools go on holding and
        serving them, and the next reconcile writes a new vmnetcfg with the very same
        addresses (its records remembered). Until then the address has no durable
        record: a restart in that moment may give the VM a new one."""
        vm = self.vms.get(key)
        nics = {(nic.network, nic.mac) for nic in vm_nics(vm)} if vm is not None else set()
        for record in vmnetcfg_records(cfg):
            if (record.network, record.mac) in nics:
                # Remembered: no pool here may hold it (away, another shard's), or
                # no longer (an exclude or a shrink evicted it meanwhile).
                self._state(key).orphans.append(record)
                if self.supervisor.by_network(record.network) is None:
                    continue
                # Swept after the new vmnetcfg is written: a MAC change meanwhile
                # leaves a claim that no record names.
                self._state(key).unsure.add(record.network)
            else:
                await self._release(key, record)
        await self._drop_finalizer(cfg)
        if (state := self.states.get(key)) is not None:
            state.nics = None
            self._tidy(key)

    async def _drop_finalizer(self, cfg: Body) -> None:
        patch = finalizer_removal(cfg)
        if patch is None:
            return
        meta = cfg["metadata"]
        with contextlib.suppress(NotFound):
            await self.kube.run(
                lambda: self.kube.patch(VMNETCFGS, meta["name"], patch, namespace=meta["namespace"])
            )


def _adopted(cfg: Body) -> bool:
    """Whether kvip keeps this vmnetcfg (its finalizer or the VM as owner), as
    opposed to one a user wrote ahead for a VM still to come."""
    meta = cfg["metadata"]
    return FINALIZER in (meta.get("finalizers") or []) or bool(meta.get("ownerReferences"))
