"""Who holds which address of one IPPool's range."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from ipaddress import IPv4Address, IPv6Address
from typing import Generic, TypeVar

from kvip.ipam._errors import (
    AddressExcluded,
    AddressOutOfRange,
    AddressTaken,
    ExclusionReason,
    Owner,
    PoolExhausted,
)
from kvip.ipam._freemap import FreeMap
from kvip.ipam._spec import PoolSpec
from kvip.ipam._spec6 import PoolSpec6

_A = TypeVar("_A", IPv4Address, IPv6Address)
_S = TypeVar("_S", PoolSpec, PoolSpec6)


class _RangeAllocator(Generic[_A, _S]):
    """`Allocator` and `Allocator6`: one implementation on ints, typed per family.

    Addresses are ints inside; `_ip` turns one back into an address of the
    pool's family. PoolSpec6 keeps IPv6 ranges out of ::/8, so an address of
    the other family (whose int is below 2**32 or above it) is never in range.
    """

    __slots__ = ("_end", "_excluded", "_free", "_held", "_ip", "_owner_of", "_spec", "_start")

    def __init__(self, spec: _S, address_type: Callable[[int], _A]) -> None:
        self._spec: _S = spec
        self._ip: Callable[[int], _A] = address_type
        self._start = int(spec.start)
        self._end = int(spec.end)
        self._excluded = {int(ip): reason for ip, reason in spec.exclusions().items()}
        self._free = FreeMap(spec.size)
        for address in self._excluded:
            self._free.take(address - self._start)
        self._owner_of: dict[int, Owner] = {}
        # The common case is one address per owner; a set only when it holds more.
        self._held: dict[Owner, int | set[int]] = {}

    @property
    def spec(self) -> _S:
        return self._spec

    # --- queries -------------------------------------------------------------

    @property
    def capacity(self) -> int:
        """Addresses that could ever be handed out: the range minus exclusions."""
        return self._spec.size - len(self._excluded)

    @property
    def used(self) -> int:
        return len(self._owner_of)

    @property
    def available(self) -> int:
        return self._free.free_count

    def owner_of(self, ip: _A) -> Owner | None:
        return self._owner_of.get(int(ip))

    def addresses_of(self, owner: Owner) -> tuple[_A, ...]:
        """The owner's addresses in ascending order (empty if it holds none)."""
        held = self._held.get(owner)
        if held is None:
            return ()
        if isinstance(held, int):
            return (self._ip(held),)
        return tuple(map(self._ip, sorted(held)))

    def allocations(self) -> Iterator[tuple[_A, Owner]]:
        """Every (address, owner) pair, in address order."""
        owner_of, ip = self._owner_of, self._ip
        for address in sorted(owner_of):
            yield ip(address), owner_of[address]

    def excluded(self) -> Iterator[_A]:
        """In-range addresses that are never handed out, in address order."""
        yield from map(self._ip, sorted(self._excluded))

    def exclusion_reason(self, ip: _A) -> ExclusionReason | None:
        """Why an in-range address is never handed out, or None if it can be."""
        return self._excluded.get(int(ip))

    def is_assignable(self, ip: _A) -> bool:
        """Whether the address is in the range and not excluded (held or not)."""
        address = int(ip)
        return self._in_range(address) and address not in self._excluded

    # --- changes -------------------------------------------------------------

    def allocate(self, owner: Owner, *, requested: _A | None = None) -> _A:
        """Hand `owner` the requested address, or else the lowest free one.

        Idempotent for a request the owner already holds. Without a request
        the owner always gets a new address (one per call, e.g. per NIC).
        Raises `PoolExhausted`, or for a request `AddressOutOfRange`,
        `AddressExcluded` or `AddressTaken`; nothing changes when it raises.
        """
        if requested is not None:
            self.reserve(owner, requested)
            return requested
        slot = self._free.take_lowest()
        if slot is None:
            spec = self._spec
            raise PoolExhausted(start=spec.start, end=spec.end, capacity=self.capacity)
        address = self._start + slot
        # _record, inlined: this is the hot path when a large pool fills up.
        self._owner_of[address] = owner
        held = self._held.setdefault(owner, address)
        if held != address:
            self._hold_another(owner, held, address)
        # Through a local: `self._ip(...)` compiles to a method load that
        # CPython 3.11 cannot specialise for a slot, an attribute load it can.
        ip = self._ip
        return ip(address)

    def reserve(self, owner: Owner, ip: _A) -> None:
        """Record that `owner` holds `ip` (a known reservation restored at start-up).

        Idempotent for the same owner. Raises `AddressTaken` (naming the holder)
        if another owner holds it, `AddressOutOfRange` or `AddressExcluded` if
        it can never be held; nothing changes when it raises.
        """
        address = int(ip)
        holder = self._owner_of.get(address)
        if holder is not None:
            if holder == owner:
                return
            raise AddressTaken(ip, holder=holder)
        self._check_assignable(ip)
        self._free.take(address - self._start)
        self._record(address, owner)

    def release(self, ip: _A) -> Owner | None:
        """Free the address; return who held it (None if nobody did)."""
        address = int(ip)
        owner = self._owner_of.pop(address, None)
        if owner is None:
            return None
        # One lookup in the common case (an owner with one address): at a
        # million owners each dict probe is a likely cache miss.
        held = self._held.pop(owner)
        if isinstance(held, set):
            held.discard(address)
            self._held[owner] = held.pop() if len(held) == 1 else held
        self._free.put(address - self._start)
        return owner

    def release_owner(self, owner: Owner) -> tuple[_A, ...]:
        """Free every address of `owner`; return them in ascending order."""
        addresses = self.addresses_of(owner)
        for ip in addresses:
            self.release(ip)
        return addresses

    def reconfigure(self, new_spec: _S) -> tuple[tuple[_A, Owner], ...]:
        """Switch the live allocator to `new_spec` (new range, excludes, server, router).

        Keeps every allocation that is still assignable under `new_spec` and
        returns, in address order, those that are not; they are removed here,
        and the caller must report them: nothing is dropped silently.
        """
        fresh = _RangeAllocator(new_spec, self._ip)
        evicted: list[tuple[_A, Owner]] = []
        for ip, owner in self.allocations():
            if fresh.is_assignable(ip):
                fresh.reserve(owner, ip)
            else:
                evicted.append((ip, owner))
        # Swap state only once the new one is complete, so a failure above
        # leaves this allocator as it was.
        self._spec = fresh._spec
        self._start = fresh._start
        self._end = fresh._end
        self._excluded = fresh._excluded
        self._free = fresh._free
        self._owner_of = fresh._owner_of
        self._held = fresh._held
        return tuple(evicted)

    # --- internals -----------------------------------------------------------

    def _in_range(self, address: int) -> bool:
        return self._start <= address <= self._end

    def _check_assignable(self, ip: _A) -> None:
        address = int(ip)
        if not self._in_range(address):
            # More useful to the operator than "out of range": why not that one.
            boundary = self._spec.boundary_reason(ip)
            if boundary is not None:
                raise AddressExcluded(ip, reason=boundary)
            raise AddressOutOfRange(ip, start=self._spec.start, end=self._spec.end)
        reason = self._excluded.get(address)
        if reason is not None:
            raise AddressExcluded(ip, reason=reason)

    def _record(self, address: int, owner: Owner) -> None:
        self._owner_of[address] = owner
        held = self._held.setdefault(owner, address)
        if held != address:
            self._hold_another(owner, held, address)

    def _hold_another(self, owner: Owner, held: int | set[int], address: int) -> None:
        if isinstance(held, int):
            self._held[owner] = {held, address}
        else:
            held.add(address)


class Allocator(_RangeAllocator[IPv4Address, PoolSpec]):
    """The addresses of one IPv4 pool's [start, end] range and their owners.

    Deterministic: a new owner gets the lowest free address. One owner may
    hold several addresses (one per NIC). Never-assignable addresses (network,
    broadcast, server IP, router, the exclude list) are never handed out.

    Not thread-safe and never blocks: the pool actor is its single owner.
    Memory grows with what is held (and with each 64-address block ever
    touched: one small int), never with the size of the range.
    """

    __slots__ = ()

    def __init__(self, spec: PoolSpec) -> None:
        super().__init__(spec, IPv4Address)


class Allocator6(_RangeAllocator[IPv6Address, PoolSpec6]):
    """`Allocator` for an IPv6 pool: the same methods, errors and rules.

    Never handed out: the Subnet-Router anycast address (outside every valid
    range), the server IP, the router and the exclude list. A /64 range costs
    what an empty /8 does until addresses are held: the free map stores only
    the 64-address blocks ever touched. `capacity` and `available` are exact
    ints (2**64 and more do not fit an int64: whoever publishes them must
    say so).
    """

    __slots__ = ()

    def __init__(self, spec: PoolSpec6) -> None:
        super().__init__(spec, IPv6Address)
