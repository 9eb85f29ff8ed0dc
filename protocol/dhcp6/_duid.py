"""DUIDs (RFC 8415 11): how a DHCPv6 client or server names itself."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from ._codes import DuidType

__all__ = ["Duid", "DuidEN", "DuidLL", "DuidLLT", "DuidUUID", "UnknownDuid"]

_ETHERNET = 1  # IANA hardware type


def _mac(hardware_type: int, address: bytes) -> str | None:
    if hardware_type == _ETHERNET and len(address) == 6:
        return address.hex(":")
    return None


@dataclass(frozen=True, slots=True)
class DuidLLT:
    """Link-layer address plus time (type 1): dhclient's and Windows' default."""

    hardware_type: int
    time: int  # seconds since 2000-01-01 UTC, mod 2**32
    link_layer_address: bytes

    duid_type = DuidType.LLT

    @property
    def mac(self) -> str | None:
        """The Ethernet address ("52:54:00:aa:bb:cc"), or None for other hardware."""
        return _mac(self.hardware_type, self.link_layer_address)


@dataclass(frozen=True, slots=True)
class DuidEN:
    """Assigned by vendor (type 2): an enterprise number and its identifier
    (systemd-networkd's default). Carries no link-layer address."""

    enterprise: int
    identifier: bytes

    duid_type = DuidType.EN

    @property
    def link_layer_address(self) -> None:
        return None

    @property
    def mac(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class DuidLL:
    """Link-layer address (type 3)."""

    hardware_type: int
    link_layer_address: bytes

    duid_type = DuidType.LL

    @property
    def mac(self) -> str | None:
        """The Ethernet address ("52:54:00:aa:bb:cc"), or None for other hardware."""
        return _mac(self.hardware_type, self.link_layer_address)


@dataclass(frozen=True, slots=True)
class DuidUUID:
    """A UUID (type 4, RFC 6355): dhcpcd can use the machine's. No link-layer address."""

    uuid: UUID

    duid_type = DuidType.UUID

    @property
    def link_layer_address(self) -> None:
        return None

    @property
    def mac(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class UnknownDuid:
    """A DUID type this codec does not know, kept byte for byte."""

    duid_type: int
    data: bytes

    @property
    def link_layer_address(self) -> None:
        return None

    @property
    def mac(self) -> None:
        return None


Duid = DuidLLT | DuidEN | DuidLL | DuidUUID | UnknownDuid
