"""`parse_ippool` on `spec.ipv6config`, the IPv6 half of a dual-stack pool:
what it reads, how it refuses, each problem named by its field, and that its
patterns and ranges are the CRD's (the real API server's verdicts are
test_ippool_schema_agreement's)."""

from __future__ import annotations

import re
from ipaddress import AddressValueError, IPv6Address, IPv6Network
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvip.ipam import InvalidPool
from kvip.serving import _ippool_fields as rules
from kvip.serving import parse_ippool
from kvip.serving._pool_config import (
    DEFAULT_PREFERRED_LIFETIME,
    DEFAULT_VALID_LIFETIME,
    LIFETIME_RANGE,
)
from tests.lab.objects import CRD_EXAMPLE_POOL, ippool, with_value
from tests.test_ippool_parser import crd_schema

V6 = "spec.ipv6config"
ip6 = IPv6Address


def dual_stack(**v6: Any) -> dict[str, Any]:
    body = ippool("pool1", **CRD_EXAMPLE_POOL)
    body["spec"]["ipv6config"] = {
        "subnet": "2001:db8:1::/64",
        "pool": {"start": "2001:db8:1::10", "end": "2001:db8:1::ffff"},
        **v6,
    }
    return body


def invalid_message(body: dict[str, Any]) -> str:
    with pytest.raises(InvalidPool) as caught:
        parse_ippool(body)
    return str(caught.value)


def test_a_dual_stack_pool_reads_both_halves() -> None:
    body = dual_stack(
        serverip="fe80::1",
        router="2001:db8:1::1",
        dns=["2001:db8::53", "2001:DB8::54"],
        domainsearch=["example.com.", "lab.example"],
        ntp=["2001:db8::123", "ntp.example.com."],
        preferredlifetime=1800,
        validlifetime=86400,
        routeradvertisement=True,
    )
    body["spec"]["ipv6config"]["pool"]["exclude"] = ["2001:db8:1::20"]
    config = parse_ippool(body)
    assert config.spec is not None
    assert config.spec == parse_ippool(ippool("pool1", **CRD_EXAMPLE_POOL)).spec
    assert config.v6 is not None
    spec, options = config.v6.spec, config.v6.options
    assert (spec.subnet, spec.start, spec.end) == (
        IPv6Network("2001:db8:1::/64"),
        ip6("2001:db8:1::10"),
        ip6("2001:db8:1::ffff"),
    )
    assert (spec.server_ip, spec.router, spec.exclude) == (
        ip6("fe80::1"),
        ip6("2001:db8:1::1"),
        (ip6("2001:db8:1::20"),),
    )
    assert options.subnet == spec.subnet
    assert options.dns == (ip6("2001:db8::53"), ip6("2001:db8::54"))
    assert options.domain_search == ("example.com", "lab.example")
    assert (options.ntp, options.ntp_names) == ((ip6("2001:db8::123"),), ("ntp.example.com",))
    assert (options.preferred_lifetime, options.valid_lifetime) == (1800, 86400)
    assert config.v6.router_advertisement is True


def test_an_ipv4_only_pool_has_no_v6_and_the_defaults_apply_to_a_bare_ipv6config() -> None:
    assert parse_ippool(ippool("pool1", **CRD_EXAMPLE_POOL)).v6 is None
    config = parse_ippool(dual_stack()).v6
    assert config is not None
    assert (config.spec.server_ip, config.spec.router) == (None, None)
    assert (config.options.preferred_lifetime, config.options.valid_lifetime) == (
        DEFAULT_PREFERRED_LIFETIME,
        DEFAULT_VALID_LIFETIME,
    )
    assert config.router_advertisement is False
    assert (config.options.dns, config.options.ntp, config.options.ntp_names) == ((), (), ())


def test_an_ipv6_only_pool_has_no_ipv4_half() -> None:
    config = parse_ippool(with_value(dual_stack(dns=["2001:db8::53"]), "spec.ipv4config", None))
    assert (config.spec, config.options, config.ntp_names) == (None, None, ())
    assert config.v6 is not None and config.v6.spec.subnet == IPv6Network("2001:db8:1::/64")
    assert config.v6.options.dns == (ip6("2001:db8::53"),)
    dual = parse_ippool(dual_stack())
    assert dual.spec is not None and dual.v6 is not None
    assert parse_ippool(ippool("pool1", **CRD_EXAMPLE_POOL)).v6 is None


def test_a_pool_with_neither_half_is_refused_naming_both() -> None:
    message = invalid_message(
        with_value(ippool("pool1", **CRD_EXAMPLE_POOL), "spec.ipv4config", None)
    )
    assert message.startswith("spec.ipv4config is missing, and spec.ipv6config too")
    # A bad ipv6config of an IPv6-only pool is named, not taken for a missing half.
    body = with_value(dual_stack(), "spec.ipv4config", None)
    body = with_value(body, "spec.ipv6config.pool.start", "2001:db8:2::1")
    assert "spec.ipv6config" in invalid_message(body)
    assert "spec.ipv4config" not in invalid_message(body)


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (f"{V6}.subnet", None, f"{V6}.subnet is missing"),
        (f"{V6}.subnet", "2001:db8::/48", f"{V6}.subnet '2001:db8::/48' is not an IPv6 network of"),
        (f"{V6}.subnet", "2001:db8::", f"{V6}.subnet '2001:db8::' is not an IPv6 network"),
        (f"{V6}.subnet", "2001:db8::/064", f"{V6}.subnet '2001:db8::/064' is not"),
        (f"{V6}.subnet", "198.18.0.0/24", f"{V6}.subnet '198.18.0.0/24' is not an IPv6"),
        (f"{V6}.subnet", "fe80::/64", f"{V6}.subnet fe80::/64 is inside fe80::/10"),
        (f"{V6}.serverip", "fe80::1%eth1", f"{V6}.serverip 'fe80::1%eth1' is not an IPv6"),
        (f"{V6}.serverip", "198.18.0.2", f"{V6}.serverip '198.18.0.2' is not an IPv6 address"),
        (f"{V6}.serverip", "2001:db8:2::1", f"{V6}.serverip 2001:db8:2::1 is outside the subnet"),
        (f"{V6}.router", "::ffff:1.2.3.4", f"{V6}.router '::ffff:1.2.3.4' is not an IPv6"),
        (f"{V6}.router", 1, f"{V6}.router must be an IPv6 address as text, not 1"),
        (f"{V6}.pool", None, f"{V6}.pool is missing"),
        (f"{V6}.pool", [], f"{V6}.pool must be an object, not []"),
        (f"{V6}.pool.start", None, f"{V6}.pool.start is missing"),
        (f"{V6}.pool.start", "2001:db8:1::1::2", f"{V6}.pool.start '2001:db8:1::1::2' is not"),
        (f"{V6}.pool.start", "2001:db8:1::", f"{V6}.pool.start 2001:db8:1:: is the Subnet-Router"),
        (f"{V6}.pool.end", "2001:db8:1::1", f"{V6}.pool.start 2001:db8:1::10 is after {V6}.pool"),
        (f"{V6}.pool.end", "2001:db8:1:0:0:0:0:00001", f"{V6}.pool.end '2001:db8:1:0:0:0:0:0000"),
        (f"{V6}.pool.exclude", ["2001:db8:1::5", "x"], f"{V6}.pool.exclude[1] 'x' is not an IPv6"),
        (f"{V6}.pool.exclude", "2001:db8:1::5", f"{V6}.pool.exclude must be a list"),
        (f"{V6}.dns", ["8.8.8.8"], f"{V6}.dns[0] '8.8.8.8' is not an IPv6 address"),
        (f"{V6}.domainsearch", ["exa mple.com"], f"{V6}.domainsearch[0] 'exa mple.com' is not"),
        (f"{V6}.ntp", ["192.0.2.123"], f"{V6}.ntp[0] '192.0.2.123' is not an IPv6 address or a"),
        (f"{V6}.ntp", ["2001:db8::1::2"], f"{V6}.ntp[0] '2001:db8::1::2' is not an IPv6 address"),
        (f"{V6}.preferredlifetime", 0, f"{V6}.preferredlifetime 0 is outside 1..4294967295"),
        (f"{V6}.validlifetime", 2**32, f"{V6}.validlifetime 4294967296 is outside 1..4294967295"),
        (f"{V6}.validlifetime", "7200", f"{V6}.validlifetime must be a whole number, not '7200'"),
        (f"{V6}.routeradvertisement", "yes", f"{V6}.routeradvertisement must be true or false"),
        ("spec.ipv6config", "x", "spec.ipv6config must be an object, not 'x'"),
    ],
)
def test_bad_ipv6_fields_are_refused_with_the_field_and_the_text(
    path: str, value: Any, expected: str
) -> None:
    assert expected in invalid_message(with_value(dual_stack(), path, value))


def test_a_preferred_lifetime_over_the_valid_one_is_refused() -> None:
    body = dual_stack(preferredlifetime=7201, validlifetime=7200)
    assert invalid_message(body) == (
        f"{V6}.preferredlifetime 7201 is greater than {V6}.validlifetime 7200"
    )
    # Against the default valid lifetime, the message says it is the default.
    message = invalid_message(dual_stack(preferredlifetime=DEFAULT_VALID_LIFETIME + 1))
    assert message.endswith(f"{V6}.validlifetime {DEFAULT_VALID_LIFETIME} (its default)")
    equal = parse_ippool(dual_stack(preferredlifetime=300, validlifetime=300)).v6
    assert equal is not None and equal.options.preferred_lifetime == 300


def test_every_problem_of_both_halves_is_reported_at_once() -> None:
    body = dual_stack(dns=["nope"], preferredlifetime=10, validlifetime=5, ntp=[" x"])
    body = with_value(body, f"{V6}.pool.start", "2001:db8:9::1")
    body = with_value(body, "spec.ipv4config.leasetime", 0)
    message = invalid_message(body)
    for expected in [
        "spec.ipv4config.leasetime 0",
        f"{V6}.dns[0] 'nope'",
        f"{V6}.ntp[0] ' x'",
        f"{V6}.preferredlifetime 10 is greater",
    ]:
        assert expected in message
    # The range's rules across fields wait for its fields to read.
    del body["spec"]["ipv6config"]["dns"], body["spec"]["ipv6config"]["ntp"]
    assert f"{V6}.pool.start 2001:db8:9::1 is outside the subnet" in invalid_message(body)


@given(st.integers(0, 2**128 - 1), st.sampled_from(["compressed", "exploded"]), st.booleans())
def test_the_ipv6_pattern_accepts_every_address_in_its_usual_forms(
    value: int, form: str, upper: bool
) -> None:
    text = getattr(IPv6Address(value), form)
    text = text.upper() if upper else text
    assert re.fullmatch(rules.IPV6, text) is not None


@given(st.text(alphabet="0123456789abcdefABCDEF:", max_size=45))
def test_what_the_ipv6_pattern_accepts_python_reads_as_the_same_address(text: str) -> None:
    try:
        address: IPv6Address | None = IPv6Address(text)
    except AddressValueError:
        address = None
    assert (re.fullmatch(rules.IPV6, text) is not None) == (address is not None)


def test_the_parser_checks_the_crds_ipv6_patterns_lengths_and_ranges() -> None:
    spec = crd_schema()["properties"]
    v6 = spec["ipv6config"]["properties"]
    pool = v6["pool"]["properties"]
    ipv6 = f"^{rules.IPV6}$"
    expected = {
        "subnet": (v6["subnet"], f"^{rules.IPV6_CIDR}$", None),
        "serverip": (v6["serverip"], ipv6, None),
        "router": (v6["router"], ipv6, None),
        "start": (pool["start"], ipv6, None),
        "end": (pool["end"], ipv6, None),
        "exclude": (pool["exclude"]["items"], ipv6, None),
        "dns": (v6["dns"]["items"], ipv6, None),
        "domainsearch": (v6["domainsearch"]["items"], f"^{rules.DNS_NAME}$", rules.DNS_NAME_MAX),
        "ntp": (v6["ntp"]["items"], f"^{rules.NTP_SERVER6}$", rules.DNS_NAME_MAX),
    }
    for field, (schema, pattern, max_length) in expected.items():
        assert (field, schema["pattern"], schema.get("maxLength")) == (field, pattern, max_length)
    for lifetime in ("preferredlifetime", "validlifetime"):
        assert (v6[lifetime]["minimum"], v6[lifetime]["maximum"]) == LIFETIME_RANGE
    assert v6["routeradvertisement"] == {**v6["routeradvertisement"], "type": "boolean"}
    assert v6["routeradvertisement"]["default"] is False
    assert spec["ipv6config"]["required"] == ["subnet", "pool"]
    assert v6["pool"]["required"] == ["start", "end"]
