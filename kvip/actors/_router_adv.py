"""Router Advertisements on a pool's interface (`ipv6config.routeradvertisement`),
for links where no router tells hosts to use DHCPv6. The advertisement itself
is built in kvip/serving/_router_adv.py.

Timing follows RFC 4861 6.2.4 and 6.2.6: the first MAX_INITIAL advertisements
go out at most INITIAL_INTERVAL apart, then one every 0.75 to 1.0 times
`interval` (MinRtrAdvInterval may be up to 0.75 of MaxRtrAdvInterval). A
Router Solicitation is answered with a multicast advertisement after a random
delay of up to MAX_RA_DELAY, but never sooner than MIN_DELAY_BETWEEN_RAS after
the previous one: a flood of solicitations costs one advertisement per three
seconds.
"""

from __future__ import annotations

import fcntl
import logging
import random
import socket
import struct
from ipaddress import IPv6Address, IPv6Network
from typing import cast

import trio

from kvip.actors._dhcp6_socket import in_netns
from kvip.serving import Advertisement, build_router_advertisement, is_router_solicitation
from kvip.serving._router_adv import (
    DEFAULT_PREFERRED_LIFETIME,
    DEFAULT_VALID_LIFETIME,
    ND_HOP_LIMIT,
    ROUTER_SOLICITATION,
)

log = logging.getLogger(__name__)

ALL_NODES = IPv6Address("ff02::1")
ALL_ROUTERS = IPv6Address("ff02::2")
DEFAULT_INTERVAL = 200.0
#: MaxRtrAdvInterval's bounds (RFC 4861 6.2.1).
MIN_INTERVAL = 4.0
MAX_INTERVAL = 1800.0
MAX_INITIAL = 3
INITIAL_INTERVAL = 16.0
MAX_RA_DELAY = 0.5
MIN_DELAY_BETWEEN_RAS = 3.0

_ICMP6_FILTER = 1
_SIOCGIFHWADDR = 0x8927


def open_router_socket(interface: str) -> tuple[socket.socket, int, bytes]:
    """A raw ICMPv6 socket on `interface` that sends with hop limit 255 and
    hears only Router Solicitations (to ff02::2 or to us), with the
    interface's index and MAC. OSError when the interface does not exist."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode() + b"\0")
        index = socket.if_nametoindex(interface)
        # Linux's ICMP6_FILTER: a set bit blocks that type.
        blocked = [0xFFFFFFFF] * 8
        blocked[ROUTER_SOLICITATION >> 5] &= ~(1 << (ROUTER_SOLICITATION & 31))
        sock.setsockopt(socket.IPPROTO_ICMPV6, _ICMP6_FILTER, struct.pack("8I", *blocked))
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, ND_HOP_LIMIT)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ND_HOP_LIMIT)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
        group = ALL_ROUTERS.packed + struct.pack("@I", index)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, group)
        request = struct.pack("256s", interface.encode()[:15])
        mac = fcntl.ioctl(sock.fileno(), _SIOCGIFHWADDR, request)[18:24]
    except BaseException:
        sock.close()
        raise
    return sock, index, mac


def hop_limit_of(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    for level, kind, data in ancillary:
        if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_HOPLIMIT and len(data) >= 4:
            hop_limit: int = struct.unpack("@i", data[:4])[0]
            return hop_limit
    return None


async def advertise_routes(
    interface: str,
    subnet: IPv6Network,
    *,
    interval: float = DEFAULT_INTERVAL,
    netns: str | None = None,
    valid_lifetime: int = DEFAULT_VALID_LIFETIME,
    preferred_lifetime: int = DEFAULT_PREFERRED_LIFETIME,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Advertise `subnet` on `interface` (in /run/netns/`netns`, None: our own
    namespace) until cancelled: Managed and Other flags, the prefix on-link
    without autonomous addressing, router lifetime 0. Started once the socket
    is open (OSError before that: no such interface, no privilege)."""
    if not MIN_INTERVAL <= interval <= MAX_INTERVAL:
        raise ValueError(
            f"an advertisement interval is {MIN_INTERVAL} to {MAX_INTERVAL} s (RFC 4861 6.2.1),"
            f" not {interval}"
        )
    with in_netns(netns):
        raw, index, mac = open_router_socket(interface)
    message = build_router_advertisement(
        Advertisement(
            prefix=subnet,
            source_mac=mac,
            valid_lifetime=valid_lifetime,
            preferred_lifetime=preferred_lifetime,
        )
    )
    destination = (str(ALL_NODES), 0, 0, index)
    with trio.socket.from_stdlib_socket(raw) as sock:
        task_status.started()
        sent = 0
        last_sent = -MIN_DELAY_BETWEEN_RAS
        next_at = trio.current_time()
        ancillary_space = socket.CMSG_SPACE(4)
        while True:
            with trio.move_on_at(next_at):
                data, ancillary, _, source = await sock.recvmsg(1500, ancillary_space)
                hop_limit = hop_limit_of(ancillary)
                host, _, _, _ = cast("tuple[str, int, int, int]", source)
                sender = IPv6Address(host.split("%")[0])
                if hop_limit is not None and is_router_solicitation(
                    data, hop_limit=hop_limit, source=sender
                ):
                    now = trio.current_time()
                    answer_at = max(
                        now + random.uniform(0, MAX_RA_DELAY), last_sent + MIN_DELAY_BETWEEN_RAS
                    )
                    next_at = min(next_at, answer_at)
                continue
            try:
                await sock.sendto(message, destination)
            except OSError as exc:  # the link is down or gone; try again at the next turn
                log.warning("router advertisement on %s failed: %s", interface, exc)
            sent += 1
            last_sent = trio.current_time()
            if sent < MAX_INITIAL:
                next_at = last_sent + min(INITIAL_INTERVAL, interval)
            else:
                next_at = last_sent + random.uniform(0.75 * interval, interval)
