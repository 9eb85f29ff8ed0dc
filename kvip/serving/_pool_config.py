"""An IPPool object, read into the values a pool actor works with.

This is kvip's one IPPool parser. Everything an operator can get wrong is
checked here and reported as `InvalidPool`, every problem at once, each named
by its field (`spec.ipv4config.pool.start ...`), so that a bad pool gets a
status condition instead of taking anything down. It accepts exactly what
the CRD's schema accepts (see `_ippool_fields`), and refuses beyond that only
what the schema cannot express: rules that span fields, which `PoolSpec` and
`PoolSpec6` check (and the IPv6 subnet's block, ::/8, fe80::/10 or ff00::/8,
which no readable pattern says), and a preferred lifetime over the valid one.

`ipv4config` becomes `PoolConfig.spec` and `.options`, `ipv6config`
`PoolConfig.v6`: a pool has either or both (IPv4-only, IPv6-only, dual-stack).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from kvip.ipam import InvalidPool, PoolSpec, PoolSpec6
from kvip.serving._config import PoolOptions
from kvip.serving._config6 import PoolOptions6
from kvip.serving._ippool_fields import (
    DNS_NAME,
    DNS_NAME_MAX,
    INTERFACE,
    NETWORK_NAME,
    NETWORK_NAME_MAX,
    NTP_SERVER,
    NTP_SERVER6,
    Fields,
)
from protocol import ClasslessRoute

DEFAULT_INTERFACE = "eth1"
#: kubevirt-ip-helper's CRD has no default lease; an hour is a common one.
DEFAULT_LEASE_TIME = 3600
#: Option 51 is an unsigned 32-bit number of seconds (RFC 2132 9.2); a lease
#: of 0 s would expire as it is granted.
LEASE_TIME_RANGE = (1, 0xFFFFFFFF)
#: RFC 2132 5.1: the MTU option's minimum is 68.
MTU_RANGE = (68, 65535)

#: RFC 8415 7.7: lifetimes are unsigned 32-bit seconds, 0xFFFFFFFF meaning
#: infinity; an address valid for 0 s would expire as it is handed out.
LIFETIME_RANGE = (1, 0xFFFFFFFF)
#: kvip's defaults when an ipv6config gives none (a renewal at half of the
#: preferred lifetime, so every half hour).
DEFAULT_PREFERRED_LIFETIME = 3600
DEFAULT_VALID_LIFETIME = 7200

V4 = "spec.ipv4config"
V6 = "spec.ipv6config"


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolConfig6:
    """An IPPool's `ipv6config`: what it allocates and tells DHCPv6 clients."""

    spec: PoolSpec6
    options: PoolOptions6
    #: Send Router Advertisements (M and O flags, the prefix without autonomous
    #: addressing) on the pool's interface, for links with no router doing it.
    router_advertisement: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolConfig:
    """One IPPool: where it serves, what it allocates, what it tells clients."""

    name: str
    network: str
    interface: str
    #: The IPv4 half (`ipv4config`): None for an IPv6-only pool. The two are
    #: None together; a pool has at least one of `spec` and `v6`.
    spec: PoolSpec | None
    options: PoolOptions | None
    #: NTP servers given by name; the pool actor resolves them.
    ntp_names: tuple[str, ...] = ()
    paused: bool = False
    #: The IPv6 half of a dual-stack or IPv6-only pool; None for an IPv4-only one.
    v6: PoolConfig6 | None = None


def _routes(fields: Fields, v4: Mapping[str, Any]) -> tuple[ClasslessRoute, ...]:
    routes = []
    for path, item in fields.items(v4, "routes", f"{V4}.routes"):
        if not isinstance(item, Mapping):
            fields.problem(path, f"must be an object with destination and gateway, not {item!r}")
            continue
        destination = fields.field_network(
            item, "destination", f"{path}.destination", required=True
        )
        gateway = fields.field_address(item, "gateway", f"{path}.gateway", required=True)
        if destination is not None and gateway is not None:
            routes.append(ClasslessRoute(destination=destination, gateway=gateway))
    return tuple(routes)


def _ntp(fields: Fields, v4: Mapping[str, Any]) -> tuple[tuple[IPv4Address, ...], tuple[str, ...]]:
    addresses: list[IPv4Address] = []
    names: list[str] = []
    for path, item in fields.items(v4, "ntp", f"{V4}.ntp"):
        what = "an IPv4 address or a DNS name"
        text = fields.text(item, path, pattern=NTP_SERVER, what=what, max_length=DNS_NAME_MAX)
        if text is None:
            continue
        try:
            addresses.append(IPv4Address(text))
        except ValueError:
            names.append(text)
    return tuple(addresses), tuple(names)


def _domain_search(fields: Fields, config: Mapping[str, Any], prefix: str = V4) -> tuple[str, ...]:
    found = []
    for path, item in fields.items(config, "domainsearch", f"{prefix}.domainsearch"):
        name = fields.text(item, path, pattern=DNS_NAME, what="a DNS name", max_length=DNS_NAME_MAX)
        if name is not None:
            found.append(name.rstrip("."))
    return tuple(found)


def _range(fields: Fields, v4: Mapping[str, Any]) -> PoolSpec | None:
    """The address part; its cross-field rules only once its fields read."""
    known = len(fields.problems)
    subnet = fields.field_network(v4, "subnet", f"{V4}.subnet", required=True)
    server_ip = fields.field_address(v4, "serverip", f"{V4}.serverip", required=True)
    router = fields.field_address(v4, "router", f"{V4}.router")
    pool = fields.mapping(v4, "pool", f"{V4}.pool", required=True)
    if pool is None:
        return None
    start = fields.field_address(pool, "start", f"{V4}.pool.start", required=True)
    end = fields.field_address(pool, "end", f"{V4}.pool.end", required=True)
    exclude = [
        fields.address(item, path)
        for path, item in fields.items(pool, "exclude", f"{V4}.pool.exclude")
    ]
    if len(fields.problems) > known or subnet is None or start is None or end is None:
        return None
    try:
        return PoolSpec(
            subnet=subnet,
            start=start,
            end=end,
            server_ip=server_ip,
            router=router,
            exclude=tuple(address for address in exclude if address is not None),
        )
    except InvalidPool as exc:
        fields.problems.append(str(exc))
        return None


def _options(
    fields: Fields, v4: Mapping[str, Any], spec: PoolSpec | None, ntp: tuple[IPv4Address, ...]
) -> PoolOptions | None:
    dns = [fields.address(item, path) for path, item in fields.items(v4, "dns", f"{V4}.dns")]
    domain_name = fields.field_text(
        v4,
        "domainname",
        f"{V4}.domainname",
        pattern=DNS_NAME,
        what="a DNS name",
        max_length=DNS_NAME_MAX,
    )
    domain_search = _domain_search(fields, v4)
    low, high = LEASE_TIME_RANGE
    lease_time = fields.integer(v4, "leasetime", f"{V4}.leasetime", low=low, high=high)
    low, high = MTU_RANGE
    mtu = fields.integer(v4, "mtu", f"{V4}.mtu", low=low, high=high)
    routes = _routes(fields, v4)
    if fields.problems or spec is None:
        return None
    assert spec.server_ip is not None  # required: the range reads only with it
    return PoolOptions(
        server_ip=spec.server_ip,
        subnet=spec.subnet,
        router=spec.router,
        dns=tuple(address for address in dns if address is not None),
        domain_name=domain_name,
        domain_search=domain_search,
        ntp=ntp,
        lease_time=DEFAULT_LEASE_TIME if lease_time is None else lease_time,
        mtu=mtu,
        routes=routes,
    )


_FAMILY_MISSING = (
    "is missing, and spec.ipv6config too: a pool has ipv4config (DHCP), ipv6config (DHCPv6) or both"
)


def _ntp6(fields: Fields, v6: Mapping[str, Any]) -> tuple[tuple[IPv6Address, ...], tuple[str, ...]]:
    addresses: list[IPv6Address] = []
    names: list[str] = []
    for path, item in fields.items(v6, "ntp", f"{V6}.ntp"):
        what = "an IPv6 address or a DNS name"
        text = fields.text(item, path, pattern=NTP_SERVER6, what=what, max_length=DNS_NAME_MAX)
        if text is None:
            continue
        # The pattern's two halves never overlap: a name has no ':', an address has.
        if ":" in text:
            addresses.append(IPv6Address(text))
        else:
            names.append(text.rstrip("."))
    return tuple(addresses), tuple(names)


def _range6(fields: Fields, v6: Mapping[str, Any]) -> PoolSpec6 | None:
    """The IPv6 address part; `PoolSpec6`'s rules only once its fields read."""
    known = len(fields.problems)
    subnet = fields.field_network6(v6, "subnet", f"{V6}.subnet", required=True)
    server_ip = fields.field_address6(v6, "serverip", f"{V6}.serverip")
    router = fields.field_address6(v6, "router", f"{V6}.router")
    pool = fields.mapping(v6, "pool", f"{V6}.pool", required=True)
    if pool is None:
        return None
    start = fields.field_address6(pool, "start", f"{V6}.pool.start", required=True)
    end = fields.field_address6(pool, "end", f"{V6}.pool.end", required=True)
    exclude = [
        fields.address6(item, path)
        for path, item in fields.items(pool, "exclude", f"{V6}.pool.exclude")
    ]
    if len(fields.problems) > known or subnet is None or start is None or end is None:
        return None
    try:
        return PoolSpec6(
            subnet=subnet,
            start=start,
            end=end,
            server_ip=server_ip,
            router=router,
            exclude=tuple(address for address in exclude if address is not None),
        )
    except InvalidPool as exc:
        fields.problems.append(str(exc))
        return None


def _v6(fields: Fields, spec: Mapping[str, Any]) -> PoolConfig6 | None:
    """The `ipv6config` of a dual-stack or IPv6-only pool; None when absent or wrong."""
    v6 = fields.mapping(spec, "ipv6config", V6)
    if v6 is None:
        return None
    known = len(fields.problems)
    pool_spec = _range6(fields, v6)
    dns = [fields.address6(item, path) for path, item in fields.items(v6, "dns", f"{V6}.dns")]
    domain_search = _domain_search(fields, v6, V6)
    ntp, ntp_names = _ntp6(fields, v6)
    lifetimes = len(fields.problems)
    low, high = LIFETIME_RANGE
    preferred = fields.integer(
        v6, "preferredlifetime", f"{V6}.preferredlifetime", low=low, high=high
    )
    valid = fields.integer(v6, "validlifetime", f"{V6}.validlifetime", low=low, high=high)
    preferred = DEFAULT_PREFERRED_LIFETIME if preferred is None else preferred
    valid = DEFAULT_VALID_LIFETIME if valid is None else valid
    if len(fields.problems) == lifetimes and preferred > valid:
        # RFC 8415 21.6: a client discards an address whose preferred lifetime
        # is greater than its valid lifetime.
        fields.problem(
            f"{V6}.preferredlifetime",
            f"{preferred} is greater than {V6}.validlifetime {valid}"
            + ("" if v6.get("validlifetime") is not None else " (its default)"),
        )
    router_advertisement = fields.boolean(v6, "routeradvertisement", f"{V6}.routeradvertisement")
    if len(fields.problems) > known or pool_spec is None:
        return None
    return PoolConfig6(
        spec=pool_spec,
        options=PoolOptions6(
            subnet=pool_spec.subnet,
            dns=tuple(address for address in dns if address is not None),
            domain_search=domain_search,
            ntp=ntp,
            ntp_names=ntp_names,
            preferred_lifetime=preferred,
            valid_lifetime=valid,
        ),
        router_advertisement=bool(router_advertisement),
    )


def parse_ippool(body: Mapping[str, Any]) -> PoolConfig:
    """The PoolConfig of an IPPool object; InvalidPool lists what is wrong."""
    fields = Fields()
    name = str((body.get("metadata") or {}).get("name", "?"))
    spec = fields.mapping(body, "spec", "spec", required=True)
    if spec is None:
        raise InvalidPool("; ".join(fields.problems))
    network = fields.field_text(
        spec,
        "networkname",
        "spec.networkname",
        required=True,
        pattern=NETWORK_NAME,
        what="a network name such as default/net1",
        max_length=NETWORK_NAME_MAX,
    )
    interface = fields.field_text(
        spec, "bindinterface", "spec.bindinterface", pattern=INTERFACE, what="an interface name"
    )
    paused = fields.boolean(spec, "paused", "spec.paused")
    v4 = fields.mapping(spec, "ipv4config", V4)
    if v4 is None and spec.get("ipv4config") is None and spec.get("ipv6config") is None:
        fields.problem(V4, _FAMILY_MISSING)
    pool_spec: PoolSpec | None = None
    options: PoolOptions | None = None
    ntp_names: tuple[str, ...] = ()
    if v4 is not None:
        pool_spec = _range(fields, v4)
        ntp_addresses, ntp_names = _ntp(fields, v4)
        options = _options(fields, v4, pool_spec, ntp_addresses)
    v6 = _v6(fields, spec)
    if fields.problems or network is None or (options is None and v6 is None):
        raise InvalidPool("; ".join(fields.problems))
    return PoolConfig(
        name=name,
        # A bare NAD name in a pool means the 'default' namespace, as Multus reads it.
        network=network if "/" in network else f"default/{network}",
        interface=DEFAULT_INTERFACE if interface is None else interface,
        spec=pool_spec,
        options=options,
        ntp_names=ntp_names,
        paused=bool(paused),
        v6=v6,
    )
