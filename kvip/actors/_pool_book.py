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
from kvip.actors._pool_book_carry import BookCarry
from kvip.ipam import Allocator, IpamError, Owner
from kvip.serving import (
    HISTORY_PER_MAC,
    MacSeen,
    PoolConfig,
    Reservation,
    Responder,
    mac_bytes,
)

log = logging.getLogger(__name__)

#: Who holds a kvip replica's own address when it lies inside a pool's range.
REPLICA_OWNER = Owner("kvip replica address")

#: What a pool heard lately from a MAC (None: nothing), and whether the address
#: reserved for it was declined.
HeardFrom = tuple[MacSeen | None, bool]


@dataclass(slots=True)
class _Nic:
    owner: Owner
    #: Its IPv4 address; None on an IPv6-only pool (or one that was, until the
    #: NIC's next claim).
    ip: IPv4Address | None
    hostname: str | None
    serving: bool
    #: Its IPv6 address, on a dual-stack or IPv6-only pool (held with `ip`,
    #: served with it).
    ip6: IPv6Address | None = None


@dataclass(slots=True)
class PoolBook(BookCarry):
    name: str
    #: The IPv4 half: both None for an IPv6-only pool.
    allocator: Allocator | None
    responder: Responder | None
    #: The IPv6 half of a dual-stack or IPv6-only pool.
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
        if config.spec is None or config.options is None:
            return cls(config.name, None, None, book6)
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
            ip = self.reserve4(message.owner, message.ip)
            self.record(message.owner, message.mac, ip, message.hostname, serve=True, ip6=ip6)
            return ip
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
            return self.responder is not None and self.responder.clear_declined(message.ip)
        if isinstance(message, MarkDeclined):
            if isinstance(message.ip, IPv6Address):
                return self.v6.responder.mark_declined(message.ip) if self.v6 else None
            return self.responder.mark_declined(message.ip) if self.responder else None
        if isinstance(message, Inspect):
            return self.state(serving=serving)
        if isinstance(message, Reconfigure):
            raise TypeError("Reconfigure needs the running actor")
        raise TypeError(f"pool actor cannot handle {message!r}")

    def claim(self, message: ClaimAddress) -> IPv4Address | None:
        """An address for a NIC, held but not served until ServeReservation. On an
        IPv6-only pool, no address: the NIC is made known for its ClaimAddress6."""
        self.check_mac(message.owner, message.mac)
        if self.allocator is None:
            known = self.nics.get(message.mac.lower())
            if known is None or known.owner != message.owner or known.ip is not None:
                ip6 = known.ip6 if known is not None and known.owner == message.owner else None
                self.record(message.owner, message.mac, None, message.hostname, serve=False,
                            ip6=ip6)  # fmt: skip
            return None
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
            raise IpamError(f"{message.owner} claims an IPv6 address before its ClaimAddress")
        ip6, freed = self.v6.claim(message.owner, message.requested, message.replaces)
        for extra in freed:
            self.note(logging.WARNING, "pool %s: %s held %s besides %s; released", self.name,
                      message.owner, extra, ip6)  # fmt: skip
        for mac, other in list(self.nics.items()):
            if other.owner != message.owner and other.ip6 == ip6:
                # It moved here from the NIC's previous MAC (`replaces`): no longer
                # served there; a NIC left with no address at all is gone.
                self.note(logging.INFO, "pool %s: %s moves from %s to %s", self.name, ip6,
                          other.owner, message.owner)  # fmt: skip
                self.v6.unserve(mac)
                other.ip6 = None
                if other.ip is None:
                    self.forget(other.owner)
        if nic.ip6 != ip6:
            if nic.serving:
                self.v6.unserve(message.mac)
            nic.ip6 = ip6
        return ip6

    def served4(self, ip: IPv4Address | None) -> IPv4Address | None:
        """A recorded IPv4 address as this pool holds it: not on an IPv6-only pool."""
        return ip if self.allocator is not None else None

    def reserve4(self, owner: Owner, ip: IPv4Address | None) -> IPv4Address | None:
        """Hold a record's IPv4 address (IpamError if it cannot be); None if it has
        none here (none recorded, or an IPv6-only pool)."""
        if ip is None or self.allocator is None:
            return None
        self.allocator.reserve(owner, ip)
        return ip

    def held4(self, owner: Owner) -> tuple[IPv4Address, ...]:
        """The IPv4 addresses `owner` holds."""
        return tuple(self.allocator.addresses_of(owner)) if self.allocator is not None else ()

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
                and self.served4(record.ip) == nic.ip
                and (self.v6.inside(record.ip6) if self.v6 is not None else None) == nic.ip6
            ):
                if not nic.serving:
                    self.serve_nic(mac, nic)
                continue
            released.extend(self.release(nic.owner))
        problems: list[tuple[RestoreReservation, IpamError]] = []
        for record in message.records:
            held = self.nics.get(record.mac.lower())
            if (
                held is not None
                and held.owner == record.owner
                and held.ip == self.served4(record.ip)
                and (held.ip is not None or held.ip6 is not None)
            ):
                continue
            try:
                self.check_mac(record.owner, record.mac)
                ip6 = self.reserve6(record)
                ip = self.reserve4(record.owner, record.ip)
            except IpamError as exc:
                problems.append((record, exc))
                continue
            self.record(record.owner, record.mac, ip, record.hostname, serve=True, ip6=ip6)
        for record in message.records:
            responder = self.responder
            if responder is not None and record.ip is not None:
                if record.ip in message.declined:
                    responder.mark_declined(record.ip)
                elif record.ip in responder.declined:
                    responder.clear_declined(record.ip)
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
        if self.allocator is None:
            return {}  # an IPv6-only pool: DHCPv6 answers from link-local addresses
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
        """What the pool heard from `mac` by DHCP and DHCPv6 (the two histories
        as one, in time order), and whether its address (of either) was declined."""
        nic = self.nics.get(mac.lower())
        key = mac_bytes(mac)
        found: list[MacSeen] = []
        declined = False
        if self.responder is not None:
            declined = nic is not None and nic.ip in self.responder.declined
            found += filter(None, (self.responder.history.of(key),))
        if self.v6 is not None:
            declined |= nic is not None and nic.ip6 in self.v6.responder.declined
            found += filter(None, (self.v6.responder.history.of(key),))
        if len(found) < 2:
            return (found[0] if found else None), declined
        (count4, seen4, unknown4), (count6, seen6, unknown6) = found
        seen = tuple(sorted(seen4 + seen6, key=lambda s: s[0])[-HISTORY_PER_MAC:])
        return (count4 + count6, seen, unknown4 and unknown6), declined

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
        if nic.ip is not None and self.responder is not None:
            self.responder.set_reservation(mac, Reservation(nic.ip, nic.hostname))
        if nic.ip6 is not None and self.v6 is not None:
            self.v6.serve(mac, nic.ip6, nic.hostname)

    def record(
        self,
        owner: Owner,
        mac: str,
        ip: IPv4Address | None,
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
        if self.allocator is not None and self.responder is not None:
            self.allocator.release(ip)
            self.responder.clear_declined(ip)

    def release(self, owner: Owner) -> tuple[IPv4Address | IPv6Address, ...]:
        released4 = self.allocator.release_owner(owner) if self.allocator is not None else ()
        for ip in released4:
            if self.responder is not None:
                self.responder.clear_declined(ip)
        released: tuple[IPv4Address | IPv6Address, ...] = tuple(released4)
        if self.v6 is not None:
            released += self.v6.release_owner(owner)
        self.forget(owner)
        return released

    def forget(self, owner: Owner) -> None:
        """Drop the owner's NICs and stop serving them."""
        for mac in [mac for mac, nic in self.nics.items() if nic.owner == owner]:
            del self.nics[mac]
            if self.responder is not None:
                self.responder.remove_reservation(mac)
            if self.v6 is not None:
                self.v6.unserve(mac)

    def state(self, *, serving: bool) -> PoolState:
        v6 = self.v6.state() if self.v6 is not None else None
        allocator, responder = self.allocator, self.responder
        if allocator is None or responder is None:
            return PoolState(name=self.name, serving=serving, allocations=(), excluded=(),
                             used=0, available=0, declined=(), counters={}, v6=v6,
                             v4=False)  # fmt: skip
        return PoolState(
            name=self.name,
            serving=serving,
            allocations=tuple(allocator.allocations()),
            excluded=tuple(allocator.excluded()),
            used=allocator.used,
            available=allocator.available,
            declined=tuple(sorted(responder.declined)),
            counters=responder.counters.as_dict(),
            v6=v6,
        )


class MacConflict(IpamError):
    """A MAC is already claimed in this pool by another owner."""

    def __init__(self, mac: str, holder: str) -> None:
        super().__init__(f"MAC {mac} is already in use by {holder}")
        self.mac = mac
        self.holder = holder
