"""The messages a PoolActor takes, and what it answers."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from kvip.ipam import Owner
from kvip.serving import PoolConfig


class NicOwner(str):
    """Who holds an address: the NIC with MAC `mac` of the VM `vm` ('ns/name').

    Its value is kubevirt-ip-helper's owner text, "ns/vm [mac]": the allocator,
    the messages and IPPool.status all name owners by that text, so it is a str.
    What the pool hands back is the very object the controller gave it, so the
    controller reads the VM and the MAC from it instead of parsing the text."""

    _vm: str
    _mac: str

    def __new__(cls, vm: str, mac: str) -> NicOwner:
        owner = super().__new__(cls, f"{vm} [{mac}]")
        owner._vm, owner._mac = vm, mac
        return owner

    @property
    def vm(self) -> str:
        return self._vm

    @property
    def mac(self) -> str:
        return self._mac

    @property
    def owner(self) -> Owner:
        """As the allocator and the messages take it."""
        return Owner(self)


def vm_of(owner: Owner | None) -> str | None:
    """The VM ('ns/name') of a NIC's owner; None for an owner kvip's controller did
    not name (the pool's own tests and benchmarks use plain text)."""
    return owner.vm if isinstance(owner, NicOwner) else None


@dataclass(frozen=True, slots=True)
class ClaimAddress:
    """Hold an address for one NIC (the requested one, or the lowest free).

    Answer: the IPv4Address; None on an IPv6-only pool, where the claim makes
    the NIC known and its ClaimAddress6 gives it its address. The pool does not
    answer DHCP for it until ServeReservation: the caller first writes it to
    the vmnetcfg (the durable record). Raises PoolExhausted, AddressTaken, AddressExcluded, ... or
    MacConflict when another owner holds the MAC.

    `replaces` names the same NIC under its previous MAC: if it holds the
    requested address, the address moves to `owner` in this one step (and the
    old MAC is no longer served), so no other claim can take it in between."""

    owner: Owner
    mac: str
    requested: IPv4Address | None = None
    hostname: str | None = None
    replaces: Owner | None = None


@dataclass(frozen=True, slots=True)
class ClaimAddress6:
    """Hold an IPv6 address for a NIC of a pool with ipv6config (the requested one, or
    the lowest free), after its ClaimAddress: the IPv4 claim makes the NIC
    known, this one adds its second address. Answer: the IPv6Address. Not
    served until ServeReservation names it. Raises IpamError as ClaimAddress
    does, and NoIpv6 when the pool has no ipv6config.

    `replaces`: as in ClaimAddress, the NIC under its previous MAC, whose IPv6
    address moves with it."""

    owner: Owner
    mac: str
    requested: IPv6Address | None = None
    replaces: Owner | None = None


@dataclass(frozen=True, slots=True)
class ServeReservation:
    """The claim of `mac` is durable now: answer DHCP (and DHCPv6 for `ip6`,
    when given) for it. Answer: bool."""

    mac: str
    #: None on an IPv6-only pool.
    ip: IPv4Address | None
    ip6: IPv6Address | None = None


@dataclass(frozen=True, slots=True)
class RestoreReservation:
    """A reservation read back from its durable record: hold it and serve it.
    A pool holds the family it serves: on an IPv6-only pool `ip` is ignored
    (None in a record of one), on an IPv4-only pool `ip6`."""

    owner: Owner
    mac: str
    ip: IPv4Address | None
    hostname: str | None = None
    #: The NIC's IPv6 address, on a dual-stack or IPv6-only pool.
    ip6: IPv6Address | None = None


@dataclass(frozen=True, slots=True)
class ReleaseOwner:
    """Free every address of `owner` and stop serving its MACs at once.
    Answer: the released addresses."""

    owner: Owner


@dataclass(frozen=True, slots=True)
class ReleaseVm:
    """Free every address of every NIC of the VM `key` ('namespace/name'), held
    or served, whatever its MACs were, except those of the owners in `keep`.
    Answer: the released addresses."""

    key: str
    keep: frozenset[Owner] = frozenset()


@dataclass(frozen=True, slots=True)
class ServeRecorded:
    """A replica that does not hold the Lease serves what the vmnetcfgs record,
    nothing else: make the VM `key`'s NICs on this pool exactly `records`
    (held and served), releasing whatever else the VM holds here. Applied in
    one step, so no packet sees a half-changed VM.

    Answer: (released addresses, (record, IpamError) for each record that
    cannot be held: its address is another NIC's here, or out of the range)."""

    key: str
    records: tuple[RestoreReservation, ...] = ()
    #: Recorded addresses the client declined: not answered (the VM's others are).
    declined: frozenset[IPv4Address | IPv6Address] = frozenset()


@dataclass(frozen=True, slots=True)
class HoldReplicaAddresses:
    """The addresses kvip's replicas answer as on this pool (from their heartbeat
    Leases; this replica's own is added by the pool). Those inside the range are
    never handed out. Answer: {address: what is wrong} for those in the range."""

    addresses: frozenset[IPv4Address] = frozenset()


@dataclass(frozen=True, slots=True)
class Reconfigure:
    """The IPPool changed. Options apply to the very next reply; a new range
    keeps what fits. Answer: the (ip, owner) pairs that no longer fit.

    `restore` are the durable reservations of the pool's network: one that the
    pool does not hold (evicted by an earlier shrink) and that fits again is
    held and served again in the same step, before any claim can take it."""

    config: PoolConfig
    restore: tuple[RestoreReservation, ...] = ()


@dataclass(frozen=True, slots=True)
class ClearDecline:
    """An operator resolved an address conflict. Answer: whether it was declined."""

    ip: IPv4Address | IPv6Address


@dataclass(frozen=True, slots=True)
class MarkDeclined:
    """A client DECLINEd `ip` (seen by another replica, or recorded in its
    vmnetcfg): not answered until cleared. Answer: None."""

    ip: IPv4Address | IPv6Address


@dataclass(frozen=True, slots=True)
class Inspect:
    """Answer: a PoolState."""


PoolMessage = (
    ClaimAddress
    | ClaimAddress6
    | ServeReservation
    | RestoreReservation
    | ReleaseOwner
    | ReleaseVm
    | ServeRecorded
    | HoldReplicaAddresses
    | Reconfigure
    | ClearDecline
    | MarkDeclined
    | Inspect
)


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolState:
    """A snapshot of a pool, for status, metrics and tests."""

    name: str
    serving: bool
    allocations: tuple[tuple[IPv4Address, Owner], ...]
    excluded: tuple[IPv4Address, ...]
    used: int
    available: int
    declined: tuple[IPv4Address, ...]
    counters: dict[str, object]
    #: The IPv6 half of a dual-stack or IPv6-only pool.
    v6: PoolState6 | None = None
    #: False for an IPv6-only pool (the IPv4 fields above are then empty).
    v4: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolState6:
    """A pool's IPv6 addresses: counts are exact (a /64 holds 2**64)."""

    allocations: tuple[tuple[IPv6Address, Owner], ...]
    excluded: tuple[IPv6Address, ...]
    used: int
    available: int
    declined: tuple[IPv6Address, ...]
