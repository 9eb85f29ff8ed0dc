"""What can go wrong when addresses are handed out, held or configured.

Every message is written for the operator reading an IPPool's status or a
vmnetcfg's status: it names the address, the range and, where there is one,
the holder or the reason.
"""

from __future__ import annotations

import enum
from ipaddress import IPv4Address, IPv6Address
from typing import NewType, TypeAlias

# Who holds an address. Opaque to the allocator: the pool actor uses e.g.
# "default/vm1 [52:54:00:aa:bb:cc]"; one owner may hold several addresses.
Owner = NewType("Owner", str)

# Errors name addresses of either family: an IPv4 or an IPv6 pool raises them.
AnyAddress: TypeAlias = IPv4Address | IPv6Address


class ExclusionReason(enum.StrEnum):
    """Why an address inside the range is never handed out.

    When several apply, the first in this order is reported.
    """

    NETWORK = "network address"
    BROADCAST = "broadcast address"
    SUBNET_ROUTER_ANYCAST = "subnet-router anycast address"
    SERVER_IP = "server IP"
    ROUTER = "router"
    SPEC = "excluded by spec"

    @property
    def explanation(self) -> str:
        """The reason as the tail of a sentence about one address."""
        return _EXPLANATIONS[self]


_EXPLANATIONS = {
    ExclusionReason.NETWORK: "it is the subnet's network address",
    ExclusionReason.BROADCAST: "it is the subnet's broadcast address",
    ExclusionReason.SUBNET_ROUTER_ANYCAST: (
        "it is the subnet's Subnet-Router anycast address (RFC 4291 2.6.1)"
    ),
    ExclusionReason.SERVER_IP: "it is the pool's server IP",
    ExclusionReason.ROUTER: "it is the pool's router",
    ExclusionReason.SPEC: "it is in the pool's exclude list",
}


class IpamError(Exception):
    """Base class of every allocator error."""


class InvalidPool(IpamError):
    """The pool's spec cannot be served (bad text, range outside the subnet, ...)."""


class PoolExhausted(IpamError):
    """Every assignable address of the range is in use."""

    def __init__(self, *, start: AnyAddress, end: AnyAddress, capacity: int) -> None:
        self.start = start
        self.end = end
        self.capacity = capacity
        super().__init__(
            f"pool {start}-{end} is exhausted: all {capacity} assignable addresses are in use"
        )


class AddressTaken(IpamError):
    """The address is held by another owner."""

    def __init__(self, address: AnyAddress, *, holder: Owner) -> None:
        self.address = address
        self.holder = holder
        super().__init__(f"{address} is already held by {holder}")


class AddressOutOfRange(IpamError):
    """The address lies outside the pool's [start, end] range."""

    def __init__(self, address: AnyAddress, *, start: AnyAddress, end: AnyAddress) -> None:
        self.address = address
        self.start = start
        self.end = end
        super().__init__(f"{address} is outside the pool range {start}-{end}")


class AddressExcluded(IpamError):
    """The address is in the range but is never handed out."""

    def __init__(self, address: AnyAddress, *, reason: ExclusionReason) -> None:
        self.address = address
        self.reason = reason
        super().__init__(f"{address} cannot be assigned: {reason.explanation}")
