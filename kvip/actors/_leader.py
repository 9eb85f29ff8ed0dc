"""Who writes: leader election through a coordination.k8s.io/v1 Lease.

Every replica runs the controller and serves DHCP; only the leader claims
addresses and writes objects (Controller.lead/follow), so the Lease decides
who writes, never who serves. Expiry is judged by when
*this* process last saw the Lease change (as client-go does), so clock skew
between nodes cannot make two leaders. Every write is conditional on the
resourceVersion read just before it, so two candidates never both win.

A leader that has not renewed for the renew deadline steps down at once,
whatever its renewal request is doing, while a follower still waits out the
longer lease duration. Lease requests have their own worker thread (never
queued behind the controller's calls) and a timeout of half the renew deadline.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import trio

from kvip.k8s import Body, Conflict, Kube, KubeError, Leases, NotFound

log = logging.getLogger(__name__)

T = TypeVar("T")


def _micro_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(slots=True)
class LeaderElector:
    kube: Kube
    namespace: str
    name: str
    identity: str
    #: How long a Lease stays valid without renewal: a follower takes over after this.
    lease_duration: float = 15.0
    #: A leader that cannot renew within this long steps down (< lease_duration).
    renew_deadline: float = 10.0
    #: How often candidates try to acquire and leaders renew.
    retry_period: float = 2.0
    is_leader: bool = False
    #: True while the election loop runs and reaches the API server.
    healthy: bool = False
    transitions: int = 0
    #: The Lease API; by default `Leases(kube)`, closed when `run` ends. Tests pass
    #: a stand-in.
    lease_api: Leases | None = None
    _observed: tuple[str, str] | None = None
    _observed_at: float = 0.0
    _leases: Leases | None = field(default=None, init=False)
    #: One Lease request at a time, never waiting for the controller's `call_limiter`.
    _limiter: trio.CapacityLimiter = field(default_factory=lambda: trio.CapacityLimiter(1))

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError("need 0 < retry period < renew deadline < lease duration")
        self._leases = self.lease_api or Leases(self.kube, request_timeout=self.request_timeout)

    @property
    def request_timeout(self) -> float:
        """Seconds one Lease request may take: half the renew deadline (at most the
        Kube's timeout). An attempt (a read and a write) that hangs on a dead
        connection fails in time to retry on a new one with the default timings,
        and its thread is gone soon after an abandoned attempt."""
        return min(self.kube.request_timeout, self.renew_deadline / 2)

    @property
    def leases(self) -> Leases:
        assert self._leases is not None
        return self._leases

    async def run(self, lead: Callable[[], Awaitable[None]]) -> None:
        """Campaign forever; while leading, run `lead()`. Losing the Lease cancels
        `lead()` (kvip then stops claiming and writing, and goes on serving) and the
        campaign starts over. On
        cancellation a held Lease is released so another replica takes over at once.

        Not renewing for `renew_deadline` counts as losing: `lead()` is cancelled
        then, before any other replica may take the Lease (which it does only after
        the longer `lease_duration`)."""
        try:
            while True:
                renewed_at = await self._acquire()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._lead_then_stop, lead, nursery.cancel_scope)
                    await self._renew_until_lost(renewed_at)
                    self.is_leader = False
                    nursery.cancel_scope.cancel()
                self.is_leader = False
                log.warning("lost the leadership of lease %s/%s", self.namespace, self.name)
        finally:
            if self.is_leader:
                self.is_leader = False
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    await self._release()
            if self.lease_api is None:
                self.leases.close()

    async def _lead_then_stop(
        self, lead: Callable[[], Awaitable[None]], scope: trio.CancelScope
    ) -> None:
        await lead()
        scope.cancel()

    async def _acquire(self) -> float:
        """Campaign until this process holds the Lease; return when the winning
        attempt began (its write reached the API server no earlier). On
        cancellation an attempt in flight is waited for (at most two request
        timeouts): abandoned, it could take the Lease for a process that is gone."""
        announced = False
        while True:
            started = trio.current_time()
            if await self._try_acquire_or_renew(abandon_on_cancel=False):
                self.is_leader = True
                self.transitions += 1
                log.info("became the leader (lease %s/%s, %s)", self.namespace, self.name,
                         self.identity)  # fmt: skip
                return started
            if not announced:
                log.info("standing by: lease %s/%s is held by another kvip", self.namespace,
                         self.name)  # fmt: skip
                announced = True
            await trio.sleep(self.retry_period)

    async def _renew_until_lost(self, renewed_at: float) -> None:
        """Renew every retry period; return once no renewal has succeeded within the
        renew deadline of `renewed_at`, the start of the last successful attempt
        (another replica cannot have seen that write any earlier). A renewal still in
        flight then is abandoned: it has nothing to clean up, and its thread ends
        within two request timeouts."""
        while True:
            with trio.move_on_at(renewed_at + self.renew_deadline) as deadline:
                renewed_at = await self._next_renewal()
            if deadline.cancelled_caught:
                log.warning("lease %s/%s not renewed within the renew deadline (%g s): "
                            "stepping down", self.namespace, self.name,
                            self.renew_deadline)  # fmt: skip
                return

    async def _next_renewal(self) -> float:
        """When the next successful renewal attempt began; one every retry period."""
        while True:
            await trio.sleep(self.retry_period)
            started = trio.current_time()
            if await self._try_acquire_or_renew(abandon_on_cancel=True):
                return started

    async def _in_thread(self, fn: Callable[[], T], *, abandon_on_cancel: bool) -> T:
        """Run a Lease request in the elector's own worker thread."""
        return await trio.to_thread.run_sync(
            fn, limiter=self._limiter, abandon_on_cancel=abandon_on_cancel
        )

    async def _try_acquire_or_renew(self, *, abandon_on_cancel: bool) -> bool:
        try:
            ok = await self._in_thread(self._attempt, abandon_on_cancel=abandon_on_cancel)
        except KubeError as exc:
            self.healthy = False
            self.kube.health.observe(exc)
            log.warning("lease %s/%s: %s", self.namespace, self.name, exc)
            return False
        self.healthy = True
        self.kube.health.succeeded()
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
            # Rounded up: a follower must never wait less than this leader's duration.
            leaseDurationSeconds=math.ceil(self.lease_duration),
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
            # An empty holder with a 1 s lease: any follower may take it right away.
            body["spec"].update(holderIdentity="", leaseDurationSeconds=1)
            self.leases.replace(self.namespace, body)

        try:
            # After any renewal still in flight (one thread), and abandoned with it
            # when the caller's time is up: the process is exiting anyway.
            await self._in_thread(release, abandon_on_cancel=True)
            log.info("released lease %s/%s", self.namespace, self.name)
        except KubeError as exc:
            log.warning("could not release lease %s/%s: %s", self.namespace, self.name, exc)
