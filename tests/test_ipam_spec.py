"""PoolSpec: the allocator's input refuses ranges that cannot be served.

Reading an IPPool's text is the one parser's job: tests/test_ippool_parser.py.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from typing import Any

import pytest

from kvip.ipam import ExclusionReason, InvalidPool, PoolSpec

ip = IPv4Address


def spec_with(**overrides: Any) -> PoolSpec:
    fields: dict[str, Any] = {
        "subnet": IPv4Network("172.16.0.0/16"),
        "start": ip("172.16.0.10"),
        "end": ip("172.16.255.250"),
        "server_ip": ip("172.16.0.2"),
        "router": ip("172.16.0.1"),
        "exclude": (ip("172.16.0.67"),),
    }
    fields.update(overrides)
    return PoolSpec(**fields)


def invalid_message(**overrides: Any) -> str:
    with pytest.raises(InvalidPool) as caught:
        spec_with(**overrides)
    return str(caught.value)


def test_server_ip_router_and_exclude_are_optional() -> None:
    spec = PoolSpec(subnet=IPv4Network("10.0.0.0/24"), start=ip("10.0.0.1"), end=ip("10.0.0.9"))
    assert (spec.server_ip, spec.router, spec.exclude) == (None, None, ())


def test_spec_is_hashable_and_immutable_even_when_built_from_a_list() -> None:
    spec = PoolSpec(
        subnet=IPv4Network("10.0.0.0/24"),
        start=IPv4Address("10.0.0.1"),
        end=IPv4Address("10.0.0.9"),
        exclude=[IPv4Address("10.0.0.3")],  # type: ignore[arg-type]
    )
    assert spec.exclude == (IPv4Address("10.0.0.3"),)
    assert hash(spec) == hash(spec)
    with pytest.raises(AttributeError):
        spec.start = IPv4Address("10.0.0.2")  # type: ignore[misc]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"start": ip("172.16.0.20"), "end": ip("172.16.0.10")},
            "spec.ipv4config.pool.start 172.16.0.20 is after spec.ipv4config.pool.end 172.16.0.10",
        ),
        (
            {"start": ip("172.15.255.250")},
            "spec.ipv4config.pool.start 172.15.255.250 is outside the subnet",
        ),
        (
            {"end": ip("172.17.0.1")},
            "spec.ipv4config.pool.end 172.17.0.1 is outside the subnet 172.16.0.0/16",
        ),
        (
            {"server_ip": ip("10.0.0.2")},
            "spec.ipv4config.serverip 10.0.0.2 is outside the subnet 172.16.0.0/16",
        ),
        (
            {"router": ip("10.0.0.1")},
            "spec.ipv4config.router 10.0.0.1 is outside the subnet 172.16.0.0/16",
        ),
        (
            {"start": ip("172.16.0.0")},
            "spec.ipv4config.pool.start 172.16.0.0 is the network address of 172.16.0.0/16; "
            "start at 172.16.0.1 or later",
        ),
        (
            {"end": ip("172.16.255.255")},
            "spec.ipv4config.pool.end 172.16.255.255 is the broadcast address of 172.16.0.0/16; "
            "end at 172.16.255.254 or earlier",
        ),
    ],
)
def test_pool_that_cannot_be_served_is_refused_with_a_clear_message(
    overrides: dict[str, Any], expected: str
) -> None:
    assert expected in invalid_message(**overrides)


def test_every_range_problem_is_reported_at_once() -> None:
    message = invalid_message(start=ip("10.0.0.1"), router=ip("10.0.0.2"), server_ip=ip("10.0.0.3"))
    assert "spec.ipv4config.pool.start 10.0.0.1" in message
    assert "spec.ipv4config.router 10.0.0.2" in message
    assert "spec.ipv4config.serverip 10.0.0.3" in message


def test_constructor_refuses_entries_that_are_not_addresses() -> None:
    with pytest.raises(
        InvalidPool, match=r"spec\.ipv4config\.pool\.exclude\[1\] '10.0.0.3' is not an IPv4 address"
    ):
        PoolSpec(
            subnet=IPv4Network("10.0.0.0/24"),
            start=IPv4Address("10.0.0.1"),
            end=IPv4Address("10.0.0.9"),
            exclude=(IPv4Address("10.0.0.2"), "10.0.0.3"),  # type: ignore[arg-type]
        )


def test_constructor_refuses_a_text_start() -> None:
    with pytest.raises(
        InvalidPool, match=r"pool\.start must be an IPv4 address, not '10\.0\.0\.1'"
    ):
        PoolSpec(
            subnet=IPv4Network("10.0.0.0/24"),
            start="10.0.0.1",  # type: ignore[arg-type]
            end=IPv4Address("10.0.0.9"),
        )


@pytest.mark.parametrize("prefix", [31, 32])
def test_rfc3021_subnets_may_use_every_address(prefix: int) -> None:
    network = IPv4Network(f"10.0.0.0/{prefix}")
    spec = PoolSpec(subnet=network, start=network.network_address, end=network.broadcast_address)
    assert not spec.has_broadcast
    assert spec.exclusions() == {}
    assert spec.boundary_reason(network.network_address) is None
    assert spec.boundary_reason(network.broadcast_address) is None


def test_boundary_reason_names_network_and_broadcast_up_to_slash_30() -> None:
    spec = PoolSpec(subnet=IPv4Network("10.0.0.4/30"), start=ip("10.0.0.5"), end=ip("10.0.0.6"))
    assert spec.boundary_reason(IPv4Address("10.0.0.4")) is ExclusionReason.NETWORK
    assert spec.boundary_reason(IPv4Address("10.0.0.7")) is ExclusionReason.BROADCAST
    assert spec.boundary_reason(IPv4Address("10.0.0.5")) is None


def test_exclusions_name_the_strongest_reason_and_skip_out_of_range_entries() -> None:
    spec = PoolSpec(
        subnet=IPv4Network("10.0.0.0/29"),
        start=ip("10.0.0.1"),
        end=ip("10.0.0.5"),
        server_ip=ip("10.0.0.2"),
        router=ip("10.0.0.3"),
        exclude=(*(ip(f"10.0.0.{n}") for n in (2, 3, 4, 6)), ip("192.0.2.1")),
    )
    assert spec.exclusions() == {
        IPv4Address("10.0.0.2"): ExclusionReason.SERVER_IP,
        IPv4Address("10.0.0.3"): ExclusionReason.ROUTER,
        IPv4Address("10.0.0.4"): ExclusionReason.SPEC,
    }


@pytest.mark.parametrize("exclude", [None, "10.0.0.3", 7])
def test_constructor_refuses_an_exclude_that_is_not_a_list(exclude: object) -> None:
    with pytest.raises(InvalidPool, match="exclude must be a list of IPv4 addresses"):
        PoolSpec(
            subnet=IPv4Network("10.0.0.0/24"),
            start=IPv4Address("10.0.0.1"),
            end=IPv4Address("10.0.0.9"),
            exclude=exclude,  # type: ignore[arg-type]
        )
