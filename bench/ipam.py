"""Allocator costs: memory of empty pools, allocate/release and restore speed.

IPv4 on a /8 and a /16; IPv6 (Allocator6) on a whole /64: memory empty, after
10k and 100k allocations and after reservations scattered over the /64 (the
free map's worst case: one block per address), and the same speed figures.

Run: .venv/bin/python -m bench.ipam   (or `make bench`)

Times are reported as wall clock and as this process's CPU time: the machine
is shared, and CPU time is what the allocator itself costs.
"""

from __future__ import annotations

import random
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from typing import Protocol, TypeVar

from kvip.ipam import Allocator, Allocator6, Owner, PoolSpec, PoolSpec6
from kvip.serving import parse_ippool

MB = 1_000_000
ALLOCATIONS = 1_000_000
RESERVATIONS = 65_000
FILLS = (10_000, 100_000)
_A = TypeVar("_A", IPv4Address, IPv6Address)


def ippool_range(ipv4config: dict[str, object]) -> PoolSpec:
    """The range of an IPPool, read by kvip's IPPool parser."""
    spec = {"networkname": "net1", "ipv4config": ipv4config}
    parsed = parse_ippool({"metadata": {"name": "bench"}, "spec": spec}).spec
    assert parsed is not None  # an ipv4config was given
    return parsed


SLASH_8 = ippool_range({
    "subnet": "10.0.0.0/8", "serverip": "10.0.0.2", "router": "10.0.0.1",
    "pool": {"start": "10.0.0.10", "end": "10.255.255.250", "exclude": ["10.0.0.67"]},
})  # fmt: skip
SLASH_16 = ippool_range({
    "subnet": "172.16.0.0/16", "serverip": "172.16.0.2", "router": "172.16.0.1",
    "pool": {"start": "172.16.0.10", "end": "172.16.255.250", "exclude": ["172.16.0.67"]},
})  # fmt: skip

# kvip.serving does not read ipv6config yet: the spec is built directly.
SLASH_64 = PoolSpec6(
    subnet=IPv6Network("2001:db8:0:1::/64"),
    start=IPv6Address("2001:db8:0:1::10"),
    end=IPv6Address("2001:db8:0:1:ffff:ffff:ffff:fffe"),
    server_ip=IPv6Address("2001:db8:0:1::2"),
    router=IPv6Address("2001:db8:0:1::1"),
    exclude=(IPv6Address("2001:db8:0:1::67"),),
)


@dataclass(frozen=True, slots=True)
class Timing:
    wall: float
    cpu: float

    def __str__(self) -> str:
        return f"{self.wall:.2f} s wall, {self.cpu:.2f} s CPU"


def timed(work: Callable[[], object]) -> Timing:
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return Timing(time.perf_counter() - wall, time.process_time() - cpu)


def owners(count: int) -> list[Owner]:
    return [Owner(f"default/vm{n} [52:54:{n:08x}]") for n in range(count)]


def construction_bytes(spec: PoolSpec | PoolSpec6) -> int:
    """Bytes still allocated after building an empty allocator for `spec`."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    allocator = Allocator(spec) if isinstance(spec, PoolSpec) else Allocator6(spec)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del allocator
    return after - before


def filled_bytes(spec: PoolSpec | PoolSpec6, count: int, *, scattered: bool = False) -> int:
    """Bytes held by an allocator for `spec` after `count` allocations (or
    reservations at random over the range), owner names not counted: the
    caller holds them anyway."""
    names = owners(count)
    start, end = int(spec.start), int(spec.end)
    make = IPv4Address if isinstance(spec, PoolSpec) else IPv6Address
    rng = random.Random(0)
    spots = [make(rng.randint(start, end)) for _ in range(count)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    allocator = Allocator(spec) if isinstance(spec, PoolSpec) else Allocator6(spec)
    if scattered:
        for owner, ip in zip(names, spots, strict=True):
            allocator.reserve(owner, ip)  # type: ignore[arg-type]
    else:
        for owner in names:
            allocator.allocate(owner)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert allocator.used == count
    return after - before


class Pool(Protocol[_A]):
    """What the speed figures use of an `Allocator` or an `Allocator6`."""

    @property
    def used(self) -> int: ...
    def allocate(self, owner: Owner) -> _A: ...
    def reserve(self, owner: Owner, ip: _A) -> None: ...
    def release(self, ip: _A) -> Owner | None: ...


def allocate_then_release(allocator: Pool[_A]) -> tuple[Timing, Timing]:
    names = owners(ALLOCATIONS)
    handed: list[_A] = []
    allocating = timed(lambda: handed.extend(allocator.allocate(owner) for owner in names))
    assert allocator.used == ALLOCATIONS
    releasing = timed(lambda: [allocator.release(ip) for ip in handed])
    assert allocator.used == 0
    return allocating, releasing


def restore() -> Timing:
    allocator = Allocator(SLASH_16)
    assignable = [ip for ip in map(IPv4Address, range(int(SLASH_16.start), int(SLASH_16.end) + 1))
                  if allocator.is_assignable(ip)]  # fmt: skip
    # vmnetcfgs arrive in no particular address order.
    chosen = random.Random(0).sample(assignable, RESERVATIONS)
    records = [(Owner(f"default/vm{n} [52:54:{n:08x}]"), ip) for n, ip in enumerate(chosen)]

    def reserve_all() -> None:
        for owner, ip in records:
            allocator.reserve(owner, ip)

    timing = timed(reserve_all)
    assert allocator.used == RESERVATIONS
    return timing


def restore_scattered() -> Timing:
    """Reservations at random over a whole /64: each one touches its own block."""
    allocator = Allocator6(SLASH_64)
    rng = random.Random(0)
    start, end = int(SLASH_64.start), int(SLASH_64.end)
    records = [(owner, IPv6Address(rng.randint(start, end))) for owner in owners(RESERVATIONS)]

    def reserve_all() -> None:
        for owner, ip in records:
            allocator.reserve(owner, ip)

    timing = timed(reserve_all)
    assert allocator.used == RESERVATIONS
    return timing


def reference_loop() -> Timing:
    """A fixed pure-Python workload (dict writes and int ops, like the allocator's).

    The machine is shared: compare the figures above with this one, taken in
    the same run, rather than with figures from another moment.
    """
    table: dict[int, int] = {}

    def work() -> None:
        for n in range(ALLOCATIONS):
            table[n] = n ^ (n + 1)

    return timed(work)


def main() -> None:
    rows: list[tuple[str, str, str]] = []
    rows.append((f"reference: {ALLOCATIONS:,} dict writes", str(reference_loop()), "-"))
    slash_8 = construction_bytes(SLASH_8)
    rows.append(("empty /8 allocator, bytes", f"{slash_8:,}", f"< {MB:,}"))
    rows.append(("empty /16 allocator, bytes", f"{construction_bytes(SLASH_16):,}", "-"))
    allocating, releasing = allocate_then_release(Allocator(SLASH_8))
    total = Timing(allocating.wall + releasing.wall, allocating.cpu + releasing.cpu)
    rows.append((f"{ALLOCATIONS:,} allocate on a /8", str(allocating), "-"))
    rows.append((f"{ALLOCATIONS:,} release on a /8", str(releasing), "-"))
    rows.append((f"{ALLOCATIONS:,} allocate + release", str(total), "< 5 s"))
    rows.append((f"restore {RESERVATIONS:,} reservations on a /16", str(restore()), "-"))
    filled = filled_bytes(SLASH_8, FILLS[-1])
    rows.append((f"/8 after {FILLS[-1]:,} allocations, bytes", f"{filled:,}", "-"))
    slash_64 = construction_bytes(SLASH_64)
    rows.append(("IPv6: empty /64 allocator, bytes", f"{slash_64:,}", f"< {MB:,}"))
    for count in FILLS:
        rows.append(
            (
                f"IPv6: /64 after {count:,} allocations, bytes",
                f"{filled_bytes(SLASH_64, count):,}",
                "-",
            )
        )
    scattered = filled_bytes(SLASH_64, FILLS[-1], scattered=True)
    rows.append(
        (f"IPv6: /64 after {FILLS[-1]:,} scattered reservations, bytes", f"{scattered:,}", "-")
    )
    allocating, releasing = allocate_then_release(Allocator6(SLASH_64))
    total = Timing(allocating.wall + releasing.wall, allocating.cpu + releasing.cpu)
    rows.append((f"IPv6: {ALLOCATIONS:,} allocate on a /64", str(allocating), "-"))
    rows.append((f"IPv6: {ALLOCATIONS:,} release on a /64", str(releasing), "-"))
    rows.append((f"IPv6: {ALLOCATIONS:,} allocate + release", str(total), "< 5 s"))
    rows.append(
        (f"IPv6: restore {RESERVATIONS:,} scattered over a /64", str(restore_scattered()), "-")
    )
    width = max(len(row[0]) for row in rows)
    figure_width = max(len(row[1]) for row in rows)
    print(f"{'kvip.ipam':<{width}}  {'measured':<{figure_width}}  target")
    for what, figure, target in rows:
        print(f"{what:<{width}}  {figure:<{figure_width}}  {target}")


if __name__ == "__main__":
    main()
