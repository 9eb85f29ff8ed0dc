"""The messages a PoolActor takes, and what it answers."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

from kvip.ipam import Owner
from kvip.serving import PoolConfig


@dataclass(frozen=True, slots=True)
class ClaimAddress:
    """Hold an address for one NIC (the requested one, or the lowest free).

    Answer: the IPv4Address. The pool does not answer DHCP for it until
    ServeReservation: the caller first writes it to the vmnetcfg (the durable
    record). Raises PoolExhausted, AddressTaken, AddressExcluded, ... or
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
class ServeReservation:
    """The claim of `mac` is durable now: answer DHCP for it. Answer: bool."""

    mac: str
    ip: IPv4Address


@dataclass(frozen=True, slots=True)
class RestoreReservation:
    """A reservation read back from its durable record: hold it and serve it."""

    owner: Owner
    mac: str
    ip: IPv4Address
    hostname: str | None = None


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

    ip: IPv4Address


@dataclass(frozen=True, slots=True)
class Inspect:
    """Answer: a PoolState."""


PoolMessage = (
    ClaimAddress
    | ServeReservation
    | RestoreReservation
    | ReleaseOwner
    | ReleaseVm
    | Reconfigure
    | ClearDecline
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
