"""kvip.ipam's public names, pinned: other layers are written against them."""

from __future__ import annotations

import kvip.ipam

PUBLIC = {
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
}


def test_public_names_are_exactly_the_pinned_ones() -> None:
    assert set(kvip.ipam.__all__) == PUBLIC
    visible = {name for name in dir(kvip.ipam) if not name.startswith("_")}
    assert visible == PUBLIC


def test_every_error_is_an_ipam_error() -> None:
    for name in PUBLIC:
        value = getattr(kvip.ipam, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, kvip.ipam.IpamError), name
