"""What the replicas of one kvip Deployment know of each other: which replica
answers as which address on which pool (their heartbeat Leases, read by the
ReplicaDirectory), shared with every pool so that no replica's address is
ever handed out, and shown in each IPPool's status by the leader.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address

import trio

from kvip.actors._events import Event
from kvip.actors._messages import HoldReplicaAddresses
from kvip.actors._pool import PoolStopped
from kvip.actors._replicas import ReplicaDirectory
from kvip.actors._supervisor import PoolHandle, Supervisor

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ReplicaView:
    """Owned by the Controller; `run` shares the replicas' addresses with every
    running pool whenever they (or the pools) change."""

    #: This replica's name (its pod's), as in its heartbeat Lease.
    name: str
    directory: ReplicaDirectory | None = None
    #: Replica addresses inside a pool's range already reported, by pool.
    _reported: dict[str, set[IPv4Address]] = field(default_factory=dict)
    _changed: trio.Event = field(default_factory=trio.Event)

    def report_again(self) -> None:
        """A new leader: the problems are reported (Events) again, by it."""
        self._reported.clear()
        self._changed.set()

    def changed(self) -> None:
        """The directory's cards, or the running pools, changed (any thread-free
        callback may call this)."""
        self._changed.set()

    def serving_card(self, pools: dict[str, PoolHandle]) -> dict[str, str]:
        """IPPool name -> the address this replica answers as there (its heartbeat)."""
        card = {}
        for name, handle in pools.items():
            answers_as = handle.actor.answers_as if handle.actor is not None else None
            if handle.actor is not None and handle.actor.serving and answers_as is not None:
                card[name] = answers_as
        return card

    def listing(self, pool: str, pools: dict[str, PoolHandle]) -> list[dict[str, str]]:
        """Which replicas serve `pool`, and as which address: the fresh cards of
        the others, and this replica's own view of itself."""
        serving = {
            card.replica: card.serving[pool]
            for card in (self.directory.cards().values() if self.directory else ())
            if pool in card.serving
        }
        own = self.serving_card(pools).get(pool)
        if own is not None:
            serving[self.name] = own
        else:
            serving.pop(self.name, None)
        return [{"name": name, "address": address} for name, address in sorted(serving.items())]

    async def run(
        self,
        supervisor: Supervisor,
        record: Callable[[Event], None],
        mark: Callable[[str], None],
        declined: Callable[[str, str, str, str], None],
    ) -> None:
        """Whenever something changed: every running pool holds the replicas'
        addresses (an Event for each one inside the range), and each DECLINE
        another replica saw goes to `declined(replica, pool, mac, ip)`."""
        while True:
            await self._changed.wait()
            self._changed = trio.Event()
            cards = self.directory.cards().values() if self.directory is not None else ()
            for card in cards:
                if card.replica != self.name:
                    for pool, mac, ip in card.declined:
                        declined(card.replica, pool, mac, ip)
            for handle in list(supervisor.pools.values()):
                actor = handle.actor
                if actor is None or not handle.ready:
                    continue
                others = self.directory.addresses_for(handle.name, stale_too=True) if (
                    self.directory is not None
                ) else {}  # fmt: skip
                try:
                    problems = await actor.ask(HoldReplicaAddresses(frozenset(others.values())))
                except PoolStopped:
                    continue  # its next actor is shared with when it has started
                reported = self._reported.get(handle.name, set())
                for ip in sorted(problems.keys() - reported):
                    record(Event(handle.ref, "ReplicaAddressInRange", problems[ip], warning=True))
                self._reported[handle.name] = set(problems)
                mark(handle.name)
