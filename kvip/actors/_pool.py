"""PoolActor: the single owner of one IPPool's addresses and DHCP socket.

Nobody else touches the allocator, the MAC table or the socket: watchers and
the controller send messages to the actor's bounded inbox (`tell`, or `ask`
for an answer). The inbox runs as a trio task. The socket is served by one
OS thread of the actor's own (blocking recv, answer, send): a trio wakeup per
packet cost about twice the CPU of a blocking receive (bench/README.md). That
thread and the inbox share only the Responder, always under `_lock`; what the
thread learns (DECLINE, RELEASE) goes back to the trio thread as a callback.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address
from typing import Any

import trio

from kvip.actors._dhcp_socket import open_dhcp_socket
from kvip.actors._messages import (
    ClaimAddress,
    ClearDecline,
    Inspect,
    PoolMessage,
    PoolState,
    Reconfigure,
    ReleaseOwner,
    ReleaseVm,
    RestoreReservation,
    ServeReservation,
)
from kvip.ipam import Allocator, IpamError, Owner
from kvip.serving import Declined, Notice, PoolConfig, Released, Reservation, Responder

log = logging.getLogger(__name__)

INBOX_SIZE = 256
#: How often the packet thread looks up from an idle socket to see whether it
#: should stop (it is normally woken at once by shutting the socket down).
IDLE_CHECK_SECONDS = 1
NTP_RESOLVE_TIMEOUT = 5.0

SocketFactory = Callable[[str], socket.socket]


@dataclass(slots=True)
class _Envelope:
    message: PoolMessage
    done: trio.Event | None = None
    result: Any = None
    error: BaseException | None = None


@dataclass(slots=True)
class _Nic:
    owner: Owner
    ip: IPv4Address
    hostname: str | None
    serving: bool


@dataclass(slots=True)
class PoolActor:
    """One pool's DHCP server and allocator.

    `run()` opens the socket only after the caller has restored the durable
    reservations (send RestoreReservation messages before starting it, or
    start it with `restore=`), so a restart never answers with a wrong IP.
    """

    config: PoolConfig
    socket_factory: SocketFactory = open_dhcp_socket
    inbox_size: int = INBOX_SIZE
    #: Called after anything that changes what the pool's status shows.
    on_change: Callable[[], None] | None = None
    #: Called with each DECLINE and RELEASE a client sends.
    on_notice: Callable[[Notice], None] | None = None
    allocator: Allocator = field(init=False)
    responder: Responder = field(init=False)
    nics: dict[str, _Nic] = field(init=False, default_factory=dict)
    serving: bool = field(init=False, default=False)
    _send: trio.MemorySendChannel[_Envelope] = field(init=False)
    _receive: trio.MemoryReceiveChannel[_Envelope] = field(init=False)
    _socket_scope: trio.CancelScope | None = field(init=False, default=None)
    _nursery: trio.Nursery | None = field(init=False, default=None)
    #: Held by whoever touches the responder: the packet thread or the trio thread.
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    #: The packet thread's own: a pool's socket must never wait for a shared one.
    _thread_limiter: trio.CapacityLimiter = field(init=False)

    def __post_init__(self) -> None:
        self._thread_limiter = trio.CapacityLimiter(1)
        self.allocator = Allocator(self.config.spec)
        self.responder = Responder(self.config.options)
        self._send, self._receive = trio.open_memory_channel[_Envelope](self.inbox_size)

    @property
    def name(self) -> str:
        return self.config.name

    # -- talking to the actor -----------------------------------------------------

    async def tell(self, message: PoolMessage) -> None:
        """Queue a message; waits while the inbox is full (back-pressure)."""
        await self._send.send(_Envelope(message))

    async def ask(self, message: PoolMessage) -> Any:
        """Queue a message and wait for its answer; the actor's error is raised here.
        Cancelling the caller abandons the answer, not the message."""
        envelope = _Envelope(message, done=trio.Event())
        await self._send.send(envelope)
        assert envelope.done is not None
        await envelope.done.wait()
        if envelope.error is not None:
            raise envelope.error
        return envelope.result

    def handle_now(self, message: PoolMessage) -> Any:
        """Apply a message synchronously: only for the actor's owner before `run`
        (restoring reservations) and for socket-free tests."""
        return self._apply(message)

    # -- lifetime -----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; cancellation closes the socket."""
        await self._resolve_ntp()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            if not self.config.paused:
                await nursery.start(self._serve_socket)
            else:
                log.info("pool %s is paused: keeping reservations, not serving", self.name)
            task_status.started()
            async for envelope in self._receive:
                try:
                    envelope.result = await self._apply_async(envelope.message)
                except IpamError as exc:
                    envelope.error = exc
                except Exception as exc:
                    log.exception("pool %s failed to handle %r", self.name, envelope.message)
                    envelope.error = exc
                if envelope.done is not None:
                    envelope.done.set()

    async def _serve_socket(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        sock = self.socket_factory(self.config.interface)
        with sock, trio.CancelScope() as scope:
            self._socket_scope = scope
            self.serving = True
            log.info(
                "pool %s serving DHCP on %s as %s",
                self.name,
                self.config.interface,
                self.config.options.server_ip,
            )
            stopping = threading.Event()
            token = trio.lowlevel.current_trio_token()
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._run_packet_thread, sock, stopping, token)
                    task_status.started()
                    try:
                        await trio.sleep_forever()
                    finally:
                        _wake(sock, stopping)
            finally:
                self.serving = False
                self._socket_scope = None

    async def _run_packet_thread(
        self, sock: socket.socket, stopping: threading.Event, token: trio.lowlevel.TrioToken
    ) -> None:
        # Not abandoned on cancel: the socket closes only after the thread let go of it.
        await trio.to_thread.run_sync(
            self._packet_thread, sock, stopping, token, limiter=self._thread_limiter
        )

    def _packet_thread(
        self, sock: socket.socket, stopping: threading.Event, token: trio.lowlevel.TrioToken
    ) -> None:
        """Receive, answer, send, until `stopping` is set (runs in its own thread)."""
        sock.setblocking(True)
        # A kernel receive timeout, not settimeout(): that would poll() before every recv.
        sock.setsockopt(
            socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", IDLE_CHECK_SECONDS, 0)
        )
        responder = self.responder
        counters = responder.counters
        observe = counters.latency.observe
        handle = responder.handle
        lock = self._lock
        recv = sock.recv
        sendto = sock.sendto
        clock = time.perf_counter
        while not stopping.is_set():
            try:
                data = recv(4096)
            except BlockingIOError:
                continue  # idle for IDLE_CHECK_SECONDS
            except OSError as exc:
                log.warning("pool %s: receive failed: %s", self.name, exc)
                continue
            if not data and stopping.is_set():
                break  # woken by _wake's shutdown, not a (malformed) empty datagram
            started = clock()
            with lock:
                reply = handle(data)
                notices = bool(responder.notices)
            if reply is not None:
                try:
                    sendto(reply.payload, reply.address)
                except OSError as exc:
                    with lock:
                        counters.send_errors += 1
                    log.debug("pool %s: send to %s failed: %s", self.name, reply.address, exc)
                elapsed = clock() - started
                with lock:
                    observe(elapsed)
            if notices:
                try:
                    token.run_sync_soon(self._notices)
                except trio.RunFinishedError:
                    return

    def _notices(self) -> None:
        with self._lock:
            notices = list(self.responder.notices)
            self.responder.notices.clear()
        if not notices:
            return
        if self.on_change is not None:
            self.on_change()
        for notice in notices:
            if isinstance(notice, Declined):
                log.warning(
                    "pool %s: %s declined %s: the address is in use by another host%s. "
                    "With a static reservation there is no other address to offer; "
                    "find the other host, then clear the decline",
                    self.name,
                    notice.mac,
                    notice.ip,
                    f" ({notice.message})" if notice.message else "",
                )
            elif isinstance(notice, Released):
                log.info(
                    "pool %s: %s released %s; the address stays reserved for its VM",
                    self.name,
                    notice.mac,
                    notice.ip,
                )
            if self.on_notice is not None:
                self.on_notice(notice)

    async def _resolve_ntp(self) -> None:
        names = self.config.ntp_names
        if not names:
            return
        resolved: list[IPv4Address] = list(self.config.options.ntp)
        for name in names:
            with trio.move_on_after(NTP_RESOLVE_TIMEOUT):
                try:
                    infos = await trio.socket.getaddrinfo(name, None, family=socket.AF_INET)
                except OSError as exc:
                    log.warning("pool %s: NTP server %s does not resolve: %s", self.name, name, exc)
                    continue
                for info in infos:
                    address = IPv4Address(info[4][0])
                    if address not in resolved:
                        resolved.append(address)
        with self._lock:
            self.responder.set_options(replace(self.config.options, ntp=tuple(resolved)))

    # -- the messages -----------------------------------------------------------------

    async def _apply_async(self, message: PoolMessage) -> Any:
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
        held = self.allocator.addresses_of(claim.owner) if claim else ()
        try:
            with self._lock:
                return self._dispatch(message)
        finally:
            quiet = isinstance(message, Inspect | ServeReservation) or (
                claim is not None and self.allocator.addresses_of(claim.owner) == held
            )
            if self.on_change is not None and not quiet:
                self.on_change()

    def _dispatch(self, message: PoolMessage) -> Any:
        if isinstance(message, ClaimAddress):
            return self._claim(message)
        if isinstance(message, RestoreReservation):
            self._check_mac(message.owner, message.mac)
            self.allocator.reserve(message.owner, message.ip)
            self._record(message.owner, message.mac, message.ip, message.hostname, serve=True)
            return message.ip
        if isinstance(message, ServeReservation):
            return self._serve(message)
        if isinstance(message, ReleaseOwner):
            return self._release(message.owner)
        if isinstance(message, ReleaseVm):
            prefix = f"{message.key} ["
            owners = {
                nic.owner
                for nic in self.nics.values()
                if nic.owner.startswith(prefix) and nic.owner not in message.keep
            }
            return tuple(ip for owner in sorted(owners) for ip in self._release(owner))
        if isinstance(message, ClearDecline):
            return self.responder.clear_declined(message.ip)
        if isinstance(message, Inspect):
            return self._state()
        if isinstance(message, Reconfigure):
            raise TypeError("Reconfigure needs the running actor")
        raise TypeError(f"pool actor cannot handle {message!r}")

    def _claim(self, message: ClaimAddress) -> IPv4Address:
        """An address for a NIC, held but not served until ServeReservation."""
        self._check_mac(message.owner, message.mac)
        requested, replaces = message.requested, message.replaces
        if (
            requested is not None
            and replaces is not None
            and replaces != message.owner
            and self.allocator.owner_of(requested) == replaces
        ):
            # The NIC's MAC changed: its address moves with it. Nothing below can
            # fail for an address that was just held (so assignable).
            log.info("pool %s: %s moves from %s to %s", self.name, requested, replaces,
                     message.owner)  # fmt: skip
            self.allocator.release(requested)
            self._forget(replaces)
        held = self.allocator.addresses_of(message.owner)
        if held and (message.requested is None or message.requested in held):
            ip = message.requested or held[0]
            for extra in held:
                if extra != ip:  # one NIC, one address
                    log.warning(
                        "pool %s: %s held %s besides %s; released", self.name, message.owner,
                        extra, ip,
                    )  # fmt: skip
                    self.allocator.release(extra)
        else:
            # The new address first: a claim that fails (taken, excluded,
            # exhausted) must leave the NIC's current address, and its DHCP
            # service, as they were.
            ip = self.allocator.allocate(message.owner, requested=message.requested)
            for old in held:
                self.allocator.release(old)
            self._forget(message.owner)
        self._record(message.owner, message.mac, ip, message.hostname, serve=False)
        return ip

    def owner_of_mac(self, mac: str) -> Owner | None:
        nic = self.nics.get(mac.lower())
        return nic.owner if nic is not None else None

    def _check_mac(self, owner: Owner, mac: str) -> None:
        previous = self.nics.get(mac.lower())
        if previous is not None and previous.owner != owner:
            raise MacConflict(mac, previous.owner)

    def _serve(self, message: ServeReservation) -> bool:
        nic = self.nics.get(message.mac.lower())
        if nic is None or nic.ip != message.ip:
            log.warning(
                "pool %s: not serving %s for %s: it holds no such claim",
                self.name,
                message.ip,
                message.mac,
            )
            return False
        nic.serving = True
        self.responder.set_reservation(message.mac.lower(), Reservation(nic.ip, nic.hostname))
        return True

    def _record(
        self, owner: Owner, mac: str, ip: IPv4Address, hostname: str | None, *, serve: bool
    ) -> None:
        mac = mac.lower()
        self.nics[mac] = _Nic(owner, ip, hostname, serving=serve)
        if serve:
            self.responder.set_reservation(mac, Reservation(ip, hostname))

    def _release(self, owner: Owner) -> tuple[IPv4Address, ...]:
        released = self.allocator.release_owner(owner)
        self._forget(owner)
        return released

    def _forget(self, owner: Owner) -> None:
        """Drop the owner's NICs and stop serving them."""
        for mac in [mac for mac, nic in self.nics.items() if nic.owner == owner]:
            del self.nics[mac]
            self.responder.remove_reservation(mac)

    async def _reconfigure(self, message: Reconfigure) -> tuple[tuple[IPv4Address, Owner], ...]:
        old, new = self.config, message.config
        with self._lock:
            evicted = self.allocator.reconfigure(new.spec)
            for _, owner in evicted:
                for mac in [mac for mac, nic in self.nics.items() if nic.owner == owner]:
                    del self.nics[mac]
                    self.responder.remove_reservation(mac)
            self._restore_fitting(message.restore)
            self.config = new
            self.responder.set_options(new.options)
        await self._resolve_ntp()
        if (old.interface, old.paused) != (new.interface, new.paused):
            if self._socket_scope is not None:
                self._socket_scope.cancel()
                with trio.move_on_after(1):
                    while self.serving:
                        await trio.sleep(0)
            if not new.paused and self._nursery is not None:
                await self._nursery.start(self._serve_socket)
        return evicted

    def _restore_fitting(self, reservations: tuple[RestoreReservation, ...]) -> None:
        """Hold again the recorded addresses that fit the range again. A NIC the
        pool knows, or an owner holding something, is newer than its record."""
        allocator = self.allocator
        for reservation in reservations:
            if reservation.mac.lower() in self.nics or allocator.addresses_of(reservation.owner):
                continue
            if not allocator.is_assignable(reservation.ip) or allocator.owner_of(reservation.ip):
                continue
            log.info(
                "pool %s: %s of %s fits the range again; serving it again",
                self.name,
                reservation.ip,
                reservation.owner,
            )
            allocator.reserve(reservation.owner, reservation.ip)
            self._record(
                reservation.owner, reservation.mac, reservation.ip, reservation.hostname, serve=True
            )

    def _state(self) -> PoolState:
        return PoolState(
            name=self.name,
            serving=self.serving,
            allocations=tuple(self.allocator.allocations()),
            excluded=tuple(self.allocator.excluded()),
            used=self.allocator.used,
            available=self.allocator.available,
            declined=tuple(sorted(self.responder.declined)),
            counters=self.responder.counters.as_dict(),
        )


def _wake(sock: socket.socket, stopping: threading.Event) -> None:
    """Stop the packet thread: shutting the socket down wakes a blocked recv."""
    stopping.set()
    # Linux says ENOTCONN for an unconnected UDP socket, and wakes the reader anyway.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)


class MacConflict(IpamError):
    """A MAC is already claimed in this pool by another owner."""

    def __init__(self, mac: str, holder: str) -> None:
        super().__init__(f"MAC {mac} is already in use by {holder}")
        self.mac = mac
        self.holder = holder
