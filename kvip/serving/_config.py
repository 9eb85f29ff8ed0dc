"""What a pool tells its clients: the DHCP options of one IPPool."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from protocol import ClasslessRoute

#: RFC 2131 4.4.5: T1 defaults to half the lease, T2 to 0.875 of it.
RENEWAL_FRACTION = 0.5
REBINDING_FRACTION = 0.875


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolOptions:
    """The configuration a pool hands out with every address.

    NTP servers are addresses here: names in the IPPool are resolved by the
    pool actor before they reach this value (RFC 2132 8.3 carries addresses).
    """

    server_ip: IPv4Address
    subnet: IPv4Network
    router: IPv4Address | None = None
    dns: tuple[IPv4Address, ...] = ()
    domain_name: str | None = None
    domain_search: tuple[str, ...] = ()
    ntp: tuple[IPv4Address, ...] = ()
    lease_time: int = 3600
    mtu: int | None = None
    routes: tuple[ClasslessRoute, ...] = ()

    @property
    def renewal_time(self) -> int:
        return int(self.lease_time * RENEWAL_FRACTION)

    @property
    def rebinding_time(self) -> int:
        return int(self.lease_time * REBINDING_FRACTION)

    @property
    def classless_routes(self) -> tuple[ClasslessRoute, ...]:
        """Option 121 as sent: RFC 3442 clients ignore option 3 when they get
        121, so the default route via the router is added unless one is listed."""
        if not self.routes:
            return ()
        has_default = any(route.destination.prefixlen == 0 for route in self.routes)
        if self.router is None or has_default:
            return self.routes
        default = ClasslessRoute(destination=IPv4Network("0.0.0.0/0"), gateway=self.router)
        return (*self.routes, default)


def server_identity(
    server_ip: IPv4Address, subnet: IPv4Network, found: IPv4Address | None
) -> IPv4Address:
    """The server identifier (option 54) a replica answers with: the address it
    `found` on the pool's interface when that lies in the pool's subnet (each
    replica its own, so a client's unicast renewal and a relay reach the one
    that answered), else the IPPool's `serverip` (kubevirt-ip-helper's single
    server, whose address the interface may not show)."""
    if (
        found is not None
        and found in subnet
        and found
        not in (
            subnet.network_address,
            subnet.broadcast_address,
        )
    ):
        return found
    return server_ip


@dataclass(frozen=True, slots=True)
class Reservation:
    """The fixed address of one MAC, and the VM it belongs to (option 12)."""

    ip: IPv4Address
    hostname: str | None = None
