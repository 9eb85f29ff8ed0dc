"""Allocator costs: memory of empty pools, allocate/release and restore speed.

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
from ipaddress import IPv4Address

from kvip.ipam import Allocator, Owner, PoolSpec
from kvip.serving import parse_ippool

MB = 1_000_000
ALLOCATIONS = 1_000_000
RESERVATIONS = 65_000


def ippool_range(ipv4config: dict[str, object]) -> PoolSpec:
    """The range of an IPPool, read by kvip's IPPool parser."""
    spec = {"networkname": "net1", "ipv4config": ipv4config}
    return parse_ippool({"metadata": {"name": "bench"}, "spec": spec}).spec


SLASH_8 = ippool_range({
    "subnet": "10.0.0.0/8", "serverip": "10.0.0.2", "router": "10.0.0.1",
    "pool": {"start": "10.0.0.10", "end": "10.255.255.250", "exclude": ["10.0.0.67"]},
})  # fmt: skip
SLASH_16 = ippool_range({
    "subnet": "172.16.0.0/16", "serverip": "172.16.0.2", "router": "172.16.0.1",
    "pool": {"start": "172.16.0.10", "end": "172.16.255.250", "exclude": ["172.16.0.67"]},
})  # fmt: skip


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


def construction_bytes(spec: PoolSpec) -> int:
    """Bytes still allocated after building an empty allocator for `spec`."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    allocator = Allocator(spec)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del allocator
    return after - before


def allocate_then_release() -> tuple[Timing, Timing]:
    allocator = Allocator(SLASH_8)
    owners = [Owner(f"default/vm{n} [52:54:{n:08x}]") for n in range(ALLOCATIONS)]
    handed: list[IPv4Address] = []
    allocating = timed(lambda: handed.extend(allocator.allocate(owner) for owner in owners))
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
    allocating, releasing = allocate_then_release()
    total = Timing(allocating.wall + releasing.wall, allocating.cpu + releasing.cpu)
    rows.append((f"{ALLOCATIONS:,} allocate on a /8", str(allocating), "-"))
    rows.append((f"{ALLOCATIONS:,} release on a /8", str(releasing), "-"))
    rows.append((f"{ALLOCATIONS:,} allocate + release", str(total), "< 5 s"))
    rows.append((f"restore {RESERVATIONS:,} reservations on a /16", str(restore()), "-"))
    width = max(len(row[0]) for row in rows)
    figure_width = max(len(row[1]) for row in rows)
    print(f"{'kvip.ipam':<{width}}  {'measured':<{figure_width}}  target")
    for what, figure, target in rows:
        print(f"{what:<{width}}  {figure:<{figure_width}}  {target}")


if __name__ == "__main__":
    main()
