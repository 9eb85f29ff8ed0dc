"""The NTP servers an IPPool names by host name: resolved in the background by
the pool actor (RFC 2132 8.3 carries addresses), never holding up the pool."""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from ipaddress import IPv4Address

import trio

log = logging.getLogger(__name__)

NTP_RESOLVE_TIMEOUT = 5.0

#: Resolves a host name to IPv4 addresses (the NTP servers given by name).
Resolver = Callable[[str], Awaitable[list[IPv4Address]]]


async def resolve_ipv4(name: str) -> list[IPv4Address]:
    infos = await trio.socket.getaddrinfo(name, None, family=socket.AF_INET)
    return [IPv4Address(info[4][0]) for info in infos]


async def resolve_ntp_names(
    pool: str, names: Sequence[str], resolve: Resolver
) -> tuple[IPv4Address, ...]:
    """Every address the names resolve to, in order, each once; a name that does
    not resolve (or not within NTP_RESOLVE_TIMEOUT) is logged and left out."""
    resolved: list[IPv4Address] = []
    for name in names:
        addresses: list[IPv4Address] = []
        with trio.move_on_after(NTP_RESOLVE_TIMEOUT) as scope:
            try:
                addresses = await resolve(name)
            except OSError as exc:
                log.warning("pool %s: NTP server %s does not resolve: %s", pool, name, exc)
        if scope.cancelled_caught:
            log.warning("pool %s: NTP server %s: no answer from the resolver", pool, name)
        resolved.extend(a for a in addresses if a not in resolved)
    return tuple(resolved)
