"""PoolSpec: parsing an IPPool's text and refusing pools that cannot be served."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from typing import Any

import pytest

from kvip.ipam import ExclusionReason, InvalidPool, PoolSpec


def parse(**overrides: Any) -> PoolSpec:
    fields: dict[str, Any] = {
        "subnet": "172.16.0.0/16",
        "start": "172.16.0.10",
        "end": "172.16.255.250",
        "server_ip": "172.16.0.2",
        "router": "172.16.0.1",
        "exclude": ["172.16.0.67"],
    }
    fields.update(overrides)
    return PoolSpec.parse(**fields)


def invalid_message(**overrides: Any) -> str:
    with pytest.raises(InvalidPool) as caught:
        parse(**overrides)
    return str(caught.value)


def test_parse_reads_an_ippool_as_kubevirt_ip_helper_users_write_it() -> None:
    spec = parse()
    assert spec == PoolSpec(
        subnet=IPv4Network("172.16.0.0/16"),
        start=IPv4Address("172.16.0.10"),
        end=IPv4Address("172.16.255.250"),
        server_ip=IPv4Address("172.16.0.2"),
        router=IPv4Address("172.16.0.1"),
        exclude=(IPv4Address("172.16.0.67"),),
    )


def test_server_ip_router_and_exclude_are_optional() -> None:
    spec = PoolSpec.parse(subnet="10.0.0.0/24", start="10.0.0.1", end="10.0.0.9")
    assert (spec.server_ip, spec.router, spec.exclude) == (None, None, ())


def test_subnet_with_host_bits_is_taken_as_its_network() -> None:
    assert parse(subnet="172.16.0.1/16").subnet == IPv4Network("172.16.0.0/16")


def test_surrounding_whitespace_is_ignored() -> None:
    assert parse(start=" 172.16.0.10 ").start == IPv4Address("172.16.0.10")


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
        ({"start": "172.16.300.1"}, "pool start '172.16.300.1' is not an IPv4 address"),
        ({"end": "fe80::1"}, "pool end 'fe80::1' is not an IPv4 address"),
        ({"server_ip": ""}, "server IP '' is not an IPv4 address"),
        ({"router": "gateway"}, "router 'gateway' is not an IPv4 address"),
        ({"subnet": "172.16.0.0/33"}, "subnet '172.16.0.0/33' is not an IPv4 subnet"),
        ({"subnet": "172.16.0.0"}, None),
        ({"exclude": ["172.16.0.5", "nope"]}, "exclude entry 1 'nope' is not an IPv4 address"),
        ({"exclude": "172.16.0.5"}, "exclude must be a list of IPv4 addresses"),
        ({"start": 168820746}, "pool start must be an IPv4 address as text, not 168820746"),
        ({"subnet": None}, "subnet must be text such as 172.16.0.0/16, not None"),
    ],
)
def test_bad_text_is_refused_with_the_field_and_the_text(
    overrides: dict[str, Any], expected: str | None
) -> None:
    if expected is None:
        # A bare address is a /32 subnet: valid text, but the range is outside it.
        assert "outside the subnet 172.16.0.0/32" in invalid_message(**overrides)
    else:
        assert expected in invalid_message(**overrides)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"start": "172.16.0.20", "end": "172.16.0.10"},
            "pool start 172.16.0.20 is after pool end 172.16.0.10",
        ),
        ({"start": "172.15.255.250"}, "pool start 172.15.255.250 is outside the subnet"),
        ({"end": "172.17.0.1"}, "pool end 172.17.0.1 is outside the subnet 172.16.0.0/16"),
        ({"server_ip": "10.0.0.2"}, "server IP 10.0.0.2 is outside the subnet 172.16.0.0/16"),
        ({"router": "10.0.0.1"}, "router 10.0.0.1 is outside the subnet 172.16.0.0/16"),
        (
            {"start": "172.16.0.0"},
            "pool start 172.16.0.0 is the network address of 172.16.0.0/16; "
            "start at 172.16.0.1 or later",
        ),
        (
            {"end": "172.16.255.255"},
            "pool end 172.16.255.255 is the broadcast address of 172.16.0.0/16; "
            "end at 172.16.255.254 or earlier",
        ),
    ],
)
def test_pool_that_cannot_be_served_is_refused_with_a_clear_message(
    overrides: dict[str, Any], expected: str
) -> None:
    assert expected in invalid_message(**overrides)


def test_every_problem_is_reported_at_once() -> None:
    message = invalid_message(start="bad", router="10.0.0.1x", exclude=["x"])
    assert "pool start 'bad'" in message
    assert "router '10.0.0.1x'" in message
    assert "exclude entry 0 'x'" in message


def test_constructor_refuses_entries_that_are_not_addresses() -> None:
    with pytest.raises(InvalidPool, match=r"exclude entry 1 '10.0.0.3' is not an IPv4 address"):
        PoolSpec(
            subnet=IPv4Network("10.0.0.0/24"),
            start=IPv4Address("10.0.0.1"),
            end=IPv4Address("10.0.0.9"),
            exclude=(IPv4Address("10.0.0.2"), "10.0.0.3"),  # type: ignore[arg-type]
        )


def test_constructor_refuses_a_text_start() -> None:
    with pytest.raises(InvalidPool, match=r"pool start must be an IPv4 address, not '10\.0\.0\.1'"):
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
    spec = PoolSpec.parse(subnet="10.0.0.4/30", start="10.0.0.5", end="10.0.0.6")
    assert spec.boundary_reason(IPv4Address("10.0.0.4")) is ExclusionReason.NETWORK
    assert spec.boundary_reason(IPv4Address("10.0.0.7")) is ExclusionReason.BROADCAST
    assert spec.boundary_reason(IPv4Address("10.0.0.5")) is None


def test_exclusions_name_the_strongest_reason_and_skip_out_of_range_entries() -> None:
    spec = PoolSpec.parse(
        subnet="10.0.0.0/29",
        start="10.0.0.1",
        end="10.0.0.5",
        server_ip="10.0.0.2",
        router="10.0.0.3",
        exclude=["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.6", "192.0.2.1"],
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
