"""A pool's sockets while it serves: the DHCP socket and its packet thread (a
replica answers only from an address of its own in the pool's subnet, so the
socket waits for one), DHCPv6 beside it on a dual-stack pool, or DHCPv6 alone
on an IPv6-only one. A mixin of PoolActor, in the trio thread.
"""

from __future__ import annotations

import functools
import logging
import socket
import threading
from collections.abc import Callable, Coroutine
from ipaddress import IPv4Address
from typing import Any

import trio

from kvip.actors._dhcp_socket import interface_address
from kvip.actors._packet_thread import PacketThread
from kvip.actors._pool_book import PoolBook
from kvip.serving import PoolConfig

log = logging.getLogger("kvip.actors._pool")

#: Seconds between looks at an interface that has no address to answer from.
ADDRESS_POLL = 5.0

SocketFactory = Callable[[str], socket.socket]


class PoolWire:
    # (No __slots__: PoolActor's dataclass holds the fields; see PoolAddress.)
    config: PoolConfig
    book: PoolBook
    socket_factory: SocketFactory
    serving: bool
    _socket_scope: trio.CancelScope | None
    _socket_closed: trio.Event | None
    _packets: PacketThread | None
    _lock: threading.Lock
    _thread_limiter: trio.CapacityLimiter
    _usable: Callable[[IPv4Address | None], bool]
    _found_address: Callable[[IPv4Address | None], None]
    _post_notices: Callable[[], None]
    _unknown_clients: Callable[[list[str]], None]
    _serve_dhcp6: Callable[[], Coroutine[Any, Any, None]]

    async def _serve_socket(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        responder = self.book.responder
        if self.config.options is None or responder is None:
            await self._serve_only6(task_status=task_status)
            return
        name = self.config.name
        closed = self._socket_closed = trio.Event()
        started = False
        try:
            while True:
                sock = self.socket_factory(self.config.interface)
                try:
                    found = interface_address(sock, self.config.interface)
                except OSError as exc:  # cannot be told: answer as serverip
                    log.debug("pool %s: no address of %s to tell: %s", name,
                              self.config.interface, exc)  # fmt: skip
                    found = self.config.options.server_ip
                if self._usable(found):
                    break
                # No address to answer from: not serving, and said so; the CNI (or
                # an operator) may add one, so look again in a while.
                sock.close()
                if not started:
                    task_status.started()
                    started = True
                await trio.sleep(ADDRESS_POLL)
            with sock, trio.CancelScope() as scope:
                self._socket_scope = scope
                self._found_address(found)
                self.serving = True
                log.info(
                    "pool %s serving DHCP on %s as %s",
                    name,
                    self.config.interface,
                    responder.options.server_ip,
                )
                packets = self._packets = PacketThread(
                    name,
                    sock,
                    responder,
                    self._lock,
                    self._post_notices,
                    trio.lowlevel.current_trio_token(),
                    sighted=self._unknown_clients,
                )
                try:
                    async with trio.open_nursery() as nursery:
                        # Not abandoned on cancel: the socket closes only after the
                        # thread let go of it.
                        nursery.start_soon(
                            functools.partial(
                                trio.to_thread.run_sync, packets.run, limiter=self._thread_limiter
                            )
                        )
                        if self.book.v6 is not None:
                            nursery.start_soon(self._serve_dhcp6)
                        if not started:
                            task_status.started()
                        try:
                            await trio.sleep_forever()
                        finally:
                            packets.stop()
                finally:
                    self.serving = False
                    self._socket_scope = None
                    self._packets = None
        finally:
            closed.set()

    async def _serve_only6(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """An IPv6-only pool: DHCPv6 (and its Router Advertisements) alone."""
        closed = self._socket_closed = trio.Event()
        try:
            with trio.CancelScope() as scope:
                self._socket_scope = scope
                self.serving = True
                log.info(
                    "pool %s serving DHCPv6 only on %s", self.config.name, self.config.interface
                )
                task_status.started()
                try:
                    await self._serve_dhcp6()
                finally:
                    self.serving = False
                    self._socket_scope = None
        finally:
            closed.set()
