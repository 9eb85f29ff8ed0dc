"""A pool's DHCPv6 service: its sockets and packet thread, beside the DHCP
ones and for as long as they serve, or alone on an IPv6-only pool (a mixin of
PoolActor, in the trio thread; its fields are named below).

Without CAP_NET_RAW (or on an interface that carries no Ethernet frames)
the sockets read requests without their frames (`Dhcp6Mode.UDP`,
kvip/actors/_dhcp6_socket.py): clients known only by a
DUID-EN or DUID-UUID and a stable-privacy link-local address then get no
answer. The pool says so once, at WARNING, and shows its mode (`dhcp6_mode`,
/debug/pools).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import trio

from kvip.actors._dhcp6_socket import Dhcp6Mode, Dhcp6Sockets, in_netns
from kvip.actors._packet_thread6 import PacketThread6
from kvip.actors._pool_book import PoolBook
from kvip.actors._router_adv import advertise_routes
from kvip.serving import Counters, PoolConfig, PoolConfig6

log = logging.getLogger("kvip.actors._pool")

#: Seconds between tries to open the DHCPv6 sockets of an interface.
SOCKET6_RETRY = 5.0

#: What reading requests without their frames costs, said once per pool.
UDP_MODE_WARNING = (
    "pool %s: DHCPv6 on %s reads requests without their frames: no CAP_NET_RAW, so no"
    " packet socket. Clients are known by the MAC in their DUID (DUID-LL, DUID-LLT:"
    " dhclient, dhcpcd, dhcp6c, Windows) or in an EUI-64 link-local source address;"
    " a client with a DUID-EN or DUID-UUID (systemd-networkd's default) and a"
    " stable-privacy link-local (RFC 7217) gets no answer. Grant CAP_NET_RAW to read"
    " each request's frame MAC (deploy/components/net-raw, deploy/README.md)"
)
#: The same for an interface whose frames name no client MAC (said once per pool).
NOT_ETHERNET_WARNING = (
    "pool %s: DHCPv6 on %s reads requests without their frames: the interface carries"
    " no Ethernet frames, so none names a client MAC. Clients are known by the MAC in"
    " their DUID (DUID-LL, DUID-LLT) or in an EUI-64 link-local source address"
)


@dataclass(frozen=True, slots=True)
class Dhcp6Wire:
    """Where a pool's DHCPv6 sockets and Router Advertisements open:
    in the network namespace /run/netns/`netns` (None: the process's own)."""

    netns: str | None = None

    def open(self, interface: str) -> Dhcp6Sockets:
        with in_netns(self.netns):
            return Dhcp6Sockets(interface)

    async def advertise(
        self,
        interface: str,
        v6: PoolConfig6,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Router Advertisements for the pool's prefix, until cancelled."""
        await advertise_routes(
            interface,
            v6.spec.subnet,
            netns=self.netns,
            valid_lifetime=v6.options.valid_lifetime,
            preferred_lifetime=v6.options.preferred_lifetime,
            task_status=task_status,
        )


class PoolFigures6(NamedTuple):
    """A pool's DHCPv6 counters and IPv6 address figures."""

    counters: Counters
    used: int
    available: int


class PoolDhcp6:
    # (No __slots__: see PoolAddress.)
    config: PoolConfig
    book: PoolBook
    wire6: Dhcp6Wire
    on_change: Callable[[], None] | None
    on_warning: Callable[[str, str], None] | None
    no_dhcp6: str | None
    _packets6: PacketThread6 | None
    #: The UDP_MODE_WARNING was logged (once in the pool's life).
    _said_udp_mode: bool
    _lock: threading.Lock
    _thread_limiter: trio.CapacityLimiter

    #: PoolActor's: wakes the actor to take the notices of either family.
    _post_notices: Callable[[], None]
    #: PoolAddress's: first sightings of MACs without a reservation (Events).
    _unknown_clients: Callable[[list[str]], None]

    @property
    def dhcp6_mode(self) -> Dhcp6Mode | None:
        """How the pool reads DHCPv6 requests now; None while it serves no
        DHCPv6 (an IPv4-only pool, sockets not open)."""
        packets = self._packets6
        return None if packets is None else packets.sockets.mode

    @property
    def link_local(self) -> str | None:
        """The link-local address DHCPv6 answers from now (None: not serving it)."""
        packets = self._packets6
        found = packets.sockets.interface.link_local if packets is not None else None
        return str(found) if found is not None else None

    def figures6(self) -> PoolFigures6 | None:
        """The DHCPv6 counters and IPv6 address figures of a pool with ipv6config, as of
        one moment (None for an IPv4-only pool)."""
        with self._lock:
            book6 = self.book.v6
            if book6 is None:
                return None
            allocator = book6.allocator
            counters = book6.responder.counters.snapshot()
            return PoolFigures6(counters, allocator.used, allocator.available)

    async def _serve_dhcp6(self) -> None:
        """Answer DHCPv6 beside DHCP (or alone), until cancelled. An interface
        where the sockets cannot open (no IPv6 on it, say) leaves DHCP served, and is said
        (status, log, Event) and tried again every SOCKET6_RETRY seconds."""
        book6 = self.book.v6
        assert book6 is not None
        while True:
            try:
                sockets = self.wire6.open(self.config.interface)
                break
            except OSError as exc:
                problem = f"cannot answer DHCPv6 on {self.config.interface}: {exc}"
                if problem != self.no_dhcp6:
                    self.no_dhcp6 = problem
                    log.error("pool %s: %s", self.config.name, problem)
                    if self.on_warning is not None:
                        self.on_warning("NoDhcpv6", problem)
                    if self.on_change is not None:
                        self.on_change()
                await trio.sleep(SOCKET6_RETRY)
        if self.no_dhcp6 is not None:
            self.no_dhcp6 = None
            if self.on_change is not None:
                self.on_change()
        packets = self._packets6 = PacketThread6(
            self.config.name,
            sockets,
            book6.responder,
            self._lock,
            self._post_notices,
            trio.lowlevel.current_trio_token(),
            sighted=self._unknown_clients,
        )
        name, interface = self.config.name, self.config.interface
        log.info("pool %s serving DHCPv6 on %s (%s socket)", name, interface, sockets.mode.value)
        if sockets.mode is Dhcp6Mode.UDP and not self._said_udp_mode:
            self._said_udp_mode = True
            said = UDP_MODE_WARNING if sockets.interface.ethernet else NOT_ETHERNET_WARNING
            log.warning(said, name, interface)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    functools.partial(
                        trio.to_thread.run_sync, packets.run, limiter=self._thread_limiter
                    )
                )
                v6 = self.config.v6
                if v6 is not None and v6.router_advertisement:
                    nursery.start_soon(self._advertise, v6)
                try:
                    await trio.sleep_forever()
                finally:
                    packets.stop()
        finally:
            self._packets6 = None
            sockets.close()

    async def _advertise(self, v6: PoolConfig6) -> None:
        """Router Advertisements (ipv6config.routeradvertisement), so that guests
        start DHCPv6 by themselves on a link with no router saying so. One that
        cannot start (no privilege for the raw socket, say) is said and leaves
        DHCP and DHCPv6 served."""
        interface = self.config.interface
        try:
            await self.wire6.advertise(interface, v6)
        except OSError as exc:
            problem = f"cannot send Router Advertisements on {interface}: {exc}"
            if isinstance(exc, PermissionError):
                problem += " (a raw ICMPv6 socket needs CAP_NET_RAW)"
            log.error("pool %s: %s", self.config.name, problem)
            if self.on_warning is not None:
                self.on_warning("NoRouterAdvertisement", problem)
