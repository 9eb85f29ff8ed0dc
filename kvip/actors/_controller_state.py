"""What the Controller's halves share: the state they read, and the small
helpers over it (VM state, Events, the vmnetcfg status marks)."""

from __future__ import annotations

import logging

from kvip.actors._diagnostics import Diagnostics
from kvip.actors._events import Event, EventRecorder, ObjectRef
from kvip.actors._messages import NicOwner
from kvip.actors._status import StatusWriter
from kvip.actors._status_render import NicStatus
from kvip.actors._supervisor import PoolHandle, Supervisor
from kvip.actors._vm_state import VmState
from kvip.actors._workqueue import WorkQueue
from kvip.ipam import Owner
from kvip.k8s import IPPOOLS, VIRTUAL_MACHINES, Body, Kube, Resource
from kvip.k8s._bodies import vm_nics

log = logging.getLogger(__name__)


def owner_of(key: str, mac: str) -> Owner:
    """How a NIC is named in the allocator and in IPPool.status (kubevirt-ip-helper's form)."""
    return NicOwner(key, mac).owner


class ControllerState:
    """The state the Controller owns (a mixin base: the Controller's dataclass
    fields are named below) and the helpers both halves use."""

    __slots__ = ()
    kube: Kube
    vms: dict[str, Body]
    cfgs: dict[str, Body]
    states: dict[str, VmState]
    queue: WorkQueue
    pool_selector: str | None
    diagnostics: Diagnostics
    _supervisor: Supervisor | None
    _cfg_status: StatusWriter | None
    _events: EventRecorder | None

    @property
    def pools(self) -> dict[str, PoolHandle]:
        """Every IPPool this kvip knows, by name (empty until it runs)."""
        return self._supervisor.pools if self._supervisor is not None else {}

    @property
    def supervisor(self) -> Supervisor:
        assert self._supervisor is not None, "the controller is not running"
        return self._supervisor

    def _state(self, key: str) -> VmState:
        """The VM's state, created on first use."""
        state = self.states.get(key)
        if state is None:
            state = self.states[key] = VmState()
        return state

    def _tidy(self, key: str) -> None:
        """Drop the VM's state when it holds nothing any more."""
        state = self.states.get(key)
        if state is not None and state.empty:
            del self.states[key]

    def _supervisor_ref(self, pool: str) -> ObjectRef:
        handle = self.pools.get(pool)
        return handle.ref if handle is not None else ObjectRef(IPPOOLS.api_version, "IPPool", pool)

    def _record(self, event: Event) -> None:
        if self._events is not None:
            self._events.record(event)

    def _event(self, vm: Body, reason: str, message: str, *, warning: bool = False) -> None:
        self._record(Event(ref_of(VIRTUAL_MACHINES, vm), reason, message, warning=warning))

    def _theirs(self, key: str, network: str, mac: str) -> bool:
        """Whether a vmnetcfg status entry belongs to another kvip shard: its network
        has no pool here, and the VM still has that NIC (a removed NIC's entry is
        nobody's, and goes)."""
        if self.supervisor.config_for_network(network) is not None:
            return False
        vm = self.vms.get(key)
        return vm is not None and any(
            nic.network == network and nic.mac == mac for nic in vm_nics(vm)
        )

    def _set_status(self, key: str, statuses: list[NicStatus], cfg: Body | None) -> None:
        """Remember the NICs' status and have it written when it differs from what
        the object shows (someone else may have changed or cleared it)."""
        desired = [nic.as_status() for nic in statuses]
        nics = {(nic.network, nic.mac) for nic in statuses}
        shown = ((cfg or {}).get("status") or {}).get("networkconfig") or []
        # Ours: our NICs' entries and any other entry that is not another shard's
        # (another writer's entry on our networks is repaired, a removed NIC's goes).
        ours = [
            entry
            for entry in shown
            if (entry.get("networkname"), entry.get("macaddress") or "") in nics
            or not self._theirs(key, str(entry.get("networkname")), str(entry.get("macaddress")))
        ]
        state = self._state(key)
        if state.nics != statuses or ours != desired:
            state.nics = statuses
            assert self._cfg_status is not None
            self._cfg_status.mark(key)


def ref_of(resource: Resource, body: Body) -> ObjectRef:
    meta = body["metadata"]
    return ObjectRef(
        resource.api_version,
        resource.kind,
        meta["name"],
        namespace=meta.get("namespace"),
        uid=meta.get("uid"),
    )
