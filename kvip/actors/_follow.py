"""Serving without the Lease: a replica that does not lead serves exactly what
the vmnetcfgs record, and claims, writes and reports nothing.

Every replica runs the controller; the Lease decides only who writes. A
follower's pools are rebuilt from the vmnetcfgs like the leader's, and each
change the watches bring (a new reservation written by the leader, a deleted
VM) is mirrored into the pools here: the durability rule holds on every
replica, since a follower answers only for what a vmnetcfg records.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from ipaddress import AddressValueError, IPv4Address, IPv6Address

import trio

from kvip.actors._controller_state import owner_of
from kvip.actors._messages import RestoreReservation, ServeRecorded
from kvip.actors._plan import first_per_nic
from kvip.actors._pool import PoolStopped
from kvip.actors._reconcile import VmReconciler
from kvip.actors._replica_view import ReplicaView
from kvip.actors._status import StatusWriter
from kvip.actors._vm_state import store_newest
from kvip.ipam import IpamError
from kvip.k8s import RESET_ANNOTATION, VIRTUAL_MACHINES, VMNETCFGS, Body, KubeError, Resource
from kvip.k8s._bodies import object_key, recorded_ip6, vmnetcfg_declines, vmnetcfg_records

log = logging.getLogger(__name__)


def _version_of(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


def version_of(body: Body) -> int:
    """A body's resourceVersion as a number (0: none)."""
    return _version_of(str(body["metadata"].get("resourceVersion", "")))


def _listed(
    cache: dict[str, Body], bodies: list[Body], version: str, deleted: Mapping[str, int]
) -> list[str]:
    """Bring `cache` up to a fresh list (newer cached versions win); the keys of
    the objects deleted since, dropped. An object whose deletion the watch
    brought while the answer travelled (`deleted`: key -> the deletion's
    resourceVersion) stays deleted: the list was made before it."""
    listed = {
        object_key(body): body
        for body in bodies
        if version_of(body) > deleted.get(object_key(body), -1)
    }
    for key, body in listed.items():
        store_newest(cache, key, body)
    made = _version_of(version)
    gone = [key for key in cache.keys() - listed.keys() if version_of(cache[key]) <= made]
    for key in gone:
        del cache[key]
    return gone


def _of(deleted: Mapping[tuple[str, str], int], resource: Resource) -> dict[str, int]:
    return {key: version for (plural, key), version in deleted.items() if plural == resource.plural}


class RecordFollower(VmReconciler):
    """The Controller's following half and its changes of role (a mixin, like
    VmReconciler)."""

    __slots__ = ()
    leading: bool
    ready: trio.Event
    replica_view: ReplicaView
    _leader_scopes: set[trio.CancelScope]
    _pool_status: StatusWriter | None
    _deleted_while_listing: dict[tuple[str, str], int] | None

    def _forget_cfg(self, key: str) -> None:
        """(The Controller's: its status writer forgets a deleted vmnetcfg.)"""
        raise NotImplementedError

    async def lead(self) -> None:
        """This replica holds the Lease now. It claims nothing before it has seen
        every record the previous leader wrote (a fresh list, not the watch,
        which may lag) and its pools hold them all: only then are the VMs
        reconciled as the leader (claims, writes) and the statuses rendered."""
        if self.leading:
            return
        await self.ready.wait()
        await self._catch_up()
        self.adopt_recorded_declines()
        self.leading = True  # type: ignore[misc]  # the Controller's field
        log.info("leading: claiming addresses and writing vmnetcfgs and statuses")
        self._requeue_all()
        self.replica_view.report_again()
        if self._pool_status is not None:
            for name in self.pools:
                self._pool_status.mark(name)

    async def _catch_up(self) -> None:
        """The vmnetcfgs and the VMs listed afresh: a VM the watch has not brought
        yet must not be taken for deleted (its vmnetcfg removed, its addresses
        released)."""
        deleted: dict[tuple[str, str], int] = {}
        self._deleted_while_listing = deleted  # type: ignore[misc]  # the Controller's field
        try:
            while True:
                try:
                    bodies, version = await self.kube.run(lambda: self.kube.list(VMNETCFGS))
                    vms, vms_version = await self.kube.run(lambda: self.kube.list(VIRTUAL_MACHINES))
                    break
                except KubeError as exc:
                    log.warning("taking the lead: cannot list the vmnetcfgs and VMs yet: %s", exc)
                    await trio.sleep(1.0)
        finally:
            self._deleted_while_listing = None  # type: ignore[misc]
        for key in _listed(self.cfgs, bodies, version, _of(deleted, VMNETCFGS)):
            self._forget_cfg(key)
        _listed(self.vms, vms, vms_version, _of(deleted, VIRTUAL_MACHINES))
        for key in sorted(self.vms.keys() | self.cfgs.keys()):
            with contextlib.suppress(IpamError, PoolStopped):
                await self.follow_records(key)

    def follow(self) -> None:
        """The Lease is lost (or was never held): stop claiming and writing at once,
        and serve exactly what the vmnetcfgs record. A reconcile that was writing
        is cancelled (a request already sent may still land: the watch then
        brings it back, and it is served like any record)."""
        if not self.leading:
            return
        self.leading = False  # type: ignore[misc]  # the Controller's field
        log.info("following: serving the recorded reservations; the leader writes")
        for scope in self._leader_scopes:
            scope.cancel()
        self._requeue_all()

    def drain(self) -> None:
        """Shutting down: every pool stops taking new clients (Responder.drain)."""
        for handle in self.pools.values():
            if handle.actor is not None:
                handle.actor.drain()

    def _requeue_all(self) -> None:
        # In order: the same work in the same order every time (the simulation replays).
        for key in sorted(self.vms.keys() | self.cfgs.keys() | self.states.keys()):
            self.queue.add(key)

    def recorded(self, key: str) -> dict[str, list[RestoreReservation]]:
        """The VM's recorded reservations by network; none once the VM is gone
        (its addresses are released at once, whatever its vmnetcfg still says)."""
        vm, cfg = self.vms.get(key), self.cfgs.get(key)
        if vm is None or cfg is None:
            return {}
        hostname = key.rpartition("/")[2]
        recorded: dict[str, list[RestoreReservation]] = {}
        for record in first_per_nic(key, vmnetcfg_records(cfg)):
            ip6 = recorded_ip6(record)
            if not (record.ip or ip6):
                continue
            try:
                ip = IPv4Address(record.ip) if record.ip else None
            except AddressValueError:
                continue  # the leader reports it in the vmnetcfg status
            owner = owner_of(key, record.mac)
            reservation = RestoreReservation(owner, record.mac, ip, hostname, ip6)
            recorded.setdefault(record.network, []).append(reservation)
        return recorded

    def _declined(
        self, key: str, recorded: dict[str, list[RestoreReservation]]
    ) -> dict[str, frozenset[IPv4Address | IPv6Address]]:
        """The VM's declined addresses (of either family) by network: those its
        vmnetcfg status shows (the leader recorded them), and those declined here
        that it does not show yet (pending: the heartbeat tells the leader). A
        reset clears both."""
        cfg, state = self.cfgs.get(key), self.states.get(key)
        shown = vmnetcfg_declines(cfg) if cfg is not None else {}
        if state is not None:
            if cfg is not None and RESET_ANNOTATION in (cfg["metadata"].get("annotations") or {}):
                state.declined.clear()
                state.declined6.clear()
            for nic in shown.keys() & state.declined.keys():
                del state.declined[nic]  # recorded now: no longer pending
            for nic in shown.keys() & state.declined6.keys():
                if ":" in shown[nic][0]:
                    del state.declined6[nic]
        pending = state.declined.keys() if state is not None else set()
        pending6 = state.declined6.keys() if state is not None else set()
        declined: dict[str, set[IPv4Address | IPv6Address]] = {}
        for network, reservations in recorded.items():
            for r in reservations:
                nic = (network, r.mac)
                if r.ip is not None and (
                    nic in pending or (nic in shown and shown[nic][0] == str(r.ip))
                ):
                    declined.setdefault(network, set()).add(r.ip)
                if r.ip6 is not None and (
                    nic in pending6 or (nic in shown and shown[nic][0] == str(r.ip6))
                ):
                    declined.setdefault(network, set()).add(r.ip6)
        return {network: frozenset(ips) for network, ips in declined.items()}

    def pending_declines(self) -> list[tuple[str, str, str]]:
        """(IPPool, MAC, address) of the DECLINEs this follower received that no
        vmnetcfg shows yet: its heartbeat carries them to the leader."""
        if self.leading:
            return []
        pending = []
        for key, state in self.states.items():
            if not state.declined and not state.declined6:
                continue
            recorded = self.recorded(key)
            for family, nics in ((4, state.declined), (6, state.declined6)):
                for network, mac in nics:
                    pool = self.supervisor.by_network(network)
                    record = next((r for r in recorded.get(network, ()) if r.mac == mac), None)
                    if record is None:
                        continue
                    ip = record.ip if family == 4 else record.ip6
                    if pool is not None and ip is not None:
                        pending.append((pool.name, mac, str(ip)))
        return pending

    async def follow_records(self, key: str) -> None:
        """Make every running pool hold and serve the VM's records, and nothing
        else of the VM. A record that cannot be held (its address is still
        another VM's here: the watches may deliver the leader's writes in
        another order than it made them) fails the reconcile, which is retried."""
        recorded = self.recorded(key)
        declined = self._declined(key, recorded)
        problems: list[tuple[RestoreReservation, IpamError]] = []
        for pool in self.supervisor.running():
            records = tuple(recorded.get(pool.config.network, ()))
            message = ServeRecorded(key, records, declined.get(pool.config.network, frozenset()))
            released, failed = await pool.ask(message)
            for ip in released:
                log.info("VM %s: not serving %s in IPPool %s any more: no longer recorded",
                         key, ip, pool.name)  # fmt: skip
            for record, error in failed:
                log.warning("VM %s: cannot serve %s for %s in IPPool %s yet: %s", key,
                            record.ip, record.mac, pool.name, error)  # fmt: skip
            problems.extend(failed)
        if problems:
            raise problems[0][1]
