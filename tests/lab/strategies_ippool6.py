"""Hypothesis strategies for an IPPool's `spec.ipv6config`, for the test that
sends generated IPPools to the real API server and to kvip's parser
(test_ippool_schema_agreement): servable configs, bad values field by field,
changes that break a rule across fields, and the fields such a rule names.
"""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Network
from typing import Any

from hypothesis import strategies as st

V6 = "spec.ipv6config"
#: kvip's defaults for lifetimes an ipv6config leaves out.
PREFERRED, VALID = 3600, 7200
#: The blocks `PoolSpec6` refuses a subnet in (no addresses for VMs there).
NOT_FOR_HOSTS = (IPv6Network("::/8"), IPv6Network("fe80::/10"), IPv6Network("ff00::/8"))
LINK_LOCAL = IPv6Network("fe80::/10")
LONGEST_PREFIX_WITH_ANYCAST = 126
#: Global unicast (2000::/3) and unique-local (fc00::/7) space, where pools live.
_BLOCKS = (IPv6Network("2000::/3"), IPv6Network("fc00::/7"))


def spelled(address: IPv6Address, form: int) -> str:
    """One of the text forms an operator may write: compressed, full, upper case."""
    return (address.compressed, address.exploded, address.compressed.upper())[form]


@st.composite
def texts(draw: st.DrawFn, low: int, high: int) -> str:
    return spelled(IPv6Address(draw(st.integers(low, high))), draw(st.integers(0, 2)))


@st.composite
def servable_ipv6configs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid ipv6config that the parser must accept, optional fields or not."""
    prefix = draw(st.integers(64, 128))
    block = draw(st.sampled_from(_BLOCKS))
    base = draw(st.integers(int(block.network_address), int(block.broadcast_address)))
    subnet = IPv6Network((base, prefix), strict=False)
    first, last = int(subnet.network_address), int(subnet.broadcast_address)
    if prefix <= LONGEST_PREFIX_WITH_ANYCAST:
        first += 1  # the Subnet-Router anycast address is never in a range
    start, end = sorted(draw(st.lists(st.integers(first, last), min_size=2, max_size=2)))
    inside = texts(int(subnet.network_address), int(subnet.broadcast_address))
    link_local = texts(int(LINK_LOCAL.network_address), int(LINK_LOCAL.broadcast_address))
    pool: dict[str, Any] = {"start": draw(texts(start, start)), "end": draw(texts(end, end))}
    if draw(st.booleans()):
        pool["exclude"] = draw(st.lists(inside, max_size=3))
    host = draw(texts(int(subnet.network_address), int(subnet.broadcast_address)))
    v6: dict[str, Any] = {"subnet": f"{host}/{prefix}", "pool": pool}
    preferred = draw(st.sampled_from([1, 300, PREFERRED, 2**32 - 1]))
    lifetimes = draw(st.sampled_from(["both", "preferred", "valid", "neither"]))
    if lifetimes in ("both", "preferred"):
        v6["preferredlifetime"] = min(preferred, VALID) if lifetimes == "preferred" else preferred
    if lifetimes in ("both", "valid"):
        low = preferred if lifetimes == "both" else PREFERRED
        v6["validlifetime"] = draw(st.sampled_from([low, max(low, VALID), 2**32 - 1]))
    optional: dict[str, st.SearchStrategy[Any]] = {
        "serverip": st.one_of(inside, link_local),
        "router": st.one_of(inside, link_local),
        "dns": st.lists(st.sampled_from(["2001:db8::53", "2001:4860:4860::8888"]), max_size=2),
        "domainsearch": st.lists(st.sampled_from(["example.com", "lab.example."]), max_size=2),
        "ntp": st.lists(st.sampled_from(["ntp.example.com", "2001:DB8::123"]), max_size=2),
        "routeradvertisement": st.booleans(),
    }
    for key, values in optional.items():
        if draw(st.booleans()):
            v6[key] = draw(values)
    return v6


ANY_ADDRESS6 = texts(0, 2**128 - 1)
BAD_ADDRESSES6 = st.sampled_from(
    [
        "", " 2001:db8::10", "2001:db8::10 ", "2001:db8::10\n", "2001:db8::1::2", "fe80::1%eth1",
        "::ffff:198.18.0.1", "198.18.0.10", "2001:db8::/128", "12345::1", "2001:db8:::1", "g::1",
        "1:2:3:4:5:6:7:8:9", "[2001:db8::1]", "2001:db8::\u0661",
    ]
)  # fmt: skip
BAD_NETWORKS6 = st.sampled_from(
    [
        "", "2001:db8::", "2001:db8::/63", "2001:db8::/0", "2001:db8::/129", "2001:db8::/064",
        "2001:db8::/ 64", "2001:db8::/64\n", "198.18.0.0/24", "fe80::/64", "::/64", "ff02::/64",
        "::ffff:0:0/96", "fd00::/127", "2001:db8::1/128",
    ]
)  # fmt: skip
WRONG_VALUES = st.sampled_from([0, 2**70, True, 1.5, ["2001:db8::1"], {"a": "b"}, None])
FUZZ_TEXT6 = st.text(alphabet="0123456789abcdefABCDEF:./% \n", max_size=24)


def addresses6() -> st.SearchStrategy[Any]:
    return st.one_of(ANY_ADDRESS6, BAD_ADDRESSES6, WRONG_VALUES, FUZZ_TEXT6)


def address_lists6(delete: object) -> st.SearchStrategy[Any]:
    return st.one_of(st.lists(addresses6(), max_size=3), addresses6(), st.just(delete))


def mutations6(
    delete: object, names: st.SearchStrategy[Any], wrong_types: st.SearchStrategy[Any]
) -> dict[str, st.SearchStrategy[Any]]:
    """Bad values for each ipv6config field; `delete` removes the key."""

    def lifetimes(*edges: float) -> st.SearchStrategy[Any]:
        return st.one_of(st.sampled_from(edges), st.integers(-(2**33), 2**33), wrong_types)

    edges = (-1, 0, 1, PREFERRED, VALID, VALID + 1, 2**32 - 1, 2**32, 300.0, 2.0**32)
    return {
        V6: st.sampled_from([delete, None, "pool", [], {}]),
        f"{V6}.subnet": st.one_of(BAD_NETWORKS6, wrong_types, FUZZ_TEXT6),
        f"{V6}.serverip": st.one_of(addresses6(), st.just(delete)),
        f"{V6}.router": st.one_of(addresses6(), st.just(delete)),
        f"{V6}.pool": st.sampled_from([delete, None, "x", [], {}]),
        f"{V6}.pool.start": st.one_of(addresses6(), st.just(delete)),
        f"{V6}.pool.end": st.one_of(addresses6(), st.just(delete)),
        f"{V6}.pool.exclude": address_lists6(delete),
        f"{V6}.dns": address_lists6(delete),
        f"{V6}.domainsearch": st.one_of(st.lists(names, max_size=2), names),
        f"{V6}.ntp": st.one_of(st.lists(st.one_of(names, addresses6()), max_size=2), names),
        f"{V6}.preferredlifetime": lifetimes(*edges),
        f"{V6}.validlifetime": lifetimes(*edges),
        f"{V6}.routeradvertisement": st.one_of(st.sampled_from(["yes", "true", 1, 0]), wrong_types),
    }


#: Changes of a servable ipv6config, each breaking one rule across fields.
ACROSS_FIELDS6 = [
    "reversed",
    "start at the Subnet-Router anycast address",
    "start outside",
    "end outside",
    "server IP outside",
    "router outside",
    "preferred over valid",
    "preferred over the default valid",
]


def across_fields6(v6: dict[str, Any], change: str, offset: int) -> dict[str, Any]:
    """A copy of a servable `v6` changed as `change` says."""
    v6 = {**v6, "pool": dict(v6["pool"])}
    subnet = IPv6Network(v6["subnet"], strict=False)
    outside = str(IPv6Address((int(subnet.broadcast_address) + 1 + offset) % 2**128))
    if change == "reversed":
        v6["pool"]["start"], v6["pool"]["end"] = v6["pool"]["end"], v6["pool"]["start"]
    elif change == "start at the Subnet-Router anycast address":
        v6["pool"]["start"] = str(subnet.network_address)
    elif change in ("start outside", "end outside"):
        v6["pool"][change.split()[0]] = outside
    elif change in ("server IP outside", "router outside"):
        v6["serverip" if change.startswith("server") else "router"] = outside
    elif change == "preferred over valid":
        v6["preferredlifetime"], v6["validlifetime"] = 7201 + offset, 7200 + offset
    else:
        v6.pop("validlifetime", None)
        v6["preferredlifetime"] = VALID + 1 + offset
    return v6


def cross_field_problems6(v6: dict[str, Any]) -> set[str]:
    """The fields of a schema-valid ipv6config that `PoolSpec6` or the lifetime
    rule refuses. The subnet's block (::/8, fe80::/10, ff00::/8) is about one
    field, but no pattern says it readably: the parser judges it."""
    subnet = IPv6Network(v6["subnet"], strict=False)
    found = set()
    if v6.get("preferredlifetime", PREFERRED) > v6.get("validlifetime", VALID):
        found.add(f"{V6}.preferredlifetime")
    if any(subnet.subnet_of(block) for block in NOT_FOR_HOSTS):
        found.add(f"{V6}.subnet")
    named = {
        f"{V6}.pool.start": (v6["pool"]["start"], False),
        f"{V6}.pool.end": (v6["pool"]["end"], False),
        f"{V6}.serverip": (v6.get("serverip"), True),
        f"{V6}.router": (v6.get("router"), True),
    }
    outside = {
        field
        for field, (text, link_local_ok) in named.items()
        if text is not None
        and IPv6Address(text) not in subnet
        and not (link_local_ok and IPv6Address(text) in LINK_LOCAL)
    }
    if outside or f"{V6}.subnet" in found:
        return found | outside
    start, end = IPv6Address(v6["pool"]["start"]), IPv6Address(v6["pool"]["end"])
    if start > end:
        found |= {f"{V6}.pool.start", f"{V6}.pool.end"}
    elif subnet.prefixlen <= LONGEST_PREFIX_WITH_ANYCAST and start == subnet.network_address:
        found.add(f"{V6}.pool.start")
    return found
