"""PoolSpec6: the IPv6 range refuses what cannot be served, named by ipv6config field."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any

import pytest

from kvip.ipam import ExclusionReason, InvalidPool, PoolSpec6

ip = IPv6Address


def spec_with(**overrides: Any) -> PoolSpec6:
    fields: dict[str, Any] = {
        "subnet": IPv6Network("2001:db8:1::/64"),
        "start": ip("2001:db8:1::10"),
        "end": ip("2001:db8:1::ffff"),
        "server_ip": ip("2001:db8:1::2"),
        "router": ip("2001:db8:1::1"),
        "exclude": (ip("2001:db8:1::67"),),
    }
    fields.update(overrides)
    return PoolSpec6(**fields)


def invalid_message(**overrides: Any) -> str:
    with pytest.raises(InvalidPool) as caught:
        spec_with(**overrides)
    return str(caught.value)


def test_server_ip_router_and_exclude_are_optional() -> None:
    spec = PoolSpec6(
        subnet=IPv6Network("2001:db8::/64"), start=ip("2001:db8::1"), end=ip("2001:db8::9")
    )
    assert (spec.server_ip, spec.router, spec.exclude) == (None, None, ())


def test_spec_is_hashable_and_immutable_even_when_built_from_a_list() -> None:
    spec = spec_with(exclude=[ip("2001:db8:1::3")])
    assert spec.exclude == (ip("2001:db8:1::3"),)
    assert hash(spec) == hash(spec_with(exclude=(ip("2001:db8:1::3"),)))
    with pytest.raises(AttributeError):
        spec.start = ip("2001:db8:1::11")  # type: ignore[misc]


def test_the_widest_range_of_a_slash_64_has_two_to_the_64_minus_one_addresses() -> None:
    # All but the Subnet-Router anycast address; the size is exact, not capped.
    spec = spec_with(start=ip("2001:db8:1::1"), end=ip("2001:db8:1:0:ffff:ffff:ffff:ffff"))
    assert spec.size == 2**64 - 1
    assert spec_with().size == 0xFFFF - 0x10 + 1


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"subnet": IPv6Network("2001:db8::/63")},
            "spec.ipv6config.subnet 2001:db8::/63 is larger than a /64",
        ),
        (
            {"start": ip("2001:db8:1::20"), "end": ip("2001:db8:1::10")},
            "spec.ipv6config.pool.start 2001:db8:1::20 is after "
            "spec.ipv6config.pool.end 2001:db8:1::10",
        ),
        (
            {"start": ip("2001:db8:0:ffff::1")},
            "spec.ipv6config.pool.start 2001:db8:0:ffff::1 is outside the subnet",
        ),
        (
            {"end": ip("2001:db8:2::1")},
            "spec.ipv6config.pool.end 2001:db8:2::1 is outside the subnet 2001:db8:1::/64",
        ),
        (
            {"server_ip": ip("2001:db8:2::2")},
            "spec.ipv6config.serverip 2001:db8:2::2 is outside the subnet 2001:db8:1::/64",
        ),
        (
            {"router": ip("2001:db8:2::1")},
            "spec.ipv6config.router 2001:db8:2::1 is outside the subnet 2001:db8:1::/64",
        ),
        (
            {"start": ip("2001:db8:1::")},
            "spec.ipv6config.pool.start 2001:db8:1:: is the Subnet-Router anycast address "
            "of 2001:db8:1::/64; start at 2001:db8:1::1 or later",
        ),
    ],
)
def test_pool_that_cannot_be_served_is_refused_with_a_clear_message(
    overrides: dict[str, Any], expected: str
) -> None:
    assert expected in invalid_message(**overrides)


@pytest.mark.parametrize(
    ("subnet", "block"),
    [
        ("::/64", "::/8"),
        ("::ffff:0:0/96", "::/8"),
        ("fe80::/64", "fe80::/10"),
        ("ff02::/64", "ff00::/8"),
    ],
)
def test_subnets_that_hold_no_addresses_for_vms_are_refused(subnet: str, block: str) -> None:
    network = IPv6Network(subnet)
    message = invalid_message(
        subnet=network,
        start=network.network_address + 1,
        end=network.network_address + 9,
        server_ip=None,
        router=None,
        exclude=(),
    )
    assert (
        message
        == f"spec.ipv6config.subnet {subnet} is inside {block}, which holds no addresses for VMs"
    )


def test_every_range_problem_is_reported_at_once() -> None:
    message = invalid_message(
        start=ip("2001:db8:9::1"), router=ip("2001:db8:9::2"), server_ip=ip("2001:db8:9::3")
    )
    assert "spec.ipv6config.pool.start 2001:db8:9::1" in message
    assert "spec.ipv6config.router 2001:db8:9::2" in message
    assert "spec.ipv6config.serverip 2001:db8:9::3" in message


def test_server_ip_and_router_may_be_link_local() -> None:
    spec = spec_with(server_ip=ip("fe80::2"), router=ip("fe80::1"))
    assert spec.exclusions() == {ip("2001:db8:1::67"): ExclusionReason.SPEC}


def test_constructor_refuses_values_of_the_other_family() -> None:
    message = invalid_message(subnet=IPv4Network("198.18.0.0/24"), start=IPv4Address("198.18.0.1"))
    assert (
        message
        == "spec.ipv6config.subnet must be an IPv6 network, not IPv4Network('198.18.0.0/24')"
    )
    message = invalid_message(
        router=IPv4Address("198.18.0.1"), exclude=(ip("2001:db8:1::67"), IPv4Address("198.18.0.3"))
    )
    assert (
        "spec.ipv6config.router must be an IPv6 address, not IPv4Address('198.18.0.1')" in message
    )
    assert (
        "spec.ipv6config.pool.exclude[1] IPv4Address('198.18.0.3') is not an IPv6 address"
        in message
    )


@pytest.mark.parametrize("exclude", [None, "2001:db8:1::3", 7])
def test_constructor_refuses_an_exclude_that_is_not_a_list(exclude: object) -> None:
    with pytest.raises(InvalidPool, match="exclude must be a list of IPv6 addresses"):
        spec_with(exclude=exclude)


@pytest.mark.parametrize("prefix", [127, 128])
def test_rfc6164_subnets_may_use_every_address(prefix: int) -> None:
    network = IPv6Network(f"2001:db8:1::/{prefix}")
    spec = PoolSpec6(subnet=network, start=network.network_address, end=network[-1])
    assert not spec.has_subnet_router_anycast
    assert spec.exclusions() == {}
    assert spec.boundary_reason(network.network_address) is None


def test_boundary_reason_names_the_subnet_router_anycast_address_up_to_slash_126() -> None:
    spec = PoolSpec6(
        subnet=IPv6Network("2001:db8:1::4/126"), start=ip("2001:db8:1::5"), end=ip("2001:db8:1::7")
    )
    assert spec.has_subnet_router_anycast
    assert spec.boundary_reason(ip("2001:db8:1::4")) is ExclusionReason.SUBNET_ROUTER_ANYCAST
    assert spec.boundary_reason(ip("2001:db8:1::7")) is None
    assert spec.boundary_reason(IPv4Address("198.18.0.4")) is None


def test_exclusions_name_the_strongest_reason_and_skip_out_of_range_entries() -> None:
    spec = PoolSpec6(
        subnet=IPv6Network("2001:db8:1::/64"),
        start=ip("2001:db8:1::1"),
        end=ip("2001:db8:1::5"),
        server_ip=ip("2001:db8:1::2"),
        router=ip("2001:db8:1::3"),
        exclude=(*(ip(f"2001:db8:1::{n}") for n in (2, 3, 4, 6)), ip("2001:db8:9::1")),
    )
    assert spec.exclusions() == {
        ip("2001:db8:1::2"): ExclusionReason.SERVER_IP,
        ip("2001:db8:1::3"): ExclusionReason.ROUTER,
        ip("2001:db8:1::4"): ExclusionReason.SPEC,
    }
