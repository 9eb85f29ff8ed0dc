"""Active/passive HA through a coordination.k8s.io/v1 Lease.

Only the leader runs the controller (opens DHCP sockets, writes objects); a
standby holds nothing but the hope of the Lease. Expiry is judged by when
*this* process last saw the Lease change (as client-go does), so clock skew
between nodes cannot make two leaders. Every write is conditional on the
resourceVersion read just before it, so two candidates never both win.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import trio

from kvip.k8s import Body, Conflict, Kube, KubeError, Leases, NotFound

log = logging.getLogger(__name__)


def _micro_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(slots=True)
class LeaderElector:
    kube: Kube
    namespace: str
    name: str
    identity: str
    #: How long a Lease stays valid without renewal: a standby takes over after this.
    lease_duration: float = 15.0
    #: A leader that cannot renew within this long steps down (< lease_duration).
    renew_deadline: float = 10.0
    #: How often candidates try to acquire and leaders renew.
    retry_period: float = 2.0
    is_leader: bool = False
    #: True while the election loop runs and reaches the API server.
    healthy: bool = False
    transitions: int = 0
    #: The Lease API; by default `Leases(kube)`. Tests pass a stand-in.
    lease_api: Leases | None = None
    _observed: tuple[str, str] | None = None
    _observed_at: float = 0.0
    _leases: Leases | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if not self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError("need retry period < renew deadline < lease duration")
        self._leases = self.lease_api or Leases(self.kube)

    @property
    def leases(self) -> Leases:
        assert self._leases is not None
        return self._leases

    async def run(self, lead: Callable[[], Awaitable[None]]) -> None:
        """Campaign forever; while leading, run `lead()`. Losing the Lease cancels
        `lead()` (its sockets close) and the campaign starts over. On
        cancellation a held Lease is released so a standby takes over at once."""
        try:
            while True:
                await self._acquire()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._lead_then_stop, lead, nursery.cancel_scope)
                    await self._renew_until_lost()
                    nursery.cancel_scope.cancel()
                self.is_leader = False
                log.warning("lost the leadership of lease %s/%s", self.namespace, self.name)
        finally:
            if self.is_leader:
                self.is_leader = False
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    await self._release()

    async def _lead_then_stop(
        self, lead: Callable[[], Awaitable[None]], scope: trio.CancelScope
    ) -> None:
        await lead()
        scope.cancel()

    async def _acquire(self) -> None:
        announced = False
        while True:
            if await self._try_acquire_or_renew():
                self.is_leader = True
                self.transitions += 1
                log.info("became the leader (lease %s/%s, %s)", self.namespace, self.name,
                         self.identity)  # fmt: skip
                return
            if not announced:
                log.info("standing by: lease %s/%s is held by another kvip", self.namespace,
                         self.name)  # fmt: skip
                announced = True
            await trio.sleep(self.retry_period)

    async def _renew_until_lost(self) -> None:
        last_renewal = time.monotonic()
        while True:
            await trio.sleep(self.retry_period)
            if await self._try_acquire_or_renew():
                last_renewal = time.monotonic()
            elif time.monotonic() - last_renewal > self.renew_deadline:
                return

    async def _try_acquire_or_renew(self) -> bool:
        try:
            ok = await self.kube.run(self._attempt)
        except KubeError as exc:
            self.healthy = False
            log.warning("lease %s/%s: %s", self.namespace, self.name, exc)
            return False
        self.healthy = True
        return ok

    def _attempt(self) -> bool:
        """One read-decide-write round (in a worker thread)."""
        now = _micro_time()
        try:
            lease = self.leases.get(self.namespace, self.name)
        except NotFound:
            try:
                self.leases.create(self.namespace, self._body(None, now, acquire=True))
            except Conflict:
                return False
            return True
        spec: dict[str, Any] = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = (holder, str(spec.get("renewTime") or ""))
        if record != self._observed:
            self._observed, self._observed_at = record, time.monotonic()
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        expired = time.monotonic() - self._observed_at > duration
        if holder and holder != self.identity and not expired:
            return False
        body = self._body(lease, now, acquire=holder != self.identity)
        try:
            self.leases.replace(self.namespace, body)
        except Conflict:
            return False
        self._observed, self._observed_at = (self.identity, now), time.monotonic()
        return True

    def _body(self, lease: Body | None, now: str, *, acquire: bool) -> Body:
        spec: dict[str, Any] = dict((lease or {}).get("spec") or {})
        spec.update(
            holderIdentity=self.identity,
            leaseDurationSeconds=int(self.lease_duration),
            renewTime=now,
        )
        if acquire:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (
                1 if lease is not None else 0
            )
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if lease is not None:
            metadata["resourceVersion"] = lease["metadata"]["resourceVersion"]
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": spec,
        }

    async def _release(self) -> None:
        def release() -> None:
            lease = self.leases.get(self.namespace, self.name)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != self.identity:
                return
            body = self._body(lease, _micro_time(), acquire=False)
            # An empty holder with a 1 s lease: any standby may take it right away.
            body["spec"].update(holderIdentity="", leaseDurationSeconds=1)
            self.leases.replace(self.namespace, body)

        try:
            await self.kube.run(release)
            log.info("released lease %s/%s", self.namespace, self.name)
        except KubeError as exc:
            log.warning("could not release lease %s/%s: %s", self.namespace, self.name, exc)
