"""The IPPool schema (deploy/crds.yaml, judged by a real kube-apiserver) and
kvip's one IPPool parser (`kvip.serving.parse_ippool`) agree.

The rule, for every generated IPPool body B:

1. The API server refuses B (422)  =>  the parser refuses B with `InvalidPool`,
   and its message names every field the API server named. A parser that
   accepted it would be serving a pool no cluster can hold.
2. The API server accepts B and stores S  =>  the parser, given S (what a
   watch delivers), refuses S exactly when S breaks a rule that spans fields,
   which the schema cannot express (Kubernetes 1.20 has no CEL): the range,
   server IP or router outside the subnet, start after end, the network or
   broadcast address in the range; for an ipv6config (tests/lab/strategies_ippool6)
   the same range rules, the Subnet-Router anycast address as start, a
   preferred lifetime over the valid one, and a subnet in ::/8, fe80::/10 or
   ff00::/8 (one field, but no readable pattern). Its message then names those fields. Every
   rule about one field alone (a pattern, a type, a minimum) is the schema's,
   so a refusal of S for such a reason is a drift (`leasetime: 0` was one).
   When it accepts S, the config holds S's values.
3. The parser's verdict on B is its verdict on S: what the API server drops
   (nulls, unknown fields) or normalises (300.0 -> 300) changes nothing.

Bodies are valid pools bent in up to three places: bad text (whitespace,
leading zeros, netmask prefixes, trailing newlines, ...), wrong types, nulls,
missing fields, and fields that disagree with each other. Each is sent with
`dryRun=All`, so nothing is stored and one name serves all examples.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any

import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kvip.ipam import InvalidPool
from kvip.serving import DEFAULT_INTERFACE, parse_ippool
from tests.lab.crs import IPPOOLS
from tests.lab.objects import (
    GROUP,
    VERSION,
    seed_readme_ippool,
    with_value,
)
from tests.lab.strategies_ippool6 import (
    ACROSS_FIELDS6,
    PREFERRED,
    VALID,
    across_fields6,
    cross_field_problems6,
    mutations6,
    servable_ipv6configs,
)

pytestmark = [pytest.mark.apiserver, pytest.mark.usefixtures("crds")]

V4 = "spec.ipv4config"
DELETE = object()  # a mutation that removes the key (None sends JSON null)

LONGEST_PREFIX_WITH_BROADCAST = 30


def text_of(n: int) -> str:
    return str(IPv4Address(n))


@st.composite
def servable_pools(draw: st.DrawFn) -> dict[str, Any]:
    """A valid IPPool that the parser must accept, optional fields or not."""
    prefix = draw(st.integers(8, 32))
    subnet = IPv4Network((draw(st.integers(0, 2**32 - 1)), prefix), strict=False)
    first, last = int(subnet.network_address), int(subnet.broadcast_address)
    if prefix <= LONGEST_PREFIX_WITH_BROADCAST:
        first, last = first + 1, last - 1
    start, end = sorted(draw(st.lists(st.integers(first, last), min_size=2, max_size=2)))
    inside = st.integers(int(subnet.network_address), int(subnet.broadcast_address)).map(text_of)
    pool: dict[str, Any] = {"start": text_of(start), "end": text_of(end)}
    if draw(st.booleans()):
        pool["exclude"] = draw(st.lists(inside, max_size=3))
    # A host-bits subnet is valid text and is read as its network.
    subnet_text = f"{text_of(draw(st.integers(first, last)))}/{prefix}"
    v4: dict[str, Any] = {"serverip": draw(inside), "subnet": subnet_text, "pool": pool}
    optional: dict[str, st.SearchStrategy[Any]] = {
        "router": inside,
        "dns": st.lists(st.sampled_from(["8.8.8.8", "192.0.2.53"]), max_size=2),
        "domainname": st.sampled_from(["example.com", "corp", "example.com."]),
        "domainsearch": st.lists(st.sampled_from(["example.com", "lab.example."]), max_size=2),
        "ntp": st.lists(st.sampled_from(["0.pool.ntp.org", "192.0.2.123"]), max_size=2),
        "leasetime": st.sampled_from([1, 300, 86400, 2**32 - 1]),
        "mtu": st.sampled_from([68, 1450, 9000, 65535]),
        "routes": st.lists(
            st.fixed_dictionaries({"destination": st.just("10.0.0.0/8"), "gateway": inside}),
            max_size=2,
        ),
    }
    for key, values in optional.items():
        if draw(st.booleans()):
            v4[key] = draw(values)
    spec: dict[str, Any] = {
        "networkname": draw(st.sampled_from(["default/net1", "net1", "kube-system/br.vlan-10"])),
        "ipv4config": v4,
    }
    if draw(st.booleans()):
        spec["bindinterface"] = draw(st.sampled_from(["eth1", "net1", "eth1.100", "br_0"]))
    if draw(st.booleans()):
        spec["paused"] = draw(st.booleans())
    if draw(st.booleans()):
        spec["ipv6config"] = draw(servable_ipv6configs())
        if draw(st.integers(0, 3)) == 0:
            del spec["ipv4config"]  # an IPv6-only pool
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "IPPool",
        "metadata": {"name": "schema-agreement"},
        "spec": spec,
    }


ANY_ADDRESS = st.integers(0, 2**32 - 1).map(text_of)
BAD_ADDRESSES = st.sampled_from(
    [
        "", " 198.18.0.10", "198.18.0.10 ", "198.18.0.10\n", "198.018.0.10", "198.18.0.256",
        "198.18.0", "198.18.0.10.1", "fe80::1", "198.18.0.10/32", "localhost", "198.18.0.1\u0660",
    ]
)  # fmt: skip
BAD_NETWORKS = st.sampled_from(
    [
        "", "198.18.0.0", "198.18.0.0/33", "198.18.0.0/08", "198.18.0.0/255.255.0.0",
        "198.18.0.0/0.0.255.255", " 198.18.0.0/16", "198.18.0.0/16\n", "198.18.0.0/ 16",
    ]
)  # fmt: skip
WRONG_VALUES = st.sampled_from([0, 168820746, True, 1.5, ["198.18.0.10"], {"a": "b"}, None])
WRONG_TYPES = st.one_of(WRONG_VALUES, st.just(DELETE))
FUZZ_TEXT = st.text(alphabet="0123456789./:- \nabzAZ_é", max_size=20)
NAMES = st.sampled_from(
    [
        "", "-bad-.example.com", "exa mple.com", "1.2.3.4", "1.2.3.999", "a" * 64 + ".com",
        ("a" * 60 + ".") * 5 + "com", "example.com\n", "xn--bcher-kva.example", "UPPER.example",
    ]
)  # fmt: skip


def addresses() -> st.SearchStrategy[Any]:
    return st.one_of(ANY_ADDRESS, BAD_ADDRESSES, WRONG_VALUES, FUZZ_TEXT)


def address_lists() -> st.SearchStrategy[Any]:
    return st.one_of(st.lists(addresses(), max_size=3), addresses(), st.just(DELETE))


def integers(*edges: float) -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from(edges), st.integers(-(2**33), 2**33), WRONG_TYPES)


MUTATIONS: dict[str, st.SearchStrategy[Any]] = {
    "spec": st.sampled_from([DELETE, None, "pool", []]),
    "spec.networkname": st.one_of(
        st.sampled_from(["Default/Net_1", "a/b/c", "/net", "net/", "x" * 318]),
        WRONG_TYPES,
        FUZZ_TEXT,
    ),
    "spec.bindinterface": st.one_of(
        st.sampled_from(["", "eth 1", "ëth1", "an-interface-name-too-long", " eth1"]),
        WRONG_TYPES,
        FUZZ_TEXT,
    ),
    "spec.paused": st.one_of(st.sampled_from(["yes", "true", 1, 0]), WRONG_TYPES),
    "spec.ipv4config": st.sampled_from([DELETE, None, "pool", []]),
    f"{V4}.serverip": st.one_of(addresses(), st.just(DELETE)),
    f"{V4}.subnet": st.one_of(BAD_NETWORKS, WRONG_TYPES, FUZZ_TEXT),
    f"{V4}.pool": st.sampled_from([DELETE, None, "x", [], {}]),
    f"{V4}.pool.start": st.one_of(addresses(), st.just(DELETE)),
    f"{V4}.pool.end": st.one_of(addresses(), st.just(DELETE)),
    f"{V4}.pool.exclude": address_lists(),
    f"{V4}.router": st.one_of(addresses(), st.just(DELETE)),
    f"{V4}.dns": address_lists(),
    f"{V4}.domainname": st.one_of(NAMES, WRONG_TYPES, FUZZ_TEXT),
    f"{V4}.domainsearch": st.one_of(st.lists(st.one_of(NAMES, FUZZ_TEXT), max_size=2), NAMES),
    f"{V4}.ntp": st.one_of(st.lists(st.one_of(NAMES, addresses()), max_size=2), NAMES),
    f"{V4}.leasetime": integers(-1, 0, 1, 2**32 - 1, 2**32, 0.0, 300.0, 1e3, 2.0**32),
    f"{V4}.mtu": integers(67, 68, 65535, 65536, 1500.0, 67.0),
    f"{V4}.routes": st.one_of(
        st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "destination": st.one_of(BAD_NETWORKS, st.just("10.1.0.0/16"), WRONG_VALUES),
                    "gateway": addresses(),
                },
            ),
            max_size=2,
        ),
        WRONG_TYPES,
    ),
    **mutations6(DELETE, st.one_of(NAMES, FUZZ_TEXT), WRONG_TYPES),
}


def mutated(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """`body` with `path` set (or removed); unchanged if a parent is gone."""
    *parents, last = path.split(".")
    node: Any = body
    for key in parents:
        if not isinstance(node, dict) or not isinstance(node.get(key), dict):
            return body
        node = node[key]
    if value is DELETE:
        return with_value(body, path, None) if last in node else body
    result = copy.deepcopy(body)
    target = result
    for key in parents:
        target = target[key]
    target[last] = copy.deepcopy(value)
    return result


def across_fields(body: dict[str, Any], change: str, offset: int) -> dict[str, Any]:
    """`body` with its range, server IP or router moved relative to its subnet."""
    if "ipv4config" not in body["spec"]:
        return body  # an IPv6-only pool
    v4 = body["spec"]["ipv4config"]
    subnet = IPv4Network(v4["subnet"], strict=False)
    start, end = v4["pool"]["start"], v4["pool"]["end"]
    outside = text_of((int(subnet.broadcast_address) + 1 + offset) % 2**32)
    value, path = {
        "reversed": ((end, start), "pool"),
        "start at the network address": (str(subnet.network_address), "pool.start"),
        "end at the broadcast address": (str(subnet.broadcast_address), "pool.end"),
        "start outside": (outside, "pool.start"),
        "end outside": (outside, "pool.end"),
        "server IP outside": (outside, "serverip"),
        "router outside": (outside, "router"),
        "server IP in the range": (start, "serverip"),
        "router in the range": (end, "router"),
        "exclude outside": ([outside], "pool.exclude"),
    }[change]
    if path == "pool":
        body = mutated(body, f"{V4}.pool.start", value[0])
        return mutated(body, f"{V4}.pool.end", value[1])
    return mutated(body, f"{V4}.{path}", value)


ACROSS_FIELDS = [
    "reversed",
    "start at the network address",
    "end at the broadcast address",
    "start outside",
    "end outside",
    "server IP outside",
    "router outside",
    "server IP in the range",
    "router in the range",
    "exclude outside",
]


@st.composite
def ippools(draw: st.DrawFn) -> dict[str, Any]:
    body = draw(servable_pools())
    if draw(st.booleans()):
        change = draw(st.sampled_from(ACROSS_FIELDS))
        body = across_fields(body, change, draw(st.integers(0, 2**16)))
    if "ipv6config" in body["spec"] and draw(st.booleans()):
        change = draw(st.sampled_from(ACROSS_FIELDS6))
        v6 = across_fields6(body["spec"]["ipv6config"], change, draw(st.integers(0, 2**16)))
        body = mutated(body, "spec.ipv6config", v6)
        event(change)
    for path in draw(st.lists(st.sampled_from(sorted(MUTATIONS)), max_size=3, unique=True)):
        # A null or a missing key for one change in four: the API server
        # prunes nulls, and a missing required field is its own error.
        gone = st.sampled_from([None, DELETE])
        body = mutated(body, path, draw(st.one_of(*[MUTATIONS[path]] * 3, gone)))
    return body


@dataclass(frozen=True, slots=True)
class Verdict:
    stored: dict[str, Any] | None  # what the API server would store, if it accepts
    fields: tuple[str, ...]  # the fields it names when it refuses


def _field(cause: dict[str, str]) -> str:
    """The field a cause names. An anyOf failure (neither ipv4config nor
    ipv6config) has none in 1.20 ('<nil>'): its message names it, as in
    'Invalid value: "": "spec" must validate at least one schema (anyOf)'."""
    if cause["field"] != "<nil>":
        return cause["field"]
    quoted = re.search(r'"([a-z0-9.]+)" must validate', cause["message"])
    assert quoted is not None, cause
    return quoted.group(1)


def api_verdict(api: client.CustomObjectsApi, body: dict[str, Any]) -> Verdict:
    try:
        stored = api.create_cluster_custom_object(GROUP, VERSION, IPPOOLS, body, dry_run="All")
    except ApiException as error:
        assert error.status == 422, (error.status, error.body)
        causes = json.loads(error.body or "{}")["details"]["causes"]
        return Verdict(None, tuple(_field(cause) for cause in causes))
    assert isinstance(stored, dict)
    return Verdict(stored, ())


def cross_field_problems(stored: dict[str, Any]) -> set[str]:
    """The fields of a schema-valid IPPool that break a rule spanning fields."""
    if "ipv4config" not in stored["spec"]:
        return set()  # an IPv6-only pool
    v4 = stored["spec"]["ipv4config"]
    subnet = IPv4Network(v4["subnet"], strict=False)
    named = {
        f"{V4}.pool.start": v4["pool"]["start"],
        f"{V4}.pool.end": v4["pool"]["end"],
        f"{V4}.serverip": v4["serverip"],
        f"{V4}.router": v4.get("router"),
    }
    found = {
        field
        for field, text in named.items()
        if text is not None and IPv4Address(text) not in subnet
    }
    if found:
        return found
    start, end = IPv4Address(v4["pool"]["start"]), IPv4Address(v4["pool"]["end"])
    if start > end:
        return {f"{V4}.pool.start", f"{V4}.pool.end"}
    if subnet.prefixlen <= LONGEST_PREFIX_WITH_BROADCAST:
        if start == subnet.network_address:
            found.add(f"{V4}.pool.start")
        if end == subnet.broadcast_address:
            found.add(f"{V4}.pool.end")
    return found


def all_cross_field_problems(stored: dict[str, Any]) -> set[str]:
    v6 = stored["spec"].get("ipv6config")
    return cross_field_problems(stored) | (set() if v6 is None else cross_field_problems6(v6))


def refusal(body: dict[str, Any]) -> str | None:
    """The parser's InvalidPool message for `body`, or None if it accepts it.

    List indexes are left out (`routes[1].gateway` -> `routes.gateway`), as
    the API server of 1.20 leaves them out of the field names it reports.
    """
    try:
        parse_ippool(copy.deepcopy(body))
    except InvalidPool as exc:
        return re.sub(r"\[\d+\]", "", str(exc))
    return None


def leasetime(value: int) -> dict[str, Any]:
    return with_value(
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "IPPool",
            "metadata": {"name": "schema-agreement"},
            "spec": {
                "networkname": "default/net1",
                "ipv4config": {
                    "serverip": "198.18.0.2",
                    "subnet": "198.18.0.0/24",
                    "pool": {"start": "198.18.0.10", "end": "198.18.0.20"},
                },
            },
        },
        f"{V4}.leasetime",
        value,
    )


def dual_stack(**v6: Any) -> dict[str, Any]:
    body = leasetime(300)
    body["spec"]["ipv6config"] = {
        "subnet": "2001:db8::/64",
        "pool": {"start": "2001:db8::10", "end": "2001:db8::ff"},
        **v6,
    }
    return body


@settings(max_examples=200)
@given(body=ippools())
@example(body=seed_readme_ippool("schema-agreement"))
@example(body=dual_stack(serverip="fe80::1", ntp=["2001:db8::123", "ntp.example.com"]))
@example(body=dual_stack(preferredlifetime=7201))
@example(body=dual_stack(preferredlifetime=10, validlifetime=9))
@example(body=dual_stack(subnet="fe80::/64"))
@example(body=with_value(dual_stack(dns=["2001:db8::53"]), V4, None))
@example(body=with_value(leasetime(300), V4, None))
@example(body=leasetime(0))
@example(body=leasetime(-1))
@example(body=leasetime(1))
def test_the_api_server_and_the_parser_agree_on_every_ippool(
    kube_client: client.ApiClient, body: dict[str, Any]
) -> None:
    verdict = api_verdict(client.CustomObjectsApi(kube_client), body)
    if verdict.stored is None:
        event("the API server refuses it")
        message = refusal(body)
        assert message is not None, f"the API server refused {verdict.fields}; the parser did not"
        missing = [field for field in verdict.fields if field not in message]
        assert not missing, f"{missing} not named in {message!r}"
        return
    stored = verdict.stored
    expected = all_cross_field_problems(stored)
    message = refusal(stored)
    assert refusal(body) == message
    event("the API server accepts it, " + ("a rule across fields" if expected else "servable"))
    if expected:
        assert message is not None, f"servable? the parser accepted {expected} problems"
        missing = [field for field in expected if field not in message]
        assert not missing, f"{missing} not named in {message!r}"
        return
    assert message is None, f"the schema accepts it, the parser does not: {message}"
    config = parse_ippool(stored)
    assert parse_ippool(copy.deepcopy(body)) == config
    spec, v4 = stored["spec"], stored["spec"].get("ipv4config")
    if v4 is None:  # an IPv6-only pool (the schema's anyOf: it has an ipv6config)
        assert (config.spec, config.options) == (None, None)
        assert config.v6 is not None
        return
    assert config.spec is not None and config.options is not None
    assert config.spec.start == IPv4Address(v4["pool"]["start"])
    assert config.spec.end == IPv4Address(v4["pool"]["end"])
    assert config.spec.subnet == IPv4Network(v4["subnet"], strict=False)
    assert config.options.server_ip == IPv4Address(v4["serverip"])
    assert config.options.lease_time == v4.get("leasetime", config.options.lease_time)
    assert config.options.mtu == v4.get("mtu")
    assert len(config.options.routes) == len(v4.get("routes", []))
    assert config.interface == spec.get("bindinterface", DEFAULT_INTERFACE)
    assert config.paused is spec.get("paused", False)
    v6 = spec.get("ipv6config")
    assert (config.v6 is None) == (v6 is None)
    if config.v6 is not None:
        assert config.v6.spec.start == IPv6Address(v6["pool"]["start"])
        assert config.v6.spec.end == IPv6Address(v6["pool"]["end"])
        assert config.v6.spec.subnet == IPv6Network(v6["subnet"], strict=False)
        assert config.v6.options.preferred_lifetime == v6.get("preferredlifetime", PREFERRED)
        assert config.v6.options.valid_lifetime == v6.get("validlifetime", VALID)
        assert config.v6.router_advertisement is v6["routeradvertisement"]  # the schema's default
        assert len(config.v6.options.dns) == len(v6.get("dns", []))
