"""Allocator examples: edge-sized subnets, never-assignable addresses, errors."""

from __future__ import annotations

import tracemalloc
from ipaddress import IPv4Address, IPv4Network, IPv6Address

import pytest

from kvip.ipam import (
    AddressExcluded,
    AddressOutOfRange,
    AddressTaken,
    Allocator,
    ExclusionReason,
    Owner,
    PoolExhausted,
    PoolSpec,
)

VM1 = Owner("default/vm1 [52:54:00:aa:bb:01]")
VM2 = Owner("default/vm2 [52:54:00:aa:bb:02]")


def ip(text: str) -> IPv4Address:
    return IPv4Address(text)


def spec(
    subnet: str,
    start: str,
    end: str,
    *,
    server_ip: str | None = None,
    router: str | None = None,
    exclude: tuple[str, ...] = (),
) -> PoolSpec:
    """The allocator's input; an IPPool's text is read by kvip.serving.parse_ippool."""
    return PoolSpec(
        subnet=IPv4Network(subnet, strict=False),
        start=ip(start),
        end=ip(end),
        server_ip=None if server_ip is None else ip(server_ip),
        router=None if router is None else ip(router),
        exclude=tuple(ip(text) for text in exclude),
    )


def pool(
    subnet: str,
    start: str,
    end: str,
    *,
    server_ip: str | None = None,
    router: str | None = None,
    exclude: tuple[str, ...] = (),
) -> Allocator:
    return Allocator(spec(subnet, start, end, server_ip=server_ip, router=router, exclude=exclude))


def drain(allocator: Allocator) -> list[IPv4Address]:
    handed: list[IPv4Address] = []
    while True:
        try:
            handed.append(allocator.allocate(Owner(f"vm{len(handed)}")))
        except PoolExhausted:
            return handed


def test_slash_32_hands_out_its_single_address() -> None:
    allocator = pool("198.18.0.5/32", "198.18.0.5", "198.18.0.5")
    assert allocator.capacity == 1
    assert list(allocator.excluded()) == []
    assert drain(allocator) == [ip("198.18.0.5")]


def test_slash_31_hands_out_both_addresses_per_rfc3021() -> None:
    allocator = pool("198.18.0.4/31", "198.18.0.4", "198.18.0.5")
    assert allocator.capacity == 2
    assert drain(allocator) == [ip("198.18.0.4"), ip("198.18.0.5")]


def test_slash_30_hands_out_its_two_hosts() -> None:
    allocator = pool("198.18.0.4/30", "198.18.0.5", "198.18.0.6")
    assert drain(allocator) == [ip("198.18.0.5"), ip("198.18.0.6")]


def test_slash_8_starts_empty_and_hands_out_from_the_bottom() -> None:
    allocator = pool("10.0.0.0/8", "10.0.0.1", "10.255.255.254", router="10.0.0.1")
    assert allocator.capacity == 2**24 - 3
    assert (allocator.used, allocator.available) == (0, 2**24 - 3)
    allocator.reserve(VM1, ip("10.255.255.254"))
    assert allocator.allocate(VM2) == ip("10.0.0.2")
    assert allocator.addresses_of(VM1) == (ip("10.255.255.254"),)
    assert list(allocator.excluded()) == [ip("10.0.0.1")]


def test_start_equal_to_end_is_a_pool_of_one() -> None:
    allocator = pool("198.18.0.0/24", "198.18.0.7", "198.18.0.7")
    assert allocator.allocate(VM1) == ip("198.18.0.7")
    with pytest.raises(PoolExhausted):
        allocator.allocate(VM2)


def test_excludes_outside_the_range_are_harmless() -> None:
    allocator = pool(
        "198.18.0.0/24",
        "198.18.0.10",
        "198.18.0.12",
        exclude=("198.18.0.9", "198.18.0.13", "192.0.2.1"),
    )
    assert allocator.capacity == 3
    assert list(allocator.excluded()) == []
    assert drain(allocator) == [ip("198.18.0.10"), ip("198.18.0.11"), ip("198.18.0.12")]


def test_everything_excluded_means_capacity_zero_and_immediate_exhaustion() -> None:
    allocator = pool(
        "198.18.0.0/24",
        "198.18.0.1",
        "198.18.0.3",
        server_ip="198.18.0.2",
        router="198.18.0.1",
        exclude=("198.18.0.3",),
    )
    assert (allocator.capacity, allocator.available, allocator.used) == (0, 0, 0)
    with pytest.raises(PoolExhausted, match="all 0 assignable addresses are in use"):
        allocator.allocate(VM1)


def test_server_ip_router_network_and_broadcast_are_never_handed_out() -> None:
    # RFC 3021 does not apply to a /29: its ends are network and broadcast.
    allocator = pool(
        "198.18.0.0/29", "198.18.0.1", "198.18.0.6", server_ip="198.18.0.3", router="198.18.0.1"
    )
    handed = drain(allocator)
    assert handed == [ip(f"198.18.0.{host}") for host in (2, 4, 5, 6)]
    assert list(allocator.excluded()) == [ip("198.18.0.1"), ip("198.18.0.3")]


def test_requesting_the_router_says_it_is_the_router() -> None:
    allocator = pool("198.18.0.0/24", "198.18.0.1", "198.18.0.99", router="198.18.0.1")
    with pytest.raises(AddressExcluded, match=r"198\.18\.0\.1 .*it is the pool's router") as caught:
        allocator.allocate(VM1, requested=ip("198.18.0.1"))
    assert caught.value.reason is ExclusionReason.ROUTER
    assert allocator.used == 0


@pytest.mark.parametrize(
    ("requested", "reason", "words"),
    [
        ("198.18.0.2", ExclusionReason.SERVER_IP, "server IP"),
        ("198.18.0.50", ExclusionReason.SPEC, "exclude list"),
    ],
)
def test_reserving_an_excluded_address_says_why(
    requested: str, reason: ExclusionReason, words: str
) -> None:
    allocator = pool(
        "198.18.0.0/24",
        "198.18.0.1",
        "198.18.0.99",
        server_ip="198.18.0.2",
        exclude=("198.18.0.50",),
    )
    with pytest.raises(AddressExcluded, match=words) as caught:
        allocator.reserve(VM1, ip(requested))
    assert caught.value.reason is reason
    assert allocator.exclusion_reason(ip(requested)) is reason
    assert not allocator.is_assignable(ip(requested))


@pytest.mark.parametrize(
    ("requested", "reason", "words"),
    [
        ("198.18.0.0", ExclusionReason.NETWORK, "it is the subnet's network address"),
        ("198.18.0.255", ExclusionReason.BROADCAST, "it is the subnet's broadcast address"),
    ],
)
def test_requesting_network_or_broadcast_says_which(
    requested: str, reason: ExclusionReason, words: str
) -> None:
    allocator = pool("198.18.0.0/24", "198.18.0.1", "198.18.0.254")
    with pytest.raises(AddressExcluded, match=words) as caught:
        allocator.allocate(VM1, requested=ip(requested))
    assert caught.value.reason is reason
    assert not allocator.is_assignable(ip(requested))
    assert allocator.used == 0


def test_rfc3021_subnet_ends_outside_the_range_are_just_out_of_range() -> None:
    allocator = pool("198.18.0.4/31", "198.18.0.5", "198.18.0.5")
    with pytest.raises(AddressOutOfRange):
        allocator.reserve(VM1, ip("198.18.0.4"))


def test_exhaustion_message_names_the_range_and_the_capacity() -> None:
    allocator = pool("198.18.0.0/24", "198.18.0.10", "198.18.0.12", exclude=("198.18.0.11",))
    drain(allocator)
    with pytest.raises(PoolExhausted) as caught:
        allocator.allocate(VM1)
    assert str(caught.value) == (
        "pool 198.18.0.10-198.18.0.12 is exhausted: all 2 assignable addresses are in use"
    )
    assert caught.value.capacity == 2


def test_address_taken_names_the_holder_and_changes_nothing() -> None:
    allocator = pool("198.18.0.0/24", "198.18.0.10", "198.18.0.20")
    allocator.reserve(VM1, ip("198.18.0.15"))
    with pytest.raises(AddressTaken) as caught:
        allocator.allocate(VM2, requested=ip("198.18.0.15"))
    assert caught.value.holder == VM1
    assert str(caught.value) == f"198.18.0.15 is already held by {VM1}"
    assert allocator.owner_of(ip("198.18.0.15")) == VM1
    assert allocator.addresses_of(VM2) == ()
    assert allocator.used == 1


def test_out_of_range_names_the_range() -> None:
    allocator = pool("198.18.0.0/24", "198.18.0.10", "198.18.0.20")
    expected = r"198\.18\.0\.21 is outside the pool range 198\.18\.0\.10-198\.18\.0\.20"
    with pytest.raises(AddressOutOfRange, match=expected):
        allocator.reserve(VM1, ip("198.18.0.21"))
    with pytest.raises(AddressOutOfRange):
        allocator.allocate(VM1, requested=ip("10.0.0.1"))


def test_reserve_and_requested_allocate_are_idempotent_for_the_same_owner() -> None:
    allocator = pool("198.18.0.0/24", "198.18.0.10", "198.18.0.20")
    allocator.reserve(VM1, ip("198.18.0.12"))
    allocator.reserve(VM1, ip("198.18.0.12"))
    assert allocator.allocate(VM1, requested=ip("198.18.0.12")) == ip("198.18.0.12")
    assert (allocator.used, allocator.available, allocator.capacity) == (1, 10, 11)


def test_one_owner_may_hold_several_addresses_and_release_them_together() -> None:
    allocator = pool("198.18.0.0/24", "198.18.0.10", "198.18.0.20")
    allocator.reserve(VM1, ip("198.18.0.15"))
    assert allocator.allocate(VM1) == ip("198.18.0.10")
    assert allocator.allocate(VM2) == ip("198.18.0.11")
    assert allocator.allocate(VM1) == ip("198.18.0.12")
    held = tuple(ip(f"198.18.0.{host}") for host in (10, 12, 15))
    assert allocator.addresses_of(VM1) == held
    assert allocator.release_owner(VM1) == held
    assert list(allocator.allocations()) == [(ip("198.18.0.11"), VM2)]
    assert allocator.release_owner(VM1) == ()
    assert allocator.allocate(VM1) == ip("198.18.0.10")


def test_release_returns_the_holder_and_frees_the_lowest_address_again() -> None:
    allocator = pool("198.18.0.0/24", "198.18.0.10", "198.18.0.20")
    first = allocator.allocate(VM1)
    allocator.allocate(VM2)
    assert allocator.release(first) == VM1
    assert allocator.release(first) is None
    assert allocator.owner_of(first) is None
    assert allocator.allocate(VM2) == first


def test_reconfigure_keeps_what_fits_and_returns_what_does_not() -> None:
    allocator = pool("198.18.0.0/24", "198.18.0.10", "198.18.0.20", router="198.18.0.1")
    for owner in ("a", "b", "c", "d"):
        allocator.allocate(Owner(owner))  # .10 .11 .12 .13
    allocator.reserve(Owner("e"), ip("198.18.0.20"))
    evicted = allocator.reconfigure(
        spec(
            "198.18.0.0/24",
            "198.18.0.11",
            "198.18.0.19",
            router="198.18.0.13",
            exclude=("198.18.0.12",),
        )
    )
    assert evicted == (
        (ip("198.18.0.10"), Owner("a")),
        (ip("198.18.0.12"), Owner("c")),
        (ip("198.18.0.13"), Owner("d")),
        (ip("198.18.0.20"), Owner("e")),
    )
    assert list(allocator.allocations()) == [(ip("198.18.0.11"), Owner("b"))]
    assert allocator.addresses_of(Owner("a")) == ()
    assert allocator.allocate(Owner("f")) == ip("198.18.0.14")
    assert allocator.spec.start == ip("198.18.0.11")
    assert (allocator.used, allocator.capacity) == (2, 7)


def test_reconfigure_to_another_subnet_evicts_everything() -> None:
    allocator = pool("198.18.0.0/24", "198.18.0.10", "198.18.0.20")
    allocator.allocate(VM1)
    moved = spec("198.19.0.0/24", "198.19.0.10", "198.19.0.20")
    evicted = allocator.reconfigure(moved)
    assert evicted == ((ip("198.18.0.10"), VM1),)
    assert allocator.allocate(VM1) == ip("198.19.0.10")


def test_an_ipv6_address_is_never_held() -> None:
    allocator = pool("198.18.0.0/24", "198.18.0.10", "198.18.0.20")
    v6 = IPv6Address("::ffff:198.18.0.10")
    with pytest.raises(AddressOutOfRange):
        allocator.reserve(VM1, v6)  # type: ignore[arg-type]
    assert allocator.release(v6) is None  # type: ignore[arg-type]
    assert not allocator.is_assignable(v6)  # type: ignore[arg-type]
    assert allocator.used == 0


def test_an_empty_slash_8_pool_costs_far_less_than_one_entry_per_address() -> None:
    slash_8 = spec("10.0.0.0/8", "10.0.0.1", "10.255.255.254")
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        allocator = Allocator(slash_8)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after - before < 100_000
    assert allocator.available == 2**24 - 2
