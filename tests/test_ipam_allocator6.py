"""Allocator6 examples: the IPv4 allocator's behaviours, for IPv6 ranges up to a /64."""

from __future__ import annotations

import tracemalloc
from ipaddress import IPv4Address, IPv6Address, IPv6Network

import pytest

from kvip.ipam import (
    AddressExcluded,
    AddressOutOfRange,
    AddressTaken,
    Allocator6,
    ExclusionReason,
    Owner,
    PoolExhausted,
    PoolSpec6,
)

VM1 = Owner("default/vm1 [52:54:00:aa:bb:01]")
VM2 = Owner("default/vm2 [52:54:00:aa:bb:02]")
# The documentation prefix (RFC 3849): these tests send no packets.
NET = "2001:db8:0:1::"
TOP = "2001:db8:0:1:ffff:ffff:ffff:ffff"
# 2**48 addresses above NET.
HIGH = "2001:db8:0:1:1::"


def ip(text: str) -> IPv6Address:
    return IPv6Address(text)


def spec(
    subnet: str,
    start: str,
    end: str,
    *,
    server_ip: str | None = None,
    router: str | None = None,
    exclude: tuple[str, ...] = (),
) -> PoolSpec6:
    return PoolSpec6(
        subnet=IPv6Network(subnet),
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
) -> Allocator6:
    return Allocator6(spec(subnet, start, end, server_ip=server_ip, router=router, exclude=exclude))


def drain(allocator: Allocator6) -> list[IPv6Address]:
    handed: list[IPv6Address] = []
    while True:
        try:
            handed.append(allocator.allocate(Owner(f"vm{len(handed)}")))
        except PoolExhausted:
            return handed


def test_slash_128_hands_out_its_single_address() -> None:
    allocator = pool(f"{NET}5/128", f"{NET}5", f"{NET}5")
    assert allocator.capacity == 1
    assert drain(allocator) == [ip(f"{NET}5")]


def test_slash_127_hands_out_both_addresses_per_rfc6164() -> None:
    allocator = pool(f"{NET}4/127", f"{NET}4", f"{NET}5")
    assert list(allocator.excluded()) == []
    assert drain(allocator) == [ip(f"{NET}4"), ip(f"{NET}5")]


def test_slash_126_hands_out_all_but_the_subnet_router_anycast_address() -> None:
    allocator = pool(f"{NET}4/126", f"{NET}5", f"{NET}7")
    assert drain(allocator) == [ip(f"{NET}5"), ip(f"{NET}6"), ip(f"{NET}7")]


def test_slash_64_starts_empty_and_hands_out_from_the_bottom() -> None:
    allocator = pool(f"{NET}/64", f"{NET}1", TOP, router=f"{NET}1", server_ip=f"{NET}2")
    assert allocator.capacity == 2**64 - 3
    assert (allocator.used, allocator.available) == (0, 2**64 - 3)
    allocator.reserve(VM1, ip(TOP))
    assert allocator.allocate(VM2) == ip(f"{NET}3")
    assert allocator.addresses_of(VM1) == (ip(TOP),)
    assert list(allocator.excluded()) == [ip(f"{NET}1"), ip(f"{NET}2")]
    assert allocator.used + allocator.available == allocator.capacity


def test_lowest_free_across_a_slash_64_comes_back_after_release() -> None:
    allocator = pool(f"{NET}/64", f"{NET}1", TOP, exclude=(f"{NET}41",))
    handed = [allocator.allocate(Owner(f"vm{n}")) for n in range(200)]
    assert handed[:3] == [ip(f"{NET}1"), ip(f"{NET}2"), ip(f"{NET}3")]
    assert ip(f"{NET}41") not in handed
    assert handed[-1] == ip(f"{NET}c9")
    # Far above what was handed out, a reservation leaves the bottom alone.
    allocator.reserve(VM1, ip(HIGH))
    assert allocator.release(ip(f"{NET}80")) == Owner("vm126")
    assert allocator.release(ip(f"{NET}7")) == Owner("vm6")
    assert allocator.allocate(VM2) == ip(f"{NET}7")
    assert allocator.allocate(VM2) == ip(f"{NET}80")
    assert allocator.allocate(VM2) == ip(f"{NET}ca")
    assert allocator.capacity == 2**64 - 1 - 1
    assert (allocator.used, allocator.available) == (202, allocator.capacity - 202)


def test_start_equal_to_end_is_a_pool_of_one() -> None:
    allocator = pool(f"{NET}/64", f"{NET}7", f"{NET}7")
    assert allocator.allocate(VM1) == ip(f"{NET}7")
    with pytest.raises(PoolExhausted):
        allocator.allocate(VM2)


def test_excludes_outside_the_range_are_harmless() -> None:
    allocator = pool(
        f"{NET}/64", f"{NET}10", f"{NET}12", exclude=(f"{NET}f", f"{NET}13", "2001:db8:9::1")
    )
    assert allocator.capacity == 3
    assert list(allocator.excluded()) == []
    assert drain(allocator) == [ip(f"{NET}10"), ip(f"{NET}11"), ip(f"{NET}12")]


def test_everything_excluded_means_capacity_zero_and_immediate_exhaustion() -> None:
    allocator = pool(
        f"{NET}/64",
        f"{NET}1",
        f"{NET}3",
        server_ip=f"{NET}2",
        router=f"{NET}1",
        exclude=(f"{NET}3",),
    )
    assert (allocator.capacity, allocator.available, allocator.used) == (0, 0, 0)
    with pytest.raises(PoolExhausted, match="all 0 assignable addresses are in use"):
        allocator.allocate(VM1)


def test_server_ip_and_router_are_never_handed_out() -> None:
    allocator = pool(f"{NET}/120", f"{NET}1", f"{NET}6", server_ip=f"{NET}3", router=f"{NET}1")
    assert drain(allocator) == [ip(f"{NET}{host}") for host in (2, 4, 5, 6)]
    assert list(allocator.excluded()) == [ip(f"{NET}1"), ip(f"{NET}3")]


def test_a_link_local_router_and_server_exclude_nothing() -> None:
    allocator = pool(f"{NET}/64", f"{NET}1", f"{NET}2", server_ip="fe80::2", router="fe80::1")
    assert list(allocator.excluded()) == []
    assert drain(allocator) == [ip(f"{NET}1"), ip(f"{NET}2")]


@pytest.mark.parametrize(
    ("requested", "reason", "words"),
    [
        (f"{NET}1", ExclusionReason.ROUTER, "it is the pool's router"),
        (f"{NET}2", ExclusionReason.SERVER_IP, "server IP"),
        (f"{NET}50", ExclusionReason.SPEC, "exclude list"),
    ],
)
def test_reserving_an_excluded_address_says_why(
    requested: str, reason: ExclusionReason, words: str
) -> None:
    allocator = pool(
        f"{NET}/64", f"{NET}1", TOP, server_ip=f"{NET}2", router=f"{NET}1", exclude=(f"{NET}50",)
    )
    with pytest.raises(AddressExcluded, match=words) as caught:
        allocator.reserve(VM1, ip(requested))
    assert caught.value.reason is reason
    assert allocator.exclusion_reason(ip(requested)) is reason
    assert not allocator.is_assignable(ip(requested))
    with pytest.raises(AddressExcluded):
        allocator.allocate(VM1, requested=ip(requested))
    assert allocator.used == 0


def test_requesting_the_subnet_router_anycast_address_says_so() -> None:
    allocator = pool(f"{NET}/64", f"{NET}1", TOP)
    with pytest.raises(AddressExcluded, match=r"Subnet-Router anycast address") as caught:
        allocator.allocate(VM1, requested=ip(NET))
    assert caught.value.reason is ExclusionReason.SUBNET_ROUTER_ANYCAST
    assert str(caught.value) == (
        f"{NET} cannot be assigned: "
        "it is the subnet's Subnet-Router anycast address (RFC 4291 2.6.1)"
    )
    assert not allocator.is_assignable(ip(NET))
    assert allocator.used == 0


def test_rfc6164_subnet_start_outside_the_range_is_just_out_of_range() -> None:
    allocator = pool(f"{NET}4/127", f"{NET}5", f"{NET}5")
    with pytest.raises(AddressOutOfRange):
        allocator.reserve(VM1, ip(f"{NET}4"))


def test_exhaustion_message_names_the_range_and_the_capacity() -> None:
    allocator = pool(f"{NET}/64", f"{NET}10", f"{NET}12", exclude=(f"{NET}11",))
    drain(allocator)
    with pytest.raises(PoolExhausted) as caught:
        allocator.allocate(VM1)
    assert str(caught.value) == (
        f"pool {NET}10-{NET}12 is exhausted: all 2 assignable addresses are in use"
    )
    assert caught.value.capacity == 2


def test_address_taken_names_the_holder_and_changes_nothing() -> None:
    allocator = pool(f"{NET}/64", f"{NET}10", TOP)
    allocator.reserve(VM1, ip(f"{NET}15"))
    with pytest.raises(AddressTaken) as caught:
        allocator.allocate(VM2, requested=ip(f"{NET}15"))
    assert caught.value.holder == VM1
    assert str(caught.value) == f"{NET}15 is already held by {VM1}"
    assert allocator.owner_of(ip(f"{NET}15")) == VM1
    assert allocator.addresses_of(VM2) == ()
    assert allocator.used == 1


def test_out_of_range_names_the_range() -> None:
    allocator = pool(f"{NET}/64", f"{NET}10", f"{NET}20")
    expected = rf"{NET}21 is outside the pool range {NET}10-{NET}20"
    with pytest.raises(AddressOutOfRange, match=expected):
        allocator.reserve(VM1, ip(f"{NET}21"))
    with pytest.raises(AddressOutOfRange):
        allocator.allocate(VM1, requested=ip("2001:db8:0:2::10"))


def test_reserve_and_requested_allocate_are_idempotent_for_the_same_owner() -> None:
    allocator = pool(f"{NET}/64", f"{NET}10", f"{NET}1a")
    allocator.reserve(VM1, ip(f"{NET}12"))
    allocator.reserve(VM1, ip(f"{NET}12"))
    assert allocator.allocate(VM1, requested=ip(f"{NET}12")) == ip(f"{NET}12")
    assert (allocator.used, allocator.available, allocator.capacity) == (1, 10, 11)


def test_one_owner_may_hold_several_addresses_and_release_them_together() -> None:
    allocator = pool(f"{NET}/64", f"{NET}10", TOP)
    allocator.reserve(VM1, ip(TOP))
    assert allocator.allocate(VM1) == ip(f"{NET}10")
    assert allocator.allocate(VM2) == ip(f"{NET}11")
    assert allocator.allocate(VM1) == ip(f"{NET}12")
    held = (ip(f"{NET}10"), ip(f"{NET}12"), ip(TOP))
    assert allocator.addresses_of(VM1) == held
    assert allocator.release_owner(VM1) == held
    assert list(allocator.allocations()) == [(ip(f"{NET}11"), VM2)]
    assert allocator.release_owner(VM1) == ()
    assert allocator.allocate(VM1) == ip(f"{NET}10")


def test_release_returns_the_holder_and_frees_the_lowest_address_again() -> None:
    allocator = pool(f"{NET}/64", f"{NET}10", TOP)
    first = allocator.allocate(VM1)
    allocator.allocate(VM2)
    assert allocator.release(first) == VM1
    assert allocator.release(first) is None
    assert allocator.owner_of(first) is None
    assert allocator.allocate(VM2) == first


def test_reconfigure_keeps_what_fits_and_returns_what_does_not() -> None:
    allocator = pool(f"{NET}/64", f"{NET}10", TOP, router=f"{NET}1")
    for owner in ("a", "b", "c", "d"):
        allocator.allocate(Owner(owner))  # ::10 ::11 ::12 ::13
    allocator.reserve(Owner("e"), ip(TOP))
    evicted = allocator.reconfigure(
        spec(f"{NET}/64", f"{NET}11", HIGH, router=f"{NET}13", exclude=(f"{NET}12",))
    )
    assert evicted == (
        (ip(f"{NET}10"), Owner("a")),
        (ip(f"{NET}12"), Owner("c")),
        (ip(f"{NET}13"), Owner("d")),
        (ip(TOP), Owner("e")),
    )
    assert list(allocator.allocations()) == [(ip(f"{NET}11"), Owner("b"))]
    assert allocator.allocate(Owner("f")) == ip(f"{NET}14")
    assert allocator.spec.start == ip(f"{NET}11")
    assert (allocator.used, allocator.capacity) == (2, 2**48 - 16 - 2)


def test_reconfigure_to_another_subnet_evicts_everything() -> None:
    allocator = pool(f"{NET}/64", f"{NET}10", f"{NET}20")
    allocator.allocate(VM1)
    evicted = allocator.reconfigure(
        spec("2001:db8:0:2::/64", "2001:db8:0:2::10", "2001:db8:0:2::20")
    )
    assert evicted == ((ip(f"{NET}10"), VM1),)
    assert allocator.allocate(VM1) == ip("2001:db8:0:2::10")


def test_an_ipv4_address_is_never_held() -> None:
    allocator = pool(f"{NET}/64", f"{NET}1", TOP)
    v4 = IPv4Address("198.18.0.10")
    with pytest.raises(AddressOutOfRange):
        allocator.reserve(VM1, v4)  # type: ignore[arg-type]
    assert allocator.release(v4) is None  # type: ignore[arg-type]
    assert not allocator.is_assignable(v4)  # type: ignore[arg-type]
    assert allocator.used == 0


def test_an_empty_slash_64_pool_costs_far_less_than_one_entry_per_address() -> None:
    slash_64 = spec(f"{NET}/64", f"{NET}1", TOP, server_ip=f"{NET}2", router=f"{NET}1")
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        allocator = Allocator6(slash_64)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after - before < 100_000
    assert allocator.available == 2**64 - 3
