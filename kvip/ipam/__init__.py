"""Pure IP address allocator for IPPool ranges: no I/O, no trio, no Kubernetes.

`PoolSpec` says what a pool's range is and validates it; an `Allocator` says
who holds which address of it. Errors derive from `IpamError`.
"""

from kvip.ipam._allocator import Allocator
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

__all__ = [
    "AddressExcluded",
    "AddressOutOfRange",
    "AddressTaken",
    "Allocator",
    "ExclusionReason",
    "InvalidPool",
    "IpamError",
    "Owner",
    "PoolExhausted",
    "PoolSpec",
]
