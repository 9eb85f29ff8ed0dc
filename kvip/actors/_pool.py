"""PoolActor: the single owner of one IPPool's addresses and DHCP socket.

Nobody else touches the allocator, the MAC table or the socket: watchers and
the controller send messages to the actor's bounded inbox (`tell`, or `ask`
for an answer). The inbox runs as a trio task; the socket is served by a
packet thread of the actor's own (_packet_thread.py). What that thread learns
(DECLINE, RELEASE) comes back as a message in this inbox, so the actor's
error handling applies to it like to any other message.

When the actor ends (cancelled, crashed, failed to start), every pending and
later `ask` or `tell` fails with PoolStopped: no caller waits forever.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import Any, NamedTuple

import trio

from kvip.actors._dhcp_socket import open_dhcp_socket
from kvip.actors._messages import (
    ClaimAddress,
    HoldReplicaAddresses,
    Inspect,
    PoolMessage,
    Reconfigure,
    RestoreReservation,
    ServeReservation,
)
from kvip.actors._ntp import Resolver, resolve_ipv4
from kvip.actors._packet_thread import PacketThread, log_notice
from kvip.actors._packet_thread6 import PacketThread6
from kvip.actors._pool_address import PoolAddress
from kvip.actors._pool_book import HeardFrom, PoolBook, _Nic
from kvip.actors._pool_dhcp6 import Dhcp6Wire, PoolDhcp6
from kvip.actors._pool_wire import PoolWire, SocketFactory
from kvip.ipam import Allocator, IpamError, Owner
from kvip.serving import Counters, Notice, PoolConfig, Responder

log = logging.getLogger(__name__)

INBOX_SIZE = 256


@dataclass(frozen=True, slots=True)
class _TakeNotices:
    """The packet thread has DECLINEs or RELEASEs for the actor."""


@dataclass(slots=True)
class _Envelope:
    message: PoolMessage | _TakeNotices
    done: trio.Event | None = None
    result: Any = None
    error: BaseException | None = None


class PoolFigures(NamedTuple):
    """A pool's counters and address figures as of one moment."""

    counters: Counters
    used: int
    available: int
    #: MACs with no reservation heard lately (Responder.history).
    unknown_macs: int


@dataclass(slots=True)
class PoolActor(PoolAddress, PoolDhcp6, PoolWire):
    """One pool's DHCP server and allocator.

    `run()` opens the socket only after the caller has restored the durable
    reservations (send RestoreReservation messages before starting it, or
    start it with `restore=`), so a restart never answers with a wrong IP.
    """

    config: PoolConfig
    socket_factory: SocketFactory = open_dhcp_socket
    wire6: Dhcp6Wire = field(default_factory=Dhcp6Wire)
    inbox_size: int = INBOX_SIZE
    #: Called after anything that changes what the pool's status shows.
    on_change: Callable[[], None] | None = None
    #: Called with each DECLINE and RELEASE a client sends.
    on_notice: Callable[[Notice], None] | None = None
    #: Called after a Reconfigure was applied (evicted NICs must show it), and
    #: when the IPv6 range has room again after a claim found it exhausted.
    on_reconfigured: Callable[[], None] | None = None
    #: Called with (reason, message) of a problem an operator must fix (an Event).
    on_warning: Callable[[str, str], None] | None = None
    #: Called when the actor ends with the claims it handed out but never served.
    on_stopped: Callable[[list[RestoreReservation]], None] | None = None
    resolve: Resolver = resolve_ipv4
    book: PoolBook = field(init=False)
    serving: bool = field(init=False, default=False)
    _send: trio.MemorySendChannel[_Envelope] = field(init=False)
    _receive: trio.MemoryReceiveChannel[_Envelope] = field(init=False)
    _current: _Envelope | None = field(init=False, default=None)
    #: The actor has run and ended: messages are refused (until it runs again).
    _stopped: bool = field(init=False, default=False)
    _socket_scope: trio.CancelScope | None = field(init=False, default=None)
    #: Set when the socket is closed and its packet thread has let go of it.
    _socket_closed: trio.Event | None = field(init=False, default=None)
    _packets: PacketThread | None = field(init=False, default=None)
    _packets6: PacketThread6 | None = field(init=False, default=None)
    #: Why DHCPv6 is not served on a dual-stack pool that serves DHCP (None: it is).
    no_dhcp6: str | None = field(init=False, default=None)
    _said_udp_mode: bool = field(init=False, default=False)
    _nursery: trio.Nursery | None = field(init=False, default=None)
    #: Held by whoever touches the responder: the packet thread or the trio thread.
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    #: The packet thread's own: a pool's socket must never wait for a shared one.
    _thread_limiter: trio.CapacityLimiter = field(init=False)
    #: NTP servers given by name, as last resolved: (names, addresses).
    _ntp_resolved: tuple[tuple[str, ...], tuple[IPv4Address, ...]] = field(
        init=False, default=((), ())
    )
    #: The NTP addresses the responder's options carry now.
    _ntp_applied: tuple[IPv4Address, ...] = field(init=False, default=())
    #: This replica's address on the pool's interface (None: none found yet).
    interface_address: IPv4Address | None = field(init=False, default=None)
    #: The addresses the other replicas answer as (HoldReplicaAddresses).
    _replicas: frozenset[IPv4Address] = field(init=False, default=frozenset())
    #: Why the pool does not serve although it should (no address to answer from).
    no_address: str | None = field(init=False, default=None)
    #: Replica addresses inside the range, and what is wrong with each.
    address_problems: dict[IPv4Address, str] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._thread_limiter = trio.CapacityLimiter(2)  # DHCP and DHCPv6
        self.book = PoolBook.new(self.config)
        self._send, self._receive = trio.open_memory_channel[_Envelope](self.inbox_size)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def allocator(self) -> Allocator:
        """The IPv4 allocator (NoIpv4 on an IPv6-only pool)."""
        if self.book.allocator is None:
            raise NoIpv4(self.name)
        return self.book.allocator

    @property
    def responder(self) -> Responder:
        """The DHCP responder (NoIpv4 on an IPv6-only pool)."""
        if self.book.responder is None:
            raise NoIpv4(self.name)
        return self.book.responder

    @property
    def answers_as(self) -> str | None:
        """The address this replica answers from on the pool: DHCP's server
        identifier, or on an IPv6-only pool DHCPv6's link-local source (None
        while it has none)."""
        if self.book.responder is not None:
            return str(self.book.responder.options.server_ip)
        return self.link_local

    @property
    def nics(self) -> dict[str, _Nic]:
        return self.book.nics

    def figures(self) -> PoolFigures:
        """The counters and address figures as of one moment, for metrics: copied
        under the lock the packet thread counts under (a histogram's count and
        sum, or received and sent, from different packets would disagree)."""
        with self._lock:
            r, allocator = self.book.responder, self.book.allocator
            # MACs heard without a reservation, by DHCP or DHCPv6 (a MAC once).
            unknown = set(r.history.unknown) if r is not None else set()
            if self.book.v6 is not None:
                unknown.update(self.book.v6.responder.history.unknown)
            if r is None or allocator is None:  # an IPv6-only pool: see figures6
                return PoolFigures(Counters(), 0, 0, len(unknown))
            return PoolFigures(r.counters.snapshot(), allocator.used, allocator.available,
                               len(unknown))  # fmt: skip

    def heard_from(self, mac: str) -> HeardFrom:
        """PoolBook.heard_from, under the lock the packet thread records under."""
        with self._lock:
            return self.book.heard_from(mac)

    def drain(self) -> None:
        """The replica is shutting down: see Responder.drain."""
        with self._lock:
            if self.book.responder is not None:
                self.book.responder.drain()
            if self.book.v6 is not None:
                self.book.v6.responder.drain()

    # -- talking to the actor -----------------------------------------------------

    async def tell(self, message: PoolMessage) -> None:
        """Queue a message; waits while the inbox is full (back-pressure).
        Raises PoolStopped if the actor has ended."""
        await self._post(_Envelope(message))

    async def ask(self, message: PoolMessage) -> Any:
        """Queue a message and wait for its answer; the actor's error is raised here,
        PoolStopped if the actor ends before answering. Cancelling the caller
        abandons the answer, not the message."""
        envelope = _Envelope(message, done=trio.Event())
        await self._post(envelope)
        assert envelope.done is not None
        await envelope.done.wait()
        if envelope.error is not None:
            raise envelope.error
        return envelope.result

    async def _post(self, envelope: _Envelope) -> None:
        if self._stopped:
            raise PoolStopped(self.name)
        await self._send.send(envelope)

    def handle_now(self, message: PoolMessage) -> Any:
        """Apply a message synchronously: only for the actor's owner before `run`
        (restoring reservations) and for socket-free tests."""
        return self._apply(message)

    # -- lifetime -----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; cancellation closes the socket. However it ends,
        the messages it did not answer fail with PoolStopped."""
        self._stopped = False
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._resolve_ntp_later()
                if not self.config.paused:
                    await nursery.start(self._serve_socket)
                else:
                    log.info("pool %s is paused: keeping reservations, not serving", self.name)
                task_status.started()
                async for envelope in self._receive:
                    self._current = envelope
                    try:
                        envelope.result = await self._apply_async(envelope.message)
                    except IpamError as exc:
                        envelope.error = exc
                    except Exception as exc:
                        log.exception("pool %s failed to handle %r", self.name, envelope.message)
                        envelope.error = exc
                    self._current = None
                    if envelope.done is not None:
                        envelope.done.set()
        finally:
            self._refuse_the_rest()

    def _refuse_the_rest(self) -> None:
        """The actor has ended: fail whatever waits in the inbox (senders blocked on
        a full inbox included: draining it lets them in, and fails them too)."""
        self._stopped = True
        if self.on_stopped is not None:
            self.on_stopped(self.book.unserved())
        unanswered = [self._current] if self._current is not None else []
        self._current = None
        while True:
            try:
                unanswered.append(self._receive.receive_nowait())
            except trio.WouldBlock:
                break
        for envelope in unanswered:
            if envelope.done is not None and not envelope.done.is_set():
                envelope.error = PoolStopped(self.name)
                envelope.done.set()

    def _post_notices(self) -> None:
        """Runs in the trio thread, called by the packet thread: it must never raise
        (trio would end the whole process with TrioInternalError)."""
        if self._stopped:
            return
        try:
            self._send.send_nowait(_Envelope(_TakeNotices()))
        except trio.WouldBlock:
            # A full inbox: the packet thread must not wait; a task queues it.
            if self._nursery is not None:
                with contextlib.suppress(RuntimeError):  # the actor is ending
                    self._nursery.start_soon(self._tell_quietly, _Envelope(_TakeNotices()))

    async def _tell_quietly(self, envelope: _Envelope) -> None:
        with contextlib.suppress(PoolStopped):
            await self._post(envelope)

    def _take_notices(self) -> None:
        with self._lock:
            notices = list(self.book.responder.notices) if self.book.responder else []
            if self.book.responder is not None:
                self.book.responder.notices.clear()
            if self._packets is not None:
                self._packets.notices_taken()
            if self.book.v6 is not None:
                notices += self.book.v6.responder.notices
                self.book.v6.responder.notices.clear()
            if self._packets6 is not None:
                self._packets6.notices_taken()
        if not notices:
            return
        if self.on_change is not None:
            self.on_change()
        for notice in notices:
            log_notice(self.name, notice)
            if self.on_notice is not None:
                try:
                    self.on_notice(notice)
                except Exception:
                    log.exception("pool %s: handling %r failed", self.name, notice)

    # -- the messages -----------------------------------------------------------------

    async def _apply_async(self, message: PoolMessage | _TakeNotices) -> Any:
        if isinstance(message, _TakeNotices):
            return self._take_notices()
        if isinstance(message, HoldReplicaAddresses):
            self._replicas = message.addresses
            return self._hold_replicas()
        if isinstance(message, Reconfigure):
            try:
                return await self._reconfigure(message)
            finally:
                if self.on_change is not None:
                    self.on_change()
        return self._apply(message)

    def _apply(self, message: PoolMessage) -> Any:
        # The status shows addresses, not who is served: a claim the owner already
        # holds, serving it, or a look are no change. Saying "changed" for those made
        # the status writer re-render a whole pool after every reconcile.
        claim = message if isinstance(message, ClaimAddress) else None
        held = self.book.held4(claim.owner) if claim else ()
        try:
            with self._lock:
                return self.book.dispatch(message, serving=self.serving)
        finally:
            self.book.say()
            quiet = isinstance(message, Inspect | ServeReservation) or (
                claim is not None and self.book.held4(claim.owner) == held
            )
            if self.on_change is not None and not quiet:
                self.on_change()
            if self.book.v6 is not None and self.book.v6.room_again() and self.on_reconfigured:
                self.on_reconfigured()  # NICs the range had no IPv6 address for: again

    def owner_of_mac(self, mac: str) -> Owner | None:
        return self.book.owner_of_mac(mac)

    async def _reconfigure(
        self, message: Reconfigure
    ) -> tuple[tuple[IPv4Address | IPv6Address, Owner], ...]:
        old, new = self.config, message.config
        with self._lock:
            evicted = self.book.reconfigure(new, message.restore)
            self.book.name = new.name
            self.config = new
        self.book.say()
        self._resolve_ntp_later()
        self._hold_replicas()  # the range moved: which replica addresses are inside?
        for ip, owner in evicted:
            log.warning(
                "IPPool %s: %s of %s no longer fits the pool's range or excludes",
                self.name,
                ip,
                owner,
            )
        # DHCPv6 starts and stops with the socket: a pool that became (or stopped
        # being) dual-stack opens its sockets again.
        if (old.interface, old.paused, old.v6 is None, old.spec is None) != (
            new.interface, new.paused, new.v6 is None, new.spec is None
        ):  # fmt: skip
            if self._socket_scope is not None and self._socket_closed is not None:
                # One socket at a time: the old one is closed, and its thread gone,
                # before the new one opens.
                self._socket_scope.cancel()
                await self._socket_closed.wait()
            if not new.paused and self._nursery is not None:
                await self._nursery.start(self._serve_socket)
        if self.on_reconfigured is not None:
            self.on_reconfigured()
        return evicted


class NoIpv4(Exception):
    """An IPv6-only pool has no IPv4 allocator or DHCP responder."""

    def __init__(self, pool: str) -> None:
        super().__init__(f"IPPool {pool} is IPv6-only: it has no ipv4config")
        self.pool = pool


class PoolStopped(Exception):
    """The pool's actor has stopped (its IPPool was deleted, it crashed or it is
    restarting): the message was not handled. Temporary: ask again later, the
    pool's next actor (if any) will answer."""

    def __init__(self, pool: str) -> None:
        super().__init__(f"IPPool {pool}'s actor has stopped")
        self.pool = pool
