"""Pure IP address allocator for IPPool ranges: no I/O, no trio, no Kubernetes.

`PoolSpec` says what a pool's IPv4 range is and validates it; an `Allocator`
says who holds which address of it. `PoolSpec6` and `Allocator6` are the same
for IPv6, up to a /64. Errors derive from `IpamError`.
"""

from kvip.ipam._allocator import Allocator, Allocator6
from kvip.ipam._errors import (
    AddressExcluded,
    AddressOutOfRange,
    AddressTaken,
    ExclusionReason,
    InvalidPool,
    IpamError,
    Owner,
    PoolExhausted,
)
from kvip.ipam._spec import PoolSpec
from kvip.ipam._spec6 import PoolSpec6

__all__ = [
    "AddressExcluded",
    "AddressOutOfRange",
    "AddressTaken",
    "Allocator",
    "Allocator6",
    "ExclusionReason",
    "InvalidPool",
    "IpamError",
    "Owner",
    "PoolExhausted",
    "PoolSpec",
    "PoolSpec6",
]
