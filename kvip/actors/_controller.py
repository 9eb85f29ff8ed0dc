"""The controller: VMs in, vmnetcfgs and served reservations out.

One task owns the caches of VMs and vmnetcfgs and applies what the watchers
send; workers reconcile one VM at a time from those caches (level-triggered:
whatever the events were, a reconcile makes the world match the VM as it is
now). The durability rule holds on every path: an address is written to the
vmnetcfg before its pool is told to serve it, and every pool is rebuilt from
the vmnetcfgs before its socket opens.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import AddressValueError, IPv4Address, ip_address
from socket import gethostname
from typing import Any

import trio

from kvip.actors._controller_state import owner_of, ref_of
from kvip.actors._dhcp_socket import open_dhcp_socket
from kvip.actors._diagnostics import Diagnostics
from kvip.actors._events import Event, EventRecorder
from kvip.actors._follow import RecordFollower, version_of
from kvip.actors._messages import (
    RestoreReservation,
    vm_of,
)
from kvip.actors._plan import (
    first_per_nic,
)
from kvip.actors._pool import PoolStopped
from kvip.actors._pool_dhcp6 import Dhcp6Wire
from kvip.actors._pool_wire import SocketFactory
from kvip.actors._replica_view import ReplicaView
from kvip.actors._status import StatusWriter
from kvip.actors._status_render import render_pool_status, render_vmnetcfg_status
from kvip.actors._supervisor import Supervisor
from kvip.actors._vm_state import VmState, store_newest
from kvip.actors._workqueue import WorkQueue
from kvip.ipam import IpamError
from kvip.k8s import (
    IPPOOLS,
    VIRTUAL_MACHINES,
    VMNETCFGS,
    Body,
    Changed,
    Kube,
    KubeError,
    Snapshot,
    Unavailable,
    Watcher,
    WatchMessage,
)
from kvip.k8s._bodies import (
    object_key,
    recorded_ip6,
    vm_nics,
    vmnetcfg_records,
)
from kvip.serving import Declined, Notice, PoolConfig

log = logging.getLogger(__name__)

EVENTS_BUFFER = 1024


@dataclass(slots=True)
class Controller(RecordFollower):
    kube: Kube
    socket_factory: SocketFactory = open_dhcp_socket
    wire6: Dhcp6Wire = field(default_factory=Dhcp6Wire)
    pool_selector: str | None = None
    workers: int = 8
    #: Makes the watchers: Watcher, or a stand-in with the same stream (tests/sim).
    watcher_factory: Callable[..., Watcher] = Watcher
    vms: dict[str, Body] = field(default_factory=dict)
    cfgs: dict[str, Body] = field(default_factory=dict)
    #: What the controller remembers about each VM, by VM key.
    states: dict[str, VmState] = field(default_factory=dict)
    queue: WorkQueue = field(default_factory=WorkQueue)
    #: Set once every pool has been rebuilt from the vmnetcfgs and started.
    ready: trio.Event = field(default_factory=trio.Event)
    #: Whether this replica holds the Lease: only then does it claim, write and
    #: record Events. Every replica serves what the vmnetcfgs record.
    leading: bool = True
    #: Budgeted log lines about bad input (diagnostics).
    diagnostics: Diagnostics = field(default_factory=Diagnostics)
    #: Which replica serves which pool as which address (heartbeat Leases).
    replica_view: ReplicaView = field(default_factory=lambda: ReplicaView(gethostname()))
    #: The cancel scopes of the reconciles running as the leader.
    _leader_scopes: set[trio.CancelScope] = field(default_factory=set)
    #: Failed reconciles by reason (kvip_reconcile_errors).
    errors: Counter[str] = field(default_factory=Counter)
    #: While a new leader lists the VMs and vmnetcfgs: the deletions the watches
    #: brought meanwhile, (plural, key) -> resourceVersion (RecordFollower._catch_up).
    _deleted_while_listing: dict[tuple[str, str], int] | None = None
    _supervisor: Supervisor | None = None
    _pool_status: StatusWriter | None = None
    _cfg_status: StatusWriter | None = None
    _events: EventRecorder | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        send, receive = trio.open_memory_channel[WatchMessage](EVENTS_BUFFER)
        async with trio.open_nursery() as nursery:
            self._pool_status = StatusWriter(
                self.kube, IPPOOLS, self._render_pool, may_write=self._may_write
            )
            self._cfg_status = StatusWriter(
                self.kube, VMNETCFGS, self._render_cfg, cached=self.cfgs.get,
                may_write=self._may_write,
            )  # fmt: skip
            self._events = EventRecorder(self.kube, may_write=self._may_write)
            self._supervisor = Supervisor(
                nursery,
                restore=self._restorations,
                on_change=self._pool_status.mark,
                on_started=self._pool_started,
                socket_factory=self.socket_factory,
                wire6=self.wire6,
                on_event=self._events.record,
                on_notice=self._pool_notice,
                on_reconfigured=self._requeue_pool_vms,
                adopt=self._adopt,
            )
            nursery.start_soon(self._events.run)
            nursery.start_soon(
                self.replica_view.run,
                self._supervisor,
                self._record,
                self._pool_status.mark,
                self._forwarded_decline,
            )
            nursery.start_soon(self._pool_status.run)
            nursery.start_soon(self._cfg_status.run)
            async with send:
                watched = (
                    (VMNETCFGS, None),
                    (VIRTUAL_MACHINES, None),
                    (IPPOOLS, self.pool_selector),
                )
                for resource, selector in watched:
                    watcher = self.watcher_factory(
                        self.kube, resource, send.clone(), label_selector=selector
                    )
                    nursery.start_soon(watcher.run)
            await self._initial_sync(receive)
            if self.leading:
                self.adopt_recorded_declines()
            for _ in range(self.workers):
                nursery.start_soon(self._worker, nursery)
            self.ready.set()
            task_status.started()
            log.info(
                "kvip ready: %d pools, %d VMs, %d vmnetcfgs",
                len(self.supervisor.pools),
                len(self.vms),
                len(self.cfgs),
            )
            async for message in receive:
                await self._apply(message)

    async def _initial_sync(self, receive: trio.MemoryReceiveChannel[WatchMessage]) -> None:
        """VMs and vmnetcfgs first: pools start only when their reservations are known."""
        waiting = {VMNETCFGS, VIRTUAL_MACHINES, IPPOOLS}
        pool_messages: list[WatchMessage] = []
        while waiting:
            message = await receive.receive()
            if isinstance(message, Snapshot):
                waiting.discard(message.resource)
            if message.resource == IPPOOLS:
                pool_messages.append(message)
            else:
                await self._apply(message)
        for message in pool_messages:
            await self._apply(message)
        # Wait (bounded) for the pools to come up, so that "ready" means serving.
        with trio.move_on_after(10):
            for handle in list(self.supervisor.pools.values()):
                if handle.config is not None and handle.problem is None:
                    await handle.started.wait()

    # -- leadership ----------------------------------------------------------------------

    def _may_write(self) -> bool:
        return self.leading

    # -- watch events ------------------------------------------------------------------

    async def _apply(self, message: WatchMessage) -> None:
        if message.resource == IPPOOLS:
            await self._apply_pool(message)
            return
        cache = self.vms if message.resource == VIRTUAL_MACHINES else self.cfgs
        if isinstance(message, Snapshot):
            fresh = {object_key(body): body for body in message.objects}
            for key in cache.keys() | fresh.keys():
                self.queue.add(key)
            if cache is self.cfgs:
                for key in cache.keys() - fresh.keys():
                    self._forget_cfg(key)
            cache.clear()
            cache.update(fresh)
        elif isinstance(message, Changed):
            key = object_key(message.object)
            store_newest(cache, key, message.object)
            self.queue.add(key)
        else:
            key = object_key(message.object)
            cache.pop(key, None)
            if self._deleted_while_listing is not None:
                self._deleted_while_listing[(message.resource.plural, key)] = version_of(
                    message.object
                )
            if cache is self.cfgs:
                self._forget_cfg(key)
            self.queue.add(key)

    def _forget_cfg(self, key: str) -> None:
        if self._cfg_status is not None:
            self._cfg_status.forget(key)

    async def _apply_pool(self, message: WatchMessage) -> None:
        supervisor = self.supervisor
        if isinstance(message, Snapshot):
            names = {str(body["metadata"]["name"]) for body in message.objects}
            for name in list(supervisor.pools):
                if name not in names:
                    supervisor.remove(name)
            for body in message.objects:
                await supervisor.apply(body)
                self._recheck_pool_status(body)
        elif isinstance(message, Changed):
            await supervisor.apply(message.object)
            self._recheck_pool_status(message.object)
        else:
            supervisor.remove(str(message.object["metadata"]["name"]))

    def _recheck_pool_status(self, body: Body) -> None:
        """Another writer may have changed the status (kvip's own writes come back
        here too): the writer renders it again and writes only what differs."""
        if self._pool_status is not None:
            self._pool_status.mark(str(body["metadata"]["name"]))

    # -- pools ---------------------------------------------------------------------------

    def _restorations(self, config: PoolConfig) -> list[RestoreReservation]:
        """The durable reservations on a pool's network, from the vmnetcfgs of live VMs,
        and the records of a live VM whose vmnetcfg was deleted and not written
        again yet (`VmState.orphans`: its next write records them again; until then
        the pool holds them, or another NIC could take an address the write will
        record). A gone VM's records are not restored: its addresses are free."""
        restore = []
        for key in sorted(self.vms):
            cfg = self.cfgs.get(key)
            state = self.states.get(key)
            if cfg is not None:
                records = vmnetcfg_records(cfg)
            elif state is not None and state.orphans:
                records = state.orphans
            else:
                continue
            for record in first_per_nic(key, records):
                ip6 = recorded_ip6(record)
                if record.network != config.network or not (record.ip or ip6):
                    continue
                try:
                    ip = IPv4Address(record.ip) if record.ip else None
                except AddressValueError:
                    problem = f"{record.ip!r} is not an address"
                    self._state(key).restore_errors[(record.network, record.mac)] = problem
                    continue
                hostname = key.rpartition("/")[2]
                owner = owner_of(key, record.mac)
                restore.append(RestoreReservation(owner, record.mac, ip, hostname, ip6))
        return restore

    def _pool_started(self, name: str, errors: list[tuple[RestoreReservation, IpamError]]) -> None:
        self.replica_view.changed()
        handle = self.supervisor.pools.get(name)
        network = handle.config.network if handle is not None and handle.config else name
        for reservation, error in errors:
            log.error("IPPool %s: cannot restore %s: %s", name, reservation.owner, error)
            key = vm_of(reservation.owner)
            if key is not None:
                self._state(key).restore_errors[(network, reservation.mac)] = str(error)
        self._requeue_pool_vms(name)

    def _adopt(self, network: str, claim: RestoreReservation) -> bool:
        """A stopped pool's claim whose vmnetcfg write may be in flight: its pool's next
        actor holds it for a live VM, whose next reconcile serves it if recorded
        and sweeps it otherwise (the VM is unsure there)."""
        key = vm_of(claim.owner)
        if key is None or key not in self.vms:
            return False
        self._state(key).unsure.add(network)  # requeued when the pool has started
        return True

    def _requeue_pool_vms(self, name: str) -> None:
        """Reconcile every VM with a NIC on the pool's network, and every VM unsure
        of what it holds there."""
        handle = self.supervisor.pools.get(name)
        network = handle.config.network if handle and handle.config else None
        for key, vm in self.vms.items():
            # At start-up every VM is still queued from the snapshot: parsing them all
            # once per pool only delayed the next pool's start.
            if self.queue.pending(key):
                continue
            state = self.states.get(key)
            if (state is not None and network in state.unsure) or any(
                nic.network == network for nic in vm_nics(vm)
            ):
                self.queue.add(key)

    async def _render_pool(self, name: str, current: dict[str, Any]) -> dict[str, Any] | None:
        handle = self.supervisor.pools.get(name)
        if handle is None:
            return None
        replicas = self.replica_view.listing(name, self.pools)
        return await render_pool_status(handle, current, replicas=replicas)

    async def _render_cfg(self, key: str, current: dict[str, Any]) -> dict[str, Any] | None:
        state = self.states.get(key)
        nics = state.nics if state is not None else None
        if nics is None or key not in self.cfgs:
            return None
        return render_vmnetcfg_status(
            nics, current, theirs=lambda network, mac: self._theirs(key, network, mac)
        )

    # -- the workers ---------------------------------------------------------------------

    async def _worker(self, nursery: trio.Nursery) -> None:
        while True:
            key = await self.queue.get()
            failed = permanent = False
            try:
                if self.leading:
                    with trio.CancelScope() as scope:
                        self._leader_scopes.add(scope)
                        try:
                            await self.reconcile(key)
                        finally:
                            self._leader_scopes.discard(scope)
                    failed = scope.cancelled_caught  # leadership lost: again, as follower
                else:
                    await self.follow_records(key)
            except KubeError as exc:
                failed, permanent = True, exc.permanent
                race = "api_unavailable" if isinstance(exc, Unavailable) else "api_race"
                self.errors["api_refused" if permanent else race] += 1
                if permanent:
                    self._refused(key, exc)
                else:
                    log.warning("reconciling %s failed: %s; will retry", key, exc)
            except (IpamError, PoolStopped) as exc:
                failed = True
                self.errors["ipam" if isinstance(exc, IpamError) else "pool_stopped"] += 1
                log.warning("reconciling %s failed: %s; will retry", key, exc)
            except Exception:
                failed = True
                self.errors["unexpected"] += 1
                log.exception("reconciling %s failed unexpectedly; will retry", key)
            if not permanent and (state := self.states.get(key)) is not None:
                state.refusal = None
                self._tidy(key)
            delay = self.queue.done(key, failed=failed, permanent=permanent)
            if delay is not None:
                nursery.start_soon(self.queue.retry_later, key, delay)

    def _refused(self, key: str, exc: KubeError) -> None:
        """The API server refused a write, and will again until someone changes
        something (RBAC, an admission policy, a quota): an Event and a log line
        the first time, and a capped backoff (the vmnetcfg status says it, see
        _sync_vm); every retry logs only at debug level."""
        message = f"the API server refused to write the vmnetcfg: {exc}"
        state = self._state(key)
        if state.refusal == message:
            log.debug("reconciling %s: still refused: %s", key, exc)
            return
        state.refusal = message
        log.error("reconciling %s: %s; retrying with a longer backoff", key, message)
        # On the VM; on the vmnetcfg when the VM is gone (its vmnetcfg's removal refused).
        vm, cfg = self.vms.get(key), self.cfgs.get(key)
        if vm is not None:
            self._event(vm, "RecordRefused", message, warning=True)
        elif cfg is not None:
            self._record(Event(ref_of(VMNETCFGS, cfg), "RecordRefused", message, warning=True))

    # -- events and client notices -------------------------------------------------------

    def _forwarded_decline(self, replica: str, pool: str, mac: str, ip: str) -> None:
        """Another replica received a DECLINE that no vmnetcfg shows yet: the leader
        records it (once) as if its own pool had."""
        handle = self.pools.get(pool)
        if not self.leading or handle is None or handle.actor is None or handle.config is None:
            return
        key = vm_of(handle.actor.owner_of_mac(mac))
        state = self.states.get(key) if key is not None else None
        try:
            address = ip_address(ip)
        except ValueError:
            return  # not written by kvip: nothing to honour
        known = (state.declined6 if address.version == 6 else state.declined) if state else {}
        if key is None or (handle.config.network, mac) in known:
            return
        log.info("IPPool %s: kvip replica %s saw %s decline %s", pool, replica, mac, ip)
        self._pool_notice(pool, Declined(mac, address, f"seen by kvip replica {replica}"))

    def _pool_notice(self, pool: str, notice: Notice) -> None:
        """A client DECLINEd its address (in use on the wire) or RELEASEd it."""
        handle = self.pools.get(pool)
        key = vm_of(handle.actor.owner_of_mac(notice.mac)) if handle and handle.actor else None
        if isinstance(notice, Declined):
            message = (
                f"{notice.ip} was declined by {notice.mac}: another host uses it. With a "
                "static reservation there is no other address to offer; remove the other "
                "host, then run `kvip vmnetcfg reset` for this VM"
            )
            self._record(Event(self._supervisor_ref(pool), "Declined", message, warning=True))
            if key is not None and handle is not None and handle.config is not None:
                state = self._state(key)
                declined = state.declined6 if notice.ip.version == 6 else state.declined
                declined[(handle.config.network, notice.mac)] = message
                vm = self.vms.get(key)
                if vm is not None:
                    self._event(vm, "Declined", message, warning=True)
                self.queue.add(key)
