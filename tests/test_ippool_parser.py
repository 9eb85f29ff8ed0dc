"""kvip's one IPPool parser (`parse_ippool`): what it reads from an IPPool and
how it refuses one, each problem named by its field. That it agrees with the
CRD's schema is test_ippool_schema_agreement (real API server) and, for the
patterns, the last test here."""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest
import yaml

from kvip.ipam import InvalidPool, PoolSpec
from kvip.serving import _ippool_fields as rules
from kvip.serving import parse_ippool
from kvip.serving._pool_config import LEASE_TIME_RANGE, MTU_RANGE
from tests.lab.objects import (
    CRD_EXAMPLE_POOL,
    ippool,
    seed_readme_ippool,
    with_value,
)

ip = IPv4Address
V4 = "spec.ipv4config"
REPO = Path(__file__).resolve().parent.parent


def parse(path: str | None = None, value: Any = None) -> PoolSpec:
    body = (
        ippool("pool1", **CRD_EXAMPLE_POOL)
        if path is None
        else with_value(ippool("pool1", **CRD_EXAMPLE_POOL), path, value)
    )
    body["spec"]["ipv4config"]["pool"]["exclude"] = ["172.16.0.67"]
    spec = parse_ippool(body).spec
    assert spec is not None
    return spec


def invalid_message(body: dict[str, Any]) -> str:
    with pytest.raises(InvalidPool) as caught:
        parse_ippool(body)
    return str(caught.value)


def test_parse_reads_an_ippool_as_kubevirt_ip_helper_users_write_it() -> None:
    config = parse_ippool(seed_readme_ippool("pool1"))
    assert config.options is not None
    assert config.spec == PoolSpec(
        subnet=IPv4Network("172.16.0.0/16"),
        start=ip("172.16.0.10"),
        end=ip("172.16.255.250"),
        server_ip=ip("172.16.0.2"),
        router=ip("172.16.0.1"),
        exclude=(ip("172.16.0.67"), ip("172.16.100.154"), ip("172.16.189.99")),
    )
    assert (config.name, config.network, config.interface) == ("pool1", "default/net1", "eth1")
    assert config.options.dns == (ip("8.8.8.8"), ip("8.8.4.4"))
    assert (config.options.domain_name, config.options.domain_search) == (
        "example.com",
        ("example.com",),
    )
    assert (config.options.ntp, config.ntp_names) == ((), ("0.pool.ntp.org", "1.pool.ntp.org"))
    assert (config.options.lease_time, config.options.mtu, config.paused) == (300, None, False)


def test_router_exclude_and_the_options_are_optional() -> None:
    body = with_value(ippool("pool1", **CRD_EXAMPLE_POOL), f"{V4}.router", None)
    config = parse_ippool(body)
    assert config.spec is not None and config.options is not None
    assert (config.spec.router, config.spec.exclude) == (None, ())
    assert (config.options.lease_time, config.options.dns, config.options.routes) == (3600, (), ())


def test_a_bare_network_name_is_in_the_default_namespace() -> None:
    body = with_value(ippool("pool1", **CRD_EXAMPLE_POOL), "spec.networkname", "net1")
    assert parse_ippool(body).network == "default/net1"


def test_subnet_with_host_bits_is_taken_as_its_network() -> None:
    assert parse(f"{V4}.subnet", "172.16.0.1/16").subnet == IPv4Network("172.16.0.0/16")


@pytest.mark.parametrize("text", [" 172.16.0.10", "172.16.0.10 ", "172.16.0.10\n"])
def test_surrounding_whitespace_is_refused_as_the_api_server_refuses_it(text: str) -> None:
    # The schema's pattern refuses it; a parser that took it would read
    # objects that no API server with kvip's CRD can hold.
    message = invalid_message(
        with_value(ippool("pool1", **CRD_EXAMPLE_POOL), f"{V4}.pool.start", text)
    )
    assert f"{V4}.pool.start {text!r} is not an IPv4 address" in message


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (f"{V4}.pool.start", "172.16.300.1", "pool.start '172.16.300.1' is not an IPv4 address"),
        (f"{V4}.pool.end", "fe80::1", "pool.end 'fe80::1' is not an IPv4 address"),
        (f"{V4}.serverip", "", "serverip '' is not an IPv4 address"),
        (f"{V4}.serverip", None, "serverip is missing"),
        (f"{V4}.router", "gateway", "router 'gateway' is not an IPv4 address"),
        (f"{V4}.router", "", "router '' is not an IPv4 address"),
        (f"{V4}.subnet", "172.16.0.0/33", "subnet '172.16.0.0/33' is not an IPv4 network"),
        (f"{V4}.subnet", "172.16.0.0", "subnet '172.16.0.0' is not an IPv4 network"),
        (f"{V4}.subnet", "172.16.0.0/255.255.0.0", "subnet '172.16.0.0/255.255.0.0' is not"),
        (f"{V4}.subnet", "172.16.0.0/016", "subnet '172.16.0.0/016' is not an IPv4 network"),
        (f"{V4}.pool.exclude", ["172.16.0.5", "nope"], "exclude[1] 'nope' is not an IPv4 address"),
        (f"{V4}.pool.exclude", "172.16.0.5", "pool.exclude must be a list, not '172.16.0.5'"),
        (f"{V4}.pool.start", 168820746, "pool.start must be an IPv4 address as text, not 1688"),
        (f"{V4}.subnet", None, "subnet is missing"),
        (f"{V4}.leasetime", 0, "leasetime 0 is outside 1..4294967295"),
        (f"{V4}.leasetime", -1, "leasetime -1 is outside 1..4294967295"),
        (f"{V4}.leasetime", "300", "leasetime must be a whole number, not '300'"),
        (f"{V4}.leasetime", True, "leasetime must be a whole number, not True"),
        (f"{V4}.mtu", 67, "mtu 67 is outside 68..65535"),
        (f"{V4}.dns", ["8.8.8.8", 8], "dns[1] must be an IPv4 address as text, not 8"),
        (f"{V4}.ntp", ["ntp example"], "ntp[0] 'ntp example' is not an IPv4 address or a DNS"),
        (f"{V4}.ntp", ["1.2.3.999"], "ntp[0] '1.2.3.999' is not an IPv4 address or a DNS"),
        (f"{V4}.domainname", "-bad-.example.com", "domainname '-bad-.example.com' is not a DNS"),
        (f"{V4}.domainname", "", "domainname '' is not a DNS name"),
        (f"{V4}.domainsearch", ["ok.example", ""], "domainsearch[1] '' is not a DNS name"),
        (f"{V4}.routes", [{"destination": "10.0.0.0/8"}], "routes[0].gateway is missing"),
        (f"{V4}.routes", [{"gateway": "172.16.0.1"}], "routes[0].destination is missing"),
        ("spec.networkname", "Default/Net_1", "networkname 'Default/Net_1' is not a network"),
        ("spec.networkname", "a/b/c", "networkname 'a/b/c' is not a network name"),
        ("spec.networkname", None, "spec.networkname is missing"),
        ("spec.bindinterface", "", "bindinterface '' is not an interface name"),
        ("spec.bindinterface", "an-interface-too-long", "bindinterface 'an-interface-too-long'"),
        ("spec.paused", "yes", "spec.paused must be true or false, not 'yes'"),
        ("spec.ipv4config", None, "spec.ipv4config is missing"),
        ("spec.ipv4config", "x", "spec.ipv4config must be an object, not 'x'"),
        (f"{V4}.pool", None, "spec.ipv4config.pool is missing"),
        ("spec", None, "spec is missing"),
    ],
)
def test_bad_fields_are_refused_with_the_field_and_the_text(
    path: str, value: Any, expected: str
) -> None:
    assert expected in invalid_message(with_value(ippool("pool1", **CRD_EXAMPLE_POOL), path, value))


def test_a_null_is_absent_as_the_api_server_prunes_it() -> None:
    body = ippool("pool1", **CRD_EXAMPLE_POOL)
    body["spec"]["ipv4config"]["router"] = None
    body["spec"]["paused"] = None
    config = parse_ippool(body)
    assert config.spec is not None
    assert (config.spec.router, config.paused) == (None, False)
    body["spec"]["ipv4config"]["serverip"] = None
    assert f"{V4}.serverip is missing" in invalid_message(body)


def test_a_whole_number_may_be_written_as_a_float_as_json_allows() -> None:
    body = with_value(ippool("pool1", **CRD_EXAMPLE_POOL), f"{V4}.leasetime", 300.0)
    options = parse_ippool(body).options
    assert options is not None and options.lease_time == 300
    body = with_value(body, f"{V4}.leasetime", 300.5)
    assert f"{V4}.leasetime must be a whole number, not 300.5" in invalid_message(body)


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (
            f"{V4}.pool.start",
            "172.16.0.20",
            f"{V4}.pool.start 172.16.0.20 is after {V4}.pool.end 172.16.0.10",
        ),
        (f"{V4}.serverip", "10.0.0.2", f"{V4}.serverip 10.0.0.2 is outside the subnet"),
        (f"{V4}.pool.start", "172.16.0.0", f"{V4}.pool.start 172.16.0.0 is the network address"),
    ],
)
def test_rules_across_fields_are_refused_with_the_fields(
    path: str, value: Any, expected: str
) -> None:
    body = with_value(ippool("pool1", **CRD_EXAMPLE_POOL), f"{V4}.pool.end", "172.16.0.10")
    assert expected in invalid_message(with_value(body, path, value))


def test_every_problem_is_reported_at_once() -> None:
    body = with_value(ippool("pool1", **CRD_EXAMPLE_POOL), f"{V4}.pool.start", "bad")
    body = with_value(body, f"{V4}.router", "10.0.0.1x")
    body = with_value(body, f"{V4}.pool.exclude", ["x"])
    body = with_value(body, f"{V4}.leasetime", 0)
    body = with_value(body, "spec.networkname", "Net")
    message = invalid_message(body)
    for expected in [
        "pool.start 'bad'",
        "router '10.0.0.1x'",
        "exclude[0] 'x'",
        "leasetime 0",
        "networkname 'Net'",
    ]:
        assert expected in message


def test_a_pattern_is_matched_whole_as_go_matches_it() -> None:
    # Python's `$` also matches before a final newline; Go's does not.
    assert re.match(f"^{rules.IPV4}$", "172.16.0.2\n") is not None
    assert "is not an IPv4 address" in invalid_message(
        with_value(ippool("pool1", **CRD_EXAMPLE_POOL), f"{V4}.serverip", "172.16.0.2\n")
    )


def crd_schema() -> dict[str, Any]:
    crds = yaml.safe_load_all((REPO / "deploy" / "crds.yaml").read_text())
    (pools,) = [doc for doc in crds if doc and doc["spec"]["names"]["plural"] == "ippools"]
    (version,) = pools["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return schema


def test_the_parser_checks_the_crds_patterns_lengths_and_ranges() -> None:
    spec = crd_schema()["properties"]
    v4 = spec["ipv4config"]["properties"]
    pool = v4["pool"]["properties"]
    route = v4["routes"]["items"]["properties"]
    ipv4 = f"^{rules.IPV4}$"
    cidr = f"^{rules.IPV4_CIDR}$"
    name = f"^{rules.DNS_NAME}$"
    expected = {
        "networkname": (spec["networkname"], f"^{rules.NETWORK_NAME}$", rules.NETWORK_NAME_MAX),
        "bindinterface": (spec["bindinterface"], f"^{rules.INTERFACE}$", None),
        "serverip": (v4["serverip"], ipv4, None),
        "subnet": (v4["subnet"], cidr, None),
        "router": (v4["router"], ipv4, None),
        "start": (pool["start"], ipv4, None),
        "end": (pool["end"], ipv4, None),
        "exclude": (pool["exclude"]["items"], ipv4, None),
        "dns": (v4["dns"]["items"], ipv4, None),
        "domainname": (v4["domainname"], name, rules.DNS_NAME_MAX),
        "domainsearch": (v4["domainsearch"]["items"], name, rules.DNS_NAME_MAX),
        "ntp": (v4["ntp"]["items"], f"^{rules.NTP_SERVER}$", rules.DNS_NAME_MAX),
        "destination": (route["destination"], cidr, None),
        "gateway": (route["gateway"], ipv4, None),
    }
    for field, (schema, pattern, max_length) in expected.items():
        assert (field, schema["pattern"], schema.get("maxLength")) == (field, pattern, max_length)
    assert (v4["leasetime"]["minimum"], v4["leasetime"]["maximum"]) == LEASE_TIME_RANGE
    assert (v4["mtu"]["minimum"], v4["mtu"]["maximum"]) == MTU_RANGE
    assert v4["routes"]["items"]["required"] == ["destination", "gateway"]
    assert crd_schema()["required"] == ["networkname"]
    assert crd_schema()["anyOf"] == [{"required": ["ipv4config"]}, {"required": ["ipv6config"]}]
    assert spec["ipv4config"]["required"] == ["serverip", "subnet", "pool"]
    assert v4["pool"]["required"] == ["start", "end"]
