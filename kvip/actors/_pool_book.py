"""What one pool holds: its allocator, its MAC table and the reservations its
Responder answers for. The PoolActor's inbox task alone calls this, always
with the actor's lock held (the packet thread reads the Responder under it);
nothing here does I/O or waits: what it has to say waits in `notes` until the
actor has let go of the lock (`say`), so a packet never waits for a log write.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from kvip.actors._messages import (
    ClaimAddress,
    ClaimAddress6,
    ClearDecline,
    Inspect,
    MarkDeclined,
    PoolMessage,
    PoolState,
    Reconfigure,
    ReleaseOwner,
    ReleaseVm,
    RestoreReservation,
    ServeRecorded,
    ServeReservation,
)
from kvip.actors._pool_book6 import Book6, NoIpv6
from kvip.ipam import Allocator, IpamError, Owner
from kvip.serving import MacSeen, PoolConfig, PoolConfig6, Reservation, Responder, mac_bytes

log = logging.getLogger(__name__)

#: Who holds a kvip replica's own address when it lies inside a pool's range.
REPLICA_OWNER = Owner("kvip replica address")

#: What a pool heard lately from a MAC (None: nothing), and whether the address
#: reserved for it was declined.
HeardFrom = tuple[MacSeen | None, bool]


@dataclass(slots=True)
class _Nic:
    owner: Owner
    ip: IPv4Address
    hostname: str | None
    serving: bool
    #: Its IPv6 address, on a dual-stack pool (held with `ip`, served with it).
    ip6: IPv6Address | None = None


@dataclass(slots=True)
class PoolBook:
    name: str
    allocator: Allocator
    responder: Responder
    #: The IPv6 half of a dual-stack pool.
    v6: Book6 | None = None
    nics: dict[str, _Nic] = field(default_factory=dict)
    #: Log lines not yet written: (level, format, args).
    notes: list[tuple[int, str, tuple[object, ...]]] = field(default_factory=list)

    def note(self, level: int, message: str, *args: object) -> None:
        self.notes.append((level, message, args))

    def say(self) -> None:
        """Write the noted log lines (call without the lock)."""
        notes, self.notes = self.notes, []
        for level, message, args in notes:
            log.log(level, message, *args)

    @classmethod
    def new(cls, config: PoolConfig) -> PoolBook:
        v6 = config.v6
        book6 = Book6.new(config.name, v6.spec, v6.options) if v6 is not None else None
        return cls(config.name, Allocator(config.spec), Responder(config.options), book6)

    def dispatch(self, message: PoolMessage, *, serving: bool) -> Any:
        """Apply one message (not Reconfigure: see `reconfigure`)."""
        if isinstance(message, ClaimAddress):
            return self.claim(message)
        if isinstance(message, ClaimAddress6):
            return self.claim6(message)
        if isinstance(message, RestoreReservation):
            self.check_mac(message.owner, message.mac)
            ip6 = self.reserve6(message)
            self.allocator.reserve(message.owner, message.ip)
            self.record(message.owner, message.mac, message.ip, message.hostname, serve=True,
                        ip6=ip6)  # fmt: skip
            return message.ip
        if isinstance(message, ServeReservation):
            return self.serve(message)
        if isinstance(message, ReleaseOwner):
            return self.release(message.owner)
        if isinstance(message, ReleaseVm):
            prefix, held6 = f"{message.key} [", self.v6.owners() if self.v6 is not None else ()
            owners = {  # an IPv6 address outlives its NIC's IPv4 one left out of range
                owner
                for owner in (*(nic.owner for nic in self.nics.values()), *held6)
                if owner.startswith(prefix) and owner not in message.keep
            }
            return tuple(ip for owner in sorted(owners) for ip in self.release(owner))
        if isinstance(message, ServeRecorded):
            return self.serve_recorded(message)
        if isinstance(message, ClearDecline):
            if isinstance(message.ip, IPv6Address):
                return self.v6 is not None and self.v6.responder.clear_declined(message.ip)
            return self.responder.clear_declined(message.ip)
        if isinstance(message, MarkDeclined):
            if isinstance(message.ip, IPv6Address):
                return self.v6.responder.mark_declined(message.ip) if self.v6 else None
            return self.responder.mark_declined(message.ip)
        if isinstance(message, Inspect):
            return self.state(serving=serving)
        if isinstance(message, Reconfigure):
            raise TypeError("Reconfigure needs the running actor")
        raise TypeError(f"pool actor cannot handle {message!r}")

    def claim(self, message: ClaimAddress) -> IPv4Address:
        """An address for a NIC, held but not served until ServeReservation."""
        self.check_mac(message.owner, message.mac)
        requested, replaces = message.requested, message.replaces
        if (
            requested is not None
            and replaces is not None
            and replaces != message.owner
            and self.allocator.owner_of(requested) == replaces
        ):
            # The NIC's MAC changed: its address moves with it. Nothing below can
            # fail for an address that was just held (so assignable).
            self.note(logging.INFO, "pool %s: %s moves from %s to %s", self.name, requested,
                      replaces, message.owner)  # fmt: skip
            self.allocator.release(requested)
            self.forget(replaces)
        previous = self.nics.get(message.mac.lower())
        ip6 = previous.ip6 if previous is not None and previous.owner == message.owner else None
        held = self.allocator.addresses_of(message.owner)
        if held and (message.requested is None or message.requested in held):
            ip = message.requested or held[0]
            for extra in held:
                if extra != ip:  # one NIC, one address
                    self.note(
                        logging.WARNING,
                        "pool %s: %s held %s besides %s; released", self.name, message.owner,
                        extra, ip,
                    )  # fmt: skip
                    self.free(extra)
        else:
            # The new address first: a claim that fails (taken, excluded,
            # exhausted) must leave the NIC's current address, and its DHCP
            # service, as they were.
            ip = self.allocator.allocate(message.owner, requested=message.requested)
            for old in held:
                self.free(old)
            self.forget(message.owner)
        self.record(message.owner, message.mac, ip, message.hostname, serve=False, ip6=ip6)
        return ip

    def claim6(self, message: ClaimAddress6) -> IPv6Address:
        """The IPv6 address of a NIC its ClaimAddress made known; held, not served
        until ServeReservation names it."""
        if self.v6 is None:
            raise NoIpv6(self.name)
        nic = self.nics.get(message.mac.lower())
        if nic is None or nic.owner != message.owner:
            raise IpamError(f"{message.owner} claims an IPv6 address before an IPv4 one")
        ip6, freed = self.v6.claim(message.owner, message.requested, message.replaces)
        for extra in freed:
            self.note(logging.WARNING, "pool %s: %s held %s besides %s; released", self.name,
                      message.owner, extra, ip6)  # fmt: skip
        if nic.ip6 != ip6:
            if nic.serving:
                self.v6.unserve(message.mac)
            nic.ip6 = ip6
        return ip6

    def reserve6(self, record: RestoreReservation) -> IPv6Address | None:
        """Hold a record's IPv6 address (IpamError if it cannot be); None if it has
        none here (no ipv6config; outside the range, see Book6.inside)."""
        return self.v6.reserve_inside(record.owner, record.ip6) if self.v6 is not None else None

    def serve_recorded(
        self, message: ServeRecorded
    ) -> tuple[
        tuple[IPv4Address | IPv6Address, ...], tuple[tuple[RestoreReservation, IpamError], ...]
    ]:
        """Make the VM's NICs here exactly its records (see ServeRecorded)."""
        wanted = {record.owner: record for record in message.records}
        prefix = f"{message.key} ["
        released: list[IPv4Address | IPv6Address] = []
        for mac, nic in sorted(self.nics.items()):
            if not nic.owner.startswith(prefix):
                continue
            record = wanted.get(nic.owner)
            if (
                record is not None
                and record.mac.lower() == mac
                and record.ip == nic.ip
                and (self.v6.inside(record.ip6) if self.v6 is not None else None) == nic.ip6
            ):
                if not nic.serving:
                    self.serve_nic(mac, nic)
                continue
            released.extend(self.release(nic.owner))
        problems: list[tuple[RestoreReservation, IpamError]] = []
        for record in message.records:
            held = self.nics.get(record.mac.lower())
            if held is not None and held.owner == record.owner and held.ip == record.ip:
                continue
            try:
                self.check_mac(record.owner, record.mac)
                ip6 = self.reserve6(record)
                self.allocator.reserve(record.owner, record.ip)
            except IpamError as exc:
                problems.append((record, exc))
                continue
            self.record(record.owner, record.mac, record.ip, record.hostname, serve=True, ip6=ip6)
        for record in message.records:
            if record.ip in message.declined:
                self.responder.mark_declined(record.ip)
            elif record.ip in self.responder.declined:
                self.responder.clear_declined(record.ip)
            if record.ip6 is not None and self.v6 is not None:
                declined6 = self.v6.responder.declined
                if record.ip6 in message.declined:
                    self.v6.responder.mark_declined(record.ip6)
                elif record.ip6 in declined6:
                    self.v6.responder.clear_declined(record.ip6)
        return tuple(released), tuple(problems)

    def hold_replica_addresses(self, addresses: Collection[IPv4Address]) -> dict[IPv4Address, str]:
        """kvip's replicas answer as `addresses`: those inside the range are held
        for REPLICA_OWNER, so that no VM is ever given one; held ones no longer
        listed go back to the pool. What is wrong, by address (for the IPPool's
        status, an Event and the log)."""
        wanted = set(addresses)
        for ip in self.allocator.addresses_of(REPLICA_OWNER):
            if ip not in wanted:
                self.allocator.release(ip)
        problems: dict[IPv4Address, str] = {}
        for ip in sorted(wanted):
            if not self.allocator.is_assignable(ip):
                continue  # outside the range, or excluded: as it should be
            holder = self.allocator.owner_of(ip)
            if holder is not None and holder != REPLICA_OWNER:
                problems[ip] = (f"kvip replica address {ip} is inside the range and recorded "
                                f"for {holder}: both answer ARP for it; give kvip's replicas "
                                "addresses outside the range")  # fmt: skip
                continue
            if holder is None:
                self.allocator.reserve(REPLICA_OWNER, ip)
            problems[ip] = (
                f"kvip replica address {ip} is inside the range: held so that no VM gets "
                "it; give kvip's replicas addresses outside the range"
            )
        return problems

    def heard_from(self, mac: str) -> HeardFrom:
        nic = self.nics.get(mac.lower())
        declined = nic is not None and nic.ip in self.responder.declined
        return self.responder.history.of(mac_bytes(mac)), declined

    def owner_of_mac(self, mac: str) -> Owner | None:
        nic = self.nics.get(mac.lower())
        return nic.owner if nic is not None else None

    def check_mac(self, owner: Owner, mac: str) -> None:
        previous = self.nics.get(mac.lower())
        if previous is not None and previous.owner != owner:
            raise MacConflict(mac, previous.owner)

    def serve(self, message: ServeReservation) -> bool:
        nic = self.nics.get(message.mac.lower())
        if nic is None or nic.ip != message.ip:
            self.note(
                logging.WARNING,
                "pool %s: not serving %s for %s: it holds no such claim",
                self.name,
                message.ip,
                message.mac,
            )
            return False
        if message.ip6 is not None and nic.ip6 != message.ip6:
            self.note(logging.WARNING, "pool %s: not serving %s for %s: it holds no such claim",
                      self.name, message.ip6, message.mac)  # fmt: skip
        self.serve_nic(message.mac.lower(), nic)
        return True

    def serve_nic(self, mac: str, nic: _Nic) -> None:
        """Answer DHCP for the NIC, and DHCPv6 for its IPv6 address if it has one."""
        nic.serving = True
        self.responder.set_reservation(mac, Reservation(nic.ip, nic.hostname))
        if nic.ip6 is not None and self.v6 is not None:
            self.v6.serve(mac, nic.ip6, nic.hostname)

    def record(
        self,
        owner: Owner,
        mac: str,
        ip: IPv4Address,
        hostname: str | None,
        *,
        serve: bool,
        ip6: IPv6Address | None = None,
    ) -> None:
        mac = mac.lower()
        nic = self.nics[mac] = _Nic(owner, ip, hostname, serving=False, ip6=ip6)
        if serve:
            self.serve_nic(mac, nic)

    def free(self, ip: IPv4Address) -> None:
        """The address goes back to the pool. A client's DECLINE of it was about
        the NIC that held it: the next NIC starts afresh (and declines it again,
        reported, if the other host is still there). Kept, it left the next NIC
        recorded OK and never answered."""
        self.allocator.release(ip)
        self.responder.clear_declined(ip)

    def release(self, owner: Owner) -> tuple[IPv4Address | IPv6Address, ...]:
        released4 = self.allocator.release_owner(owner)
        for ip in released4:
            self.responder.clear_declined(ip)
        released: tuple[IPv4Address | IPv6Address, ...] = released4
        if self.v6 is not None:
            released += self.v6.release_owner(owner)
        self.forget(owner)
        return released

    def forget(self, owner: Owner) -> None:
        """Drop the owner's NICs and stop serving them."""
        for mac in [mac for mac, nic in self.nics.items() if nic.owner == owner]:
            del self.nics[mac]
            self.responder.remove_reservation(mac)
            if self.v6 is not None:
                self.v6.unserve(mac)

    def restore_fitting(self, reservations: tuple[RestoreReservation, ...]) -> None:
        """Hold again the recorded addresses that fit the range again: a NIC the pool
        knows (bar a missing IPv6 address) or an owner holding some is newer than its record."""
        allocator = self.allocator
        for reservation in reservations:
            nic = self.nics.get(reservation.mac.lower())
            if nic is not None and nic.owner == reservation.owner and nic.ip6 is None:
                nic.ip6 = self._fitting6(reservation)
                if nic.serving:
                    self.serve_nic(reservation.mac.lower(), nic)
            if nic is not None or allocator.addresses_of(reservation.owner):
                continue
            if not allocator.is_assignable(reservation.ip) or allocator.owner_of(reservation.ip):
                self._fitting6(reservation)  # recorded: held, as when its IPv4 address left
                continue
            ip6 = self._fitting6(reservation)
            self.note(logging.INFO, "pool %s: %s of %s fits the range again; serving it again",
                      self.name, reservation.ip, reservation.owner)  # fmt: skip
            allocator.reserve(reservation.owner, reservation.ip)
            self.record(reservation.owner, reservation.mac, reservation.ip, reservation.hostname,
                        serve=True, ip6=ip6)  # fmt: skip

    def _fitting6(self, reservation: RestoreReservation) -> IPv6Address | None:
        """Hold the reservation's IPv6 address again if it fits (it may not, while
        its IPv4 one does: the NIC is then served its IPv4 address alone)."""
        ip6 = reservation.ip6
        if ip6 is None or self.v6 is None or not self.v6.fits(ip6):
            return None
        self.v6.reserve(reservation.owner, ip6)
        return ip6

    def state(self, *, serving: bool) -> PoolState:
        return PoolState(
            name=self.name,
            serving=serving,
            allocations=tuple(self.allocator.allocations()),
            excluded=tuple(self.allocator.excluded()),
            used=self.allocator.used,
            available=self.allocator.available,
            declined=tuple(sorted(self.responder.declined)),
            counters=self.responder.counters.as_dict(),
            v6=self.v6.state() if self.v6 is not None else None,
        )

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
            if claim.mac.lower() in self.nics or allocator.addresses_of(claim.owner):
                continue
            if not allocator.is_assignable(claim.ip) or allocator.owner_of(claim.ip):
                continue
            ip6 = self._fitting6(claim)
            allocator.reserve(claim.owner, claim.ip)
            self.record(claim.owner, claim.mac, claim.ip, claim.hostname, serve=False, ip6=ip6)

    def reconfigure(
        self, config: PoolConfig, restore: tuple[RestoreReservation, ...]
    ) -> tuple[tuple[IPv4Address | IPv6Address, Owner], ...]:
        """A new range: what no longer fits goes (returned), recorded addresses
        that fit again come back. An IPv6 address that no longer fits goes alone:
        its NIC keeps its IPv4 address."""
        evicted: tuple[tuple[IPv4Address | IPv6Address, Owner], ...] = self.reconfigure6(config.v6)
        evicted4 = self.allocator.reconfigure(config.spec)
        for ip, owner in evicted4:
            self.forget(owner)
            self.responder.clear_declined(ip)
        self.restore_fitting(restore)
        return evicted + evicted4

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


class MacConflict(IpamError):
    """A MAC is already claimed in this pool by another owner."""

    def __init__(self, mac: str, holder: str) -> None:
        super().__init__(f"MAC {mac} is already in use by {holder}")
        self.mac = mac
        self.holder = holder
