"""Which replicas serve which pools, and with which address.

Every replica serves DHCP with its own address; only the leader allocates and
writes IPPool status. Each replica keeps a Lease of its own (`ReplicaHeartbeat`)
whose `kvip.io/serving` annotation maps IPPools to the address it answers with
there; the leader reads them all (`ReplicaDirectory`). A card counts while its
Lease keeps being renewed, judged by when *this* process saw `renewTime` change
(as the leader election does), so clock skew between nodes does not matter.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime
from functools import partial
from ipaddress import IPv4Address
from typing import TypeVar

import trio

from kvip.actors._replica_card import (
    ReplicaCard,
    card_annotations,
    card_labels,
    parse_card,
    replica_lease_name,
    replica_selector,
)
from kvip.k8s import Body, Conflict, Kube, KubeError, Leases, NotFound

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds a heartbeat waits for its Lease to be deleted when it is cancelled.
DELETE_PATIENCE = 3.0


async def _in_thread(limiter: trio.CapacityLimiter, fn: Callable[[], T]) -> T:
    """One request at a time per actor (a deletion waits for a renewal in flight);
    abandoned on cancellation, it ends within its request timeout anyway."""
    return await trio.to_thread.run_sync(fn, limiter=limiter, abandon_on_cancel=True)


class _Outage:
    """Logs an unreachable API server once when it starts and once when it ends."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.since: float | None = None

    def failed(self, exc: KubeError) -> None:
        if self.since is None:
            self.since = trio.current_time()
            log.warning("%s failed (retrying quietly until it works): %s", self.what, exc)

    def recovered(self) -> None:
        if self.since is not None:
            log.info("%s works again after %.1f s", self.what, trio.current_time() - self.since)
            self.since = None


@dataclass(slots=True)
class ReplicaHeartbeat:
    """Keeps this replica's Lease, with its card, renewed every `period`."""

    kube: Kube
    _: KW_ONLY
    namespace: str
    lease_name: str
    #: This replica's pod name: the Lease's holderIdentity.
    replica: str
    #: IPPool name -> the address this replica answers with there; read at every renewal.
    card: Callable[[], Mapping[str, str]]
    period: float = 5.0
    #: Whether this replica is serving; by default always.
    ready: Callable[[], bool] | None = None
    #: The DECLINEs it received that no vmnetcfg shows yet (ReplicaCard.declined).
    declined: Callable[[], Sequence[tuple[str, str, str]]] | None = None
    #: The Lease API; by default `Leases(kube)` (closed when `run` ends).
    lease_api: Leases | None = None
    #: Successful renewals so far.
    renewals: int = 0
    _resource_version: str | None = field(default=None, init=False)
    _limiter: trio.CapacityLimiter = field(default_factory=lambda: trio.CapacityLimiter(1))

    @property
    def name(self) -> str:
        """The name of this replica's Lease."""
        return replica_lease_name(self.lease_name, self.replica)

    async def run(self) -> None:
        """Create or renew the Lease every `period`, forever. Failed requests are
        logged (once per outage) and retried next period. On cancellation the
        Lease is deleted (shielded, for at most DELETE_PATIENCE seconds; a
        failure is only logged: the directory removes the litter later)."""
        timeout = min(self.kube.request_timeout, max(self.period, 1.0))
        leases = self.lease_api or Leases(self.kube, request_timeout=timeout)
        outage = _Outage(f"renewing replica lease {self.namespace}/{self.name}")
        try:
            while True:
                body = self._body()
                try:
                    await _in_thread(self._limiter, partial(self._write, leases, body))
                except KubeError as exc:
                    outage.failed(exc)
                else:
                    outage.recovered()
                    self.renewals += 1
                await trio.sleep(self.period)
        finally:
            problem: object = f"no answer in {DELETE_PATIENCE:g} s"
            with trio.CancelScope(shield=True), trio.move_on_after(DELETE_PATIENCE):
                try:
                    await _in_thread(self._limiter, partial(self._delete, leases))
                    problem = None
                except KubeError as exc:
                    problem = exc
            if problem is not None:
                log.warning("could not delete replica lease %s/%s: %s", self.namespace,
                            self.name, problem)  # fmt: skip
            if self.lease_api is None:
                leases.close()

    def _body(self) -> Body:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        ready = None if self.ready is None else self.ready()
        metadata = {"name": self.name, "namespace": self.namespace,
                    "labels": card_labels(self.lease_name),
                    "annotations": card_annotations(
                        self.card(), ready, self.declined() if self.declined else ())}  # fmt: skip
        spec = {
            "holderIdentity": self.replica,
            "leaseDurationSeconds": math.ceil(3 * self.period),
            "renewTime": now,
        }
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata,
                "spec": spec}  # fmt: skip

    def _write(self, leases: Leases, body: Body) -> None:
        """Replace the Lease as last written; create it, or take over one left by a
        previous life of this pod, when that fails (in a worker thread)."""
        written: Body | None = None
        if self._resource_version is not None:
            body["metadata"]["resourceVersion"] = self._resource_version
            try:
                # Also recreates a Lease deleted since: Leases allow create on update.
                written = leases.replace(self.namespace, body)
            except Conflict:
                del body["metadata"]["resourceVersion"]
        if written is None:
            try:
                written = leases.create(self.namespace, body)
            except Conflict:
                current = leases.get(self.namespace, self.name)
                body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                written = leases.replace(self.namespace, body)
        self._resource_version = written["metadata"]["resourceVersion"]

    def _delete(self, leases: Leases) -> None:
        with contextlib.suppress(NotFound):
            leases.delete(self.namespace, self.name)
        self._resource_version = None


@dataclass(slots=True)
class _Sighting:
    renew_time: str
    #: trio.current_time() when this process saw `renew_time` change.
    seen_at: float
    duration: float
    resource_version: str
    card: ReplicaCard


@dataclass(slots=True)
class ReplicaDirectory:
    """The cards of the replicas whose heartbeat Leases are fresh."""

    kube: Kube
    _: KW_ONLY
    namespace: str
    lease_name: str
    period: float = 5.0
    #: Called (in the directory's task) whenever `cards()` changes.
    on_change: Callable[[], None] | None = None
    #: Leases stale for `delete_after` seconds are deleted while this returns True.
    may_delete: Callable[[], bool] | None = None
    delete_after: float = 600.0
    #: The Lease API; by default `Leases(kube)` (closed when `run` ends).
    lease_api: Leases | None = None
    #: Successful lists so far.
    lists: int = 0
    _sightings: dict[str, _Sighting] = field(default_factory=dict, init=False)
    _cards: dict[str, ReplicaCard] = field(default_factory=dict, init=False)
    _malformed: dict[str, str] = field(default_factory=dict, init=False)
    _limiter: trio.CapacityLimiter = field(default_factory=lambda: trio.CapacityLimiter(1))

    def cards(self) -> dict[str, ReplicaCard]:
        """replica -> card, of the fresh Leases as of the last successful list."""
        return dict(self._cards)

    def addresses_for(self, pool: str, *, stale_too: bool = False) -> dict[str, IPv4Address]:
        """replica -> the address it serves `pool` with, ready or not. `stale_too`:
        also of the Leases stale but not yet deleted (a replica that lost the API
        server may still answer with its address: never hand those out either)."""
        sightings = self._sightings.values()
        cards = [sighting.card for sighting in sightings] if stale_too else self._cards.values()
        found = {}
        for card in cards:
            text = card.serving.get(pool)
            if text is not None and ":" not in text:  # an IPv6-only pool's is link-local
                found[card.replica] = IPv4Address(text)
        return found

    async def run(self) -> None:
        """List the heartbeat Leases every `period`, forever. A failed list is
        logged (once per outage) and changes nothing: cards are judged only
        on what the API server shows. Cancellation ends it at once (a request in
        flight is abandoned)."""
        timeout = min(self.kube.request_timeout, max(self.period, 1.0))
        leases = self.lease_api or Leases(self.kube, request_timeout=timeout)
        outage = _Outage(f"listing replica leases of {self.namespace}/{self.lease_name}")
        selector = replica_selector(self.lease_name)
        try:
            while True:
                try:
                    found = await _in_thread(
                        self._limiter, partial(leases.list, self.namespace, selector)
                    )
                except KubeError as exc:
                    outage.failed(exc)
                else:
                    outage.recovered()
                    self.lists += 1
                    self._update(found, trio.current_time())
                    await self._delete_litter(leases)
                await trio.sleep(self.period)
        finally:
            if self.lease_api is None:
                leases.close()

    def _update(self, found: list[Body], now: float) -> None:
        sightings: dict[str, _Sighting] = {}
        for lease in found:
            metadata, spec = lease["metadata"], lease.get("spec") or {}
            name, renew_time = metadata["name"], str(spec.get("renewTime") or "")
            before = self._sightings.get(name)
            seen_at = now if before is None or before.renew_time != renew_time else before.seen_at
            duration = float(spec.get("leaseDurationSeconds") or 0)
            sightings[name] = _Sighting(renew_time, seen_at, duration, metadata["resourceVersion"],
                                        self._card(name, lease))  # fmt: skip
        self._sightings = sightings
        self._malformed = {name: why for name, why in self._malformed.items() if name in sightings}
        cards = {
            sighting.card.replica: sighting.card
            for sighting in sightings.values()
            if now - sighting.seen_at <= sighting.duration
        }
        if cards != self._cards:
            self._cards = cards
            if self.on_change is not None:
                self.on_change()

    def _card(self, name: str, lease: Body) -> ReplicaCard:
        try:
            card = parse_card(lease)
        except (ValueError, KeyError) as exc:
            replica = (lease.get("spec") or {}).get("holderIdentity") or name
            why = str(exc)
            if self._malformed.get(name) != why:
                log.warning("replica lease %s/%s is malformed (%s): taken as serving nothing",
                            self.namespace, name, why)  # fmt: skip
                self._malformed[name] = why
            return ReplicaCard(replica, {}, ready=False)
        self._malformed.pop(name, None)
        return card

    async def _delete_litter(self, leases: Leases) -> None:
        """Delete the Leases stale for `delete_after`, as last seen (a Lease renewed
        since is left alone), while `may_delete()` says so."""
        now = trio.current_time()
        for name, sighting in list(self._sightings.items()):
            if now - sighting.seen_at <= self.delete_after:
                continue
            if self.may_delete is None or not self.may_delete():
                return
            delete = partial(leases.delete, self.namespace, name,
                             resource_version=sighting.resource_version)  # fmt: skip
            try:
                await _in_thread(self._limiter, delete)
            except (NotFound, Conflict):
                pass
            except KubeError as exc:
                log.warning("could not delete stale replica lease %s/%s: %s", self.namespace,
                            name, exc)  # fmt: skip
                return
            else:
                log.info("deleted replica lease %s/%s, not renewed for %.0f s", self.namespace,
                         name, now - sighting.seen_at)  # fmt: skip
            self._sightings.pop(name, None)
