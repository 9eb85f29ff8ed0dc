"""What a pool's book carries across a change of its own: a new range or a
family added or removed (Reconfigure), a successor actor holding the claims
its predecessor handed out (`unserved`, `hold_unserved`), and the recorded
addresses that fit the range again (`restore_fitting`). A mixin of PoolBook,
called under the same lock from the same inbox task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address
from typing import TYPE_CHECKING

from kvip.actors._messages import RestoreReservation
from kvip.actors._pool_book6 import Book6
from kvip.ipam import Allocator, Owner
from kvip.serving import PoolConfig, PoolConfig6, Responder

if TYPE_CHECKING:
    from kvip.actors._pool_book import _Nic


class BookCarry:
    # (No __slots__: PoolBook's dataclass holds the fields; see PoolAddress.)
    name: str
    allocator: Allocator | None
    responder: Responder | None
    v6: Book6 | None
    nics: dict[str, _Nic]
    note: Callable[..., None]
    held4: Callable[[Owner], tuple[IPv4Address, ...]]
    served4: Callable[[IPv4Address | None], IPv4Address | None]
    serve_nic: Callable[[str, _Nic], None]
    forget: Callable[[Owner], None]
    record: Callable[..., None]

    def restore_fitting(self, reservations: tuple[RestoreReservation, ...]) -> None:
        """Hold again the recorded addresses that fit the range again: a NIC the pool
        knows (bar a missing IPv6 address, or a missing IPv4 one while the ipv4config
        was away) or an owner holding some is newer than its record."""
        allocator = self.allocator
        for reservation in reservations:
            nic = self.nics.get(reservation.mac.lower())
            if nic is not None and nic.owner == reservation.owner and nic.ip6 is None:
                nic.ip6 = self._fitting6(reservation)
                if nic.serving:
                    self.serve_nic(reservation.mac.lower(), nic)
            if nic is not None and nic.owner == reservation.owner and nic.ip is None:
                self._fitting4(nic, reservation)
            if nic is not None or self.held4(reservation.owner):
                continue
            ip = self.served4(reservation.ip)
            if ip is None:  # an IPv6-only pool, or record: its IPv6 address alone
                if self.v6 is None or reservation.owner in self.v6.owners():
                    continue
                ip6 = self._fitting6(reservation)
                if ip6 is not None:
                    self.note(logging.INFO, "pool %s: %s of %s fits the range again; serving it "
                              "again", self.name, ip6, reservation.owner)  # fmt: skip
                    self.record(reservation.owner, reservation.mac, None, reservation.hostname,
                                serve=True, ip6=ip6)  # fmt: skip
                continue
            assert allocator is not None  # served4 said so
            if not allocator.is_assignable(ip) or allocator.owner_of(ip):
                self._fitting6(reservation)  # recorded: held, as when its IPv4 address left
                continue
            ip6 = self._fitting6(reservation)
            self.note(logging.INFO, "pool %s: %s of %s fits the range again; serving it again",
                      self.name, ip, reservation.owner)  # fmt: skip
            allocator.reserve(reservation.owner, ip)
            self.record(reservation.owner, reservation.mac, ip, reservation.hostname,
                        serve=True, ip6=ip6)  # fmt: skip

    def _fitting4(self, nic: _Nic, reservation: RestoreReservation) -> None:
        """A known NIC without an IPv4 address whose record has one: recorded before
        the pool lost its ipv4config and not reconciled since, it is held again
        now that an ipv4config is back (if it fits, and is free)."""
        ip, allocator = self.served4(reservation.ip), self.allocator
        if ip is None or allocator is None or self.held4(reservation.owner):
            return
        if not allocator.is_assignable(ip) or allocator.owner_of(ip) is not None:
            return
        self.note(logging.INFO, "pool %s: %s of %s is recorded still; held again", self.name,
                  ip, reservation.owner)  # fmt: skip
        allocator.reserve(reservation.owner, ip)
        nic.ip = ip
        if nic.serving:
            self.serve_nic(reservation.mac.lower(), nic)

    def _fitting6(self, reservation: RestoreReservation) -> IPv6Address | None:
        """Hold the reservation's IPv6 address again if it fits (it may not, while
        its IPv4 one does: the NIC is then served its IPv4 address alone)."""
        ip6 = reservation.ip6
        if ip6 is None or self.v6 is None or not self.v6.fits(ip6):
            return None
        self.v6.reserve(reservation.owner, ip6)
        return ip6

    def unserved(self) -> list[RestoreReservation]:
        """The claims handed out but not yet served: their vmnetcfg write may be in
        flight, so whoever holds the pool's addresses next must hold these too."""
        return [
            RestoreReservation(nic.owner, mac, nic.ip, nic.hostname, nic.ip6)
            for mac, nic in self.nics.items()
            if not nic.serving
        ]

    def hold_unserved(self, claims: list[RestoreReservation]) -> None:
        """Hold a previous actor's unserved claims (see `unserved`), unless the
        records restored since say otherwise: held, not served, until the
        controller serves (the write landed) or releases (refused) them."""
        allocator = self.allocator
        for claim in claims:
            if claim.mac.lower() in self.nics or self.held4(claim.owner):
                continue
            ip = self.served4(claim.ip)
            if ip is None:
                if self.v6 is None or claim.owner in self.v6.owners():
                    continue
                ip6 = self._fitting6(claim)
                if ip6 is not None:
                    self.record(claim.owner, claim.mac, None, claim.hostname, serve=False,
                                ip6=ip6)  # fmt: skip
                continue
            assert allocator is not None  # served4 said so
            if not allocator.is_assignable(ip) or allocator.owner_of(ip):
                continue
            ip6 = self._fitting6(claim)
            allocator.reserve(claim.owner, ip)
            self.record(claim.owner, claim.mac, ip, claim.hostname, serve=False, ip6=ip6)

    def reconfigure(
        self, config: PoolConfig, restore: tuple[RestoreReservation, ...]
    ) -> tuple[tuple[IPv4Address | IPv6Address, Owner], ...]:
        """A new range: what no longer fits goes (returned), recorded addresses
        that fit again come back. An address of one family that no longer fits
        goes alone: its NIC keeps its address of the other."""
        evicted: tuple[tuple[IPv4Address | IPv6Address, Owner], ...] = self.reconfigure6(config.v6)
        evicted += self.reconfigure4(config)
        self.restore_fitting(restore)
        return evicted

    def reconfigure4(self, config: PoolConfig) -> tuple[tuple[IPv4Address, Owner], ...]:
        """The IPv4 half added, changed or removed."""
        if config.spec is None or config.options is None:
            if self.allocator is None or self.responder is None:
                return ()
            gone = tuple(self.allocator.allocations())  # removed: IPv6-only now
            for mac, nic in self.nics.items():
                self.responder.remove_reservation(mac)
                nic.ip = None
            self.allocator = self.responder = None
            return gone
        if self.allocator is None or self.responder is None:
            # Added: the next reconcile of each VM claims (the NICs known keep
            # their IPv6 addresses meanwhile).
            self.allocator, self.responder = Allocator(config.spec), Responder(config.options)
            return ()
        evicted4 = self.allocator.reconfigure(config.spec)
        for ip, owner in evicted4:
            self.forget(owner)
            self.responder.clear_declined(ip)
        return evicted4

    def reconfigure6(self, v6: PoolConfig6 | None) -> tuple[tuple[IPv6Address, Owner], ...]:
        """The IPv6 half added, changed or removed."""
        if v6 is None or self.v6 is None:
            if self.v6 is not None:  # removed: every NIC is IPv4-only now
                gone = tuple(self.v6.allocator.allocations())
                for mac, nic in self.nics.items():
                    self.v6.unserve(mac)
                    nic.ip6 = None
                self.v6 = None
                return gone
            if v6 is not None:  # added: the next reconcile of each VM claims
                self.v6 = Book6.new(self.name, v6.spec, v6.options)
            return ()
        evicted = self.v6.reconfigure(v6.spec, v6.options)
        evicted_ips = {ip for ip, _ in evicted}
        for mac, nic in self.nics.items():
            if nic.ip6 in evicted_ips:
                self.v6.unserve(mac)
                nic.ip6 = None
        return evicted
