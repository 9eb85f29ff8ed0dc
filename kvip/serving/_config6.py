"""What a pool tells its DHCPv6 clients: the `ipv6config` twin of `PoolOptions`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network

from protocol.dhcp6 import DuidUUID

#: RFC 8415 21.4: T1 and T2 are commonly 0.5 and 0.8 of the preferred lifetime.
RENEWAL_FRACTION6 = 0.5
REBINDING_FRACTION6 = 0.8

#: The namespace of the UUIDs kvip's server DUIDs are made from (RFC 4122 name-based).
_DUID_NAMESPACE = uuid.UUID("7f3c0a52-2d0e-4b8e-9a51-6b1f1c3d9e21")


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolOptions6:
    """The configuration a pool hands out with every IPv6 address (RFC 8415 21,
    RFC 3646 for DNS, RFC 5908 for NTP). NTP servers given by name travel as
    the NTP option's FQDN suboption, so nothing is resolved for them."""

    subnet: IPv6Network
    dns: tuple[IPv6Address, ...] = ()
    domain_search: tuple[str, ...] = ()
    ntp: tuple[IPv6Address, ...] = ()
    ntp_names: tuple[str, ...] = ()
    preferred_lifetime: int = 3600
    valid_lifetime: int = 7200
    #: Answer a SOLICIT carrying Rapid Commit with a REPLY (RFC 8415 18.3.1).
    rapid_commit: bool = True

    @property
    def renewal_time(self) -> int:
        return int(self.preferred_lifetime * RENEWAL_FRACTION6)

    @property
    def rebinding_time(self) -> int:
        return int(self.preferred_lifetime * REBINDING_FRACTION6)


@dataclass(frozen=True, slots=True)
class Reservation6:
    """The fixed IPv6 address of one NIC (found by its MAC), and its VM's name."""

    ip: IPv6Address
    hostname: str | None = None


def pool_server_duid(pool: str) -> DuidUUID:
    """The server DUID of the IPPool named `pool`: a DUID-UUID made from the name,
    so every replica, before and after any restart, answers as the same server
    (a client's RENEW names it, and any replica may be the one to hear it)."""
    return DuidUUID(uuid.uuid5(_DUID_NAMESPACE, f"kvip/ippool/{pool}"))
