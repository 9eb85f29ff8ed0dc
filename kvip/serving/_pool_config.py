"""An IPPool object, read into the values a pool actor works with.

Everything an operator can get wrong is checked here and reported as
`InvalidPool` with a message that names the field, so that a bad pool gets
a status condition instead of taking anything down.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import AddressValueError, IPv4Address, IPv4Network, NetmaskValueError
from typing import Any

from kvip.ipam import InvalidPool, PoolSpec
from kvip.serving._config import PoolOptions
from protocol import ClasslessRoute

DEFAULT_INTERFACE = "eth1"
#: kubevirt-ip-helper's CRD has no default lease; an hour is a common one.
DEFAULT_LEASE_TIME = 3600


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolConfig:
    """One IPPool: where it serves, what it allocates, what it tells clients."""

    name: str
    network: str
    interface: str
    spec: PoolSpec
    options: PoolOptions
    #: NTP servers given by name; the pool actor resolves them.
    ntp_names: tuple[str, ...] = ()
    paused: bool = False


def _address(value: Any, field: str) -> IPv4Address:
    try:
        return IPv4Address(str(value).strip())
    except (AddressValueError, ValueError) as exc:
        raise InvalidPool(f"{field}: {value!r} is not an IPv4 address") from exc


def _addresses(values: Any, field: str) -> tuple[IPv4Address, ...]:
    if values is None:
        return ()
    if not isinstance(values, list):
        raise InvalidPool(f"{field}: expected a list of IPv4 addresses")
    return tuple(_address(v, f"{field}[{i}]") for i, v in enumerate(values))


def _network(value: Any, field: str) -> IPv4Network:
    try:
        return IPv4Network(str(value).strip(), strict=False)
    except (AddressValueError, NetmaskValueError, ValueError) as exc:
        raise InvalidPool(f"{field}: {value!r} is not an IPv4 network in CIDR form") from exc


def _routes(values: Any, router: IPv4Address | None) -> tuple[ClasslessRoute, ...]:
    if values is None:
        return ()
    if not isinstance(values, list):
        raise InvalidPool("ipv4config.routes: expected a list of {destination, gateway}")
    routes = []
    for i, item in enumerate(values):
        if not isinstance(item, Mapping) or "destination" not in item:
            raise InvalidPool(f"ipv4config.routes[{i}]: needs a destination")
        destination = _network(item["destination"], f"ipv4config.routes[{i}].destination")
        gateway_text = item.get("gateway")
        if gateway_text is None and router is None:
            raise InvalidPool(f"ipv4config.routes[{i}]: needs a gateway (the pool has no router)")
        gateway = (
            _address(gateway_text, f"ipv4config.routes[{i}].gateway")
            if gateway_text is not None
            else router
        )
        assert gateway is not None
        routes.append(ClasslessRoute(destination=destination, gateway=gateway))
    return tuple(routes)


def _ntp(values: Any) -> tuple[tuple[IPv4Address, ...], tuple[str, ...]]:
    if values is None:
        return (), ()
    if not isinstance(values, list):
        raise InvalidPool("ipv4config.ntp: expected a list of names or IPv4 addresses")
    addresses: list[IPv4Address] = []
    names: list[str] = []
    for value in values:
        text = str(value).strip()
        try:
            addresses.append(IPv4Address(text))
        except (AddressValueError, ValueError):
            names.append(text)
    return tuple(addresses), tuple(names)


def _int(value: Any, field: str, *, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidPool(f"{field}: {value!r} is not a whole number")
    if not low <= value <= high:
        raise InvalidPool(f"{field}: {value} is outside {low}..{high}")
    return value


def parse_ippool(body: Mapping[str, Any]) -> PoolConfig:
    """The PoolConfig of an IPPool object; InvalidPool says what is wrong."""
    name = str(body.get("metadata", {}).get("name", "?"))
    spec = body.get("spec")
    if not isinstance(spec, Mapping):
        raise InvalidPool("spec is missing")
    network = spec.get("networkname")
    if not isinstance(network, str) or not network.strip():
        raise InvalidPool("spec.networkname is missing")
    v4 = spec.get("ipv4config")
    if not isinstance(v4, Mapping):
        raise InvalidPool("spec.ipv4config is missing")
    pool = v4.get("pool")
    if not isinstance(pool, Mapping):
        raise InvalidPool("ipv4config.pool is missing (start, end)")
    for required in ("serverip", "subnet"):
        if not v4.get(required):
            raise InvalidPool(f"ipv4config.{required} is missing")
    for required in ("start", "end"):
        if not pool.get(required):
            raise InvalidPool(f"ipv4config.pool.{required} is missing")

    subnet = _network(v4["subnet"], "ipv4config.subnet")
    server_ip = _address(v4["serverip"], "ipv4config.serverip")
    router = _address(v4["router"], "ipv4config.router") if v4.get("router") else None
    exclude = _addresses(pool.get("exclude"), "ipv4config.pool.exclude")
    pool_spec = PoolSpec(
        subnet=subnet,
        start=_address(pool["start"], "ipv4config.pool.start"),
        end=_address(pool["end"], "ipv4config.pool.end"),
        server_ip=server_ip,
        router=router,
        exclude=exclude,
    )

    lease_time = v4.get("leasetime")
    mtu = v4.get("mtu")
    ntp_addresses, ntp_names = _ntp(v4.get("ntp"))
    search = v4.get("domainsearch") or []
    if not isinstance(search, list):
        raise InvalidPool("ipv4config.domainsearch: expected a list of domain names")
    options = PoolOptions(
        server_ip=server_ip,
        subnet=subnet,
        router=router,
        dns=_addresses(v4.get("dns"), "ipv4config.dns"),
        domain_name=str(v4["domainname"]).strip() if v4.get("domainname") else None,
        domain_search=tuple(str(s).strip().rstrip(".") for s in search if str(s).strip()),
        ntp=ntp_addresses,
        lease_time=(
            DEFAULT_LEASE_TIME
            if lease_time is None
            else _int(lease_time, "ipv4config.leasetime", low=1, high=0xFFFFFFFF)
        ),
        mtu=None if mtu is None else _int(mtu, "ipv4config.mtu", low=68, high=65535),
        routes=_routes(v4.get("routes"), router),
    )
    interface = str(spec.get("bindinterface") or DEFAULT_INTERFACE).strip()
    if not interface or len(interface) > 15 or "/" in interface:
        raise InvalidPool(f"spec.bindinterface: {interface!r} is not an interface name")
    return PoolConfig(
        name=name,
        # A bare NAD name in a pool means the 'default' namespace, as Multus reads it.
        network=network.strip() if "/" in network else f"default/{network.strip()}",
        interface=interface,
        spec=pool_spec,
        options=options,
        ntp_names=ntp_names,
        paused=bool(spec.get("paused", False)),
    )
