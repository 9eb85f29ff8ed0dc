"""What an IPPool's IPv6 range is: the `ipv6config` twin of `PoolSpec`."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network

from kvip.ipam._errors import AnyAddress, ExclusionReason, InvalidPool
from kvip.ipam._spec import exclusions_in_range, store_exclude_as_tuple

#: The largest subnet a pool may have: a /64 holds 2**64 addresses.
LONGEST_SUBNET = 64
# RFC 4291 2.6.1: the all-zeros interface identifier is the Subnet-Router
# anycast address, which every router of the link answers; RFC 6164 lets a
# /127 (and a /128 is a single host) use it like any other. `ipaddress`'s
# `IPv6Network.hosts()` follows the same rule.
_LONGEST_PREFIX_WITH_ANYCAST = 126
# Never handed to a VM: ::/8 holds the unspecified, loopback and IPv4-mapped
# addresses (and keeps every IPv6 range above every IPv4 one: no int of one
# family is ever in a range of the other); link-local addresses are each
# interface's own and multicast ones are not unicast.
_NOT_FOR_HOSTS = (
    IPv6Network("::/8"),
    IPv6Network("fe80::/10"),
    IPv6Network("ff00::/8"),
)
_LINK_LOCAL = IPv6Network("fe80::/10")

SUBNET = "spec.ipv6config.subnet"
START = "spec.ipv6config.pool.start"
END = "spec.ipv6config.pool.end"
SERVER_IP = "spec.ipv6config.serverip"
ROUTER = "spec.ipv6config.router"
EXCLUDE = "spec.ipv6config.pool.exclude"


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolSpec6:
    """The address part of an IPPool's `ipv6config`: `Allocator6`'s input.

    The rules of `PoolSpec`, for IPv6: the range, server IP and router inside
    the subnet (server IP and router may instead be link-local, then there
    is nothing to exclude), start <= end, the subnet at most a /64 and made
    of global or unique-local unicast addresses, and no Subnet-Router anycast
    address in the range. IPv6 has no broadcast address. An invalid
    `PoolSpec6` cannot exist: `InvalidPool` lists every problem found.
    """

    subnet: IPv6Network
    start: IPv6Address
    end: IPv6Address
    server_ip: IPv6Address | None = None
    router: IPv6Address | None = None
    exclude: tuple[IPv6Address, ...] = ()

    def __post_init__(self) -> None:
        store_exclude_as_tuple(self, self.exclude, field=EXCLUDE, family="IPv6")
        problems = _problems(self)
        if problems:
            raise InvalidPool("; ".join(problems))

    @property
    def has_subnet_router_anycast(self) -> bool:
        """Whether the subnet's first address is its Subnet-Router anycast address."""
        return self.subnet.prefixlen <= _LONGEST_PREFIX_WITH_ANYCAST

    @property
    def size(self) -> int:
        """Addresses in [start, end], assignable or not: up to 2**64, exact."""
        return int(self.end) - int(self.start) + 1

    def exclusions(self) -> dict[IPv6Address, ExclusionReason]:
        """In-range addresses that are never handed out and why, in address order.

        As `PoolSpec.exclusions`: the server IP and the router always, the
        exclude list where it falls in the range; the Subnet-Router anycast
        address never appears, validation keeps it out of the range.
        """
        return exclusions_in_range(self)

    def boundary_reason(self, ip: AnyAddress) -> ExclusionReason | None:
        """SUBNET_ROUTER_ANYCAST if `ip` is the subnet's reserved first address.

        An address of the other family never is.
        """
        if self.has_subnet_router_anycast and ip == self.subnet.network_address:
            return ExclusionReason.SUBNET_ROUTER_ANYCAST
        return None


def _problems(spec: PoolSpec6) -> list[str]:
    subnet = spec.subnet
    if not isinstance(subnet, IPv6Network):
        return [f"{SUBNET} must be an IPv6 network, not {subnet!r}"]
    problems: list[str] = []
    if subnet.prefixlen < LONGEST_SUBNET:
        problems.append(f"{SUBNET} {subnet} is larger than a /{LONGEST_SUBNET}")
    reserved = next((block for block in _NOT_FOR_HOSTS if subnet.subnet_of(block)), None)
    if reserved is not None:
        problems.append(f"{SUBNET} {subnet} is inside {reserved}, which holds no addresses for VMs")
    for field, value, link_local_ok in (
        (START, spec.start, False),
        (END, spec.end, False),
        (SERVER_IP, spec.server_ip, True),
        (ROUTER, spec.router, True),
    ):
        if value is None and link_local_ok:
            continue
        if not isinstance(value, IPv6Address):
            problems.append(f"{field} must be an IPv6 address, not {value!r}")
        elif value not in subnet and not (link_local_ok and value in _LINK_LOCAL):
            problems.append(f"{field} {value} is outside the subnet {subnet}")
    problems += [
        f"{EXCLUDE}[{index}] {value!r} is not an IPv6 address"
        for index, value in enumerate(spec.exclude)
        if not isinstance(value, IPv6Address)
    ]
    if problems:
        return problems
    if spec.start > spec.end:
        problems.append(f"{START} {spec.start} is after {END} {spec.end}")
    elif spec.has_subnet_router_anycast and spec.start == subnet.network_address:
        problems.append(
            f"{START} {spec.start} is the Subnet-Router anycast address of {subnet}; "
            f"start at {spec.start + 1} or later"
        )
    return problems
