"""The IPv6 half of a dual-stack (or IPv6-only) pool's book: its allocator and the DHCPv6
responder's reservations. PoolBook owns one (None for an IPv4-only pool) and
calls it under the same lock, from the same inbox task, as the IPv4 half: a
NIC's two addresses change in the same message, never one without the other
being decided.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv6Address

from kvip.actors._messages import PoolState6
from kvip.ipam import Allocator6, IpamError, Owner, PoolExhausted, PoolSpec6
from kvip.serving import PoolOptions6, Reservation6, Responder6, pool_server_duid


class NoIpv6(IpamError):
    """An IPv6 claim on a pool without ipv6config."""

    def __init__(self, pool: str) -> None:
        super().__init__(f"IPPool {pool} has no ipv6config")


@dataclass(slots=True)
class Book6:
    allocator: Allocator6
    responder: Responder6
    #: A claim found the range exhausted: that NIC waits for a free address.
    starved: bool = False

    @classmethod
    def new(cls, pool: str, spec: PoolSpec6, options: PoolOptions6) -> Book6:
        return cls(Allocator6(spec), Responder6(options, pool_server_duid(pool)))

    def claim(
        self, owner: Owner, requested: IPv6Address | None, replaces: Owner | None
    ) -> tuple[IPv6Address, tuple[IPv6Address, ...]]:
        """The NIC's IPv6 address (held, not served) and the ones it let go of.
        A claim that fails leaves what the NIC held as it was."""
        allocator = self.allocator
        if (
            requested is not None
            and replaces is not None
            and replaces != owner
            and allocator.owner_of(requested) == replaces
        ):
            allocator.release(requested)  # the NIC's MAC changed: it moves along
        held = allocator.addresses_of(owner)
        if held and (requested is None or requested in held):
            ip = requested or held[0]
        else:
            try:
                ip = allocator.allocate(owner, requested=requested)
            except PoolExhausted:
                self.starved = True
                raise
        freed = tuple(extra for extra in held if extra != ip)  # one NIC, one address
        for extra in freed:
            self.free(extra)
        return ip, freed

    def owners(self) -> set[Owner]:
        """Who holds an address here."""
        return {owner for _, owner in self.allocator.allocations()}

    def room_again(self) -> bool:
        """Whether the range has a free address again since a claim found it
        exhausted (once: the NICs left without one are then to be claimed again)."""
        if self.starved and self.allocator.available > 0:
            self.starved = False
            return True
        return False

    def reserve(self, owner: Owner, ip: IPv6Address) -> None:
        """Hold a recorded address (IpamError if it cannot be)."""
        if self.allocator.owner_of(ip) != owner:
            self.allocator.reserve(owner, ip)

    def inside(self, ip: IPv6Address | None) -> IPv6Address | None:
        """A recorded address if the range still holds it, else None: one that a
        shrink or an exclude left outside is not held, and its NIC is served its
        IPv4 address alone (its record keeps it, the status says so)."""
        return ip if ip is not None and self.allocator.is_assignable(ip) else None

    def reserve_inside(self, owner: Owner, ip: IPv6Address | None) -> IPv6Address | None:
        """Hold a recorded address that is `inside` (IpamError if it cannot be)."""
        held = self.inside(ip)
        if held is not None:
            self.reserve(owner, held)
        return held

    def fits(self, ip: IPv6Address) -> bool:
        """Whether a recorded address can be held again: in range and free."""
        return self.allocator.is_assignable(ip) and self.allocator.owner_of(ip) is None

    def serve(self, mac: str, ip: IPv6Address, hostname: str | None) -> None:
        self.responder.set_reservation(mac, Reservation6(ip, hostname))

    def unserve(self, mac: str) -> None:
        self.responder.remove_reservation(mac)

    def free(self, ip: IPv6Address) -> None:
        """Back to the pool; a DECLINE of it was about the NIC that held it."""
        self.allocator.release(ip)
        self.responder.clear_declined(ip)

    def release_owner(self, owner: Owner) -> tuple[IPv6Address, ...]:
        released = self.allocator.release_owner(owner)
        for ip in released:
            self.responder.clear_declined(ip)
        return released

    def reconfigure(
        self, spec: PoolSpec6, options: PoolOptions6
    ) -> tuple[tuple[IPv6Address, Owner], ...]:
        evicted = self.allocator.reconfigure(spec)
        for ip, _ in evicted:
            self.responder.clear_declined(ip)
        self.responder.set_options(options)
        return evicted

    def state(self) -> PoolState6:
        allocator = self.allocator
        return PoolState6(
            allocations=tuple(allocator.allocations()),
            excluded=tuple(allocator.excluded()),
            used=allocator.used,
            available=allocator.available,
            declined=tuple(sorted(self.responder.declined)),
        )
