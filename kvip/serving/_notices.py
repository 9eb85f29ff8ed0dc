"""What a pool's clients tell it that the pool's actor must act on, and MAC keys."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address


@dataclass(frozen=True, slots=True)
class Declined:
    """A client said its reserved address (IPv4 or IPv6) is in use by someone else."""

    mac: str
    ip: IPv4Address | IPv6Address
    message: str | None


@dataclass(frozen=True, slots=True)
class Released:
    mac: str
    ip: IPv4Address | IPv6Address


Notice = Declined | Released


def mac_bytes(mac: str) -> bytes:
    """b'RT\\x00\\xaa\\xbb\\xcc' from '52:54:00:aa:bb:cc' (any case, ':' or '-')."""
    return bytes.fromhex(mac.replace(":", "").replace("-", ""))
