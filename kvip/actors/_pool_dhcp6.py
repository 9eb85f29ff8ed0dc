"""A dual-stack pool's DHCPv6 service: its sockets and packet thread, beside
the DHCP ones and for as long as they serve (a mixin of PoolActor, in the
trio thread; its fields are named below).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable

import trio

from kvip.actors._dhcp6_socket import Dhcp6Sockets
from kvip.actors._packet_thread6 import PacketThread6
from kvip.actors._pool_book import PoolBook
from kvip.serving import PoolConfig

log = logging.getLogger("kvip.actors._pool")

#: Opens a dual-stack pool's DHCPv6 sockets on an interface.
Socket6Factory = Callable[[str], Dhcp6Sockets]
#: Seconds between tries to open the DHCPv6 sockets of an interface.
SOCKET6_RETRY = 5.0


class PoolDhcp6:
    # (No __slots__: see PoolAddress.)
    config: PoolConfig
    book: PoolBook
    socket6_factory: Socket6Factory
    on_change: Callable[[], None] | None
    on_warning: Callable[[str, str], None] | None
    no_dhcp6: str | None
    _packets6: PacketThread6 | None
    _lock: threading.Lock
    _thread_limiter: trio.CapacityLimiter

    #: PoolActor's: wakes the actor to take the notices of either family.
    _post_notices: Callable[[], None]

    async def _serve_dhcp6(self) -> None:
        """Answer DHCPv6 beside DHCP, until cancelled. An interface where the
        sockets cannot open (no IPv6 on it, say) leaves DHCP served, and is said
        (status, log, Event) and tried again every SOCKET6_RETRY seconds."""
        book6 = self.book.v6
        assert book6 is not None
        while True:
            try:
                sockets = self.socket6_factory(self.config.interface)
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
        )
        log.info("pool %s serving DHCPv6 on %s", self.config.name, self.config.interface)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    functools.partial(
                        trio.to_thread.run_sync, packets.run, limiter=self._thread_limiter
                    )
                )
                try:
                    await trio.sleep_forever()
                finally:
                    packets.stop()
        finally:
            self._packets6 = None
            sockets.close()
