"""Real kvip PoolActors serving a network lab, for tests that drive real clients.

``serve_pools(lab, PoolSetup(...), ...)`` builds one PoolActor per IPPool body,
restores its reservations, opens each DHCP socket inside the lab's server
namespace and runs all of them under one trio loop in a background thread. The
test body stays plain synchronous code (running real clients, which block):
it talks to the actors through ``PoolRig.ask`` (a thread-safe hop into the
trio loop), never by touching their state directly. Leaving the block cancels
the loop, which closes the sockets; the lab's namespaces are the caller's.

Every datagram a pool's socket receives or sends is recorded (with the IP
destination of received ones, from IP_PKTINFO), so a test can tell a unicast
RENEWING request from a broadcast REBINDING one.

Usable from tests and scripts alike: nothing here imports pytest.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import trio

from kvip.actors import (
    Dhcp6Wire,
    Inspect,
    PoolActor,
    PoolMessage,
    PoolState,
    RestoreReservation,
    open_dhcp_socket,
)
from kvip.ipam import Owner
from kvip.serving import parse_ippool
from protocol import DecodeError, Message, decode
from tests.lab.netlab import Lab, inside

T = TypeVar("T")

#: Linux's IP_PKTINFO (Python 3.11's socket module lacks the constant).
IP_PKTINFO = 8
_PKTINFO = struct.Struct("=i4s4s")  # ifindex, spec_dst, addr (the header's destination)
_ANCILLARY_SIZE = socket.CMSG_SPACE(_PKTINFO.size)
STARTUP_TIMEOUT = 30.0


class RigError(Exception):
    """The pools could not be started, or their loop failed."""


@dataclass(frozen=True, slots=True)
class Datagram:
    """One datagram a pool's socket received or sent.

    ``address`` is the IP destination: for a received datagram the address in
    its IP header (255.255.255.255 for a broadcast, the server's own for a
    unicast), for a sent one the address it was sent to.
    """

    data: bytes
    address: str
    port: int

    @property
    def message(self) -> Message | None:
        """The decoded DHCP message, or None when it does not decode."""
        try:
            return decode(self.data)
        except DecodeError:
            return None


@dataclass(slots=True)
class Wiretap:
    """What one pool's socket(s) saw; appended by the trio thread, read by tests."""

    received: list[Datagram] = field(default_factory=list)
    sent: list[Datagram] = field(default_factory=list)

    def received_messages(self) -> list[tuple[Datagram, Message]]:
        return [(d, m) for d in list(self.received) if (m := d.message) is not None]

    def sent_messages(self) -> list[tuple[Datagram, Message]]:
        return [(d, m) for d in list(self.sent) if (m := d.message) is not None]


class RecordingSocket(socket.socket):
    """A DHCP server socket that records traffic into a Wiretap.

    ``recv`` reads through ``recvmsg`` to learn each datagram's IP destination;
    the pool actor sees exactly the bytes it would have seen.
    """

    tap: Wiretap

    def recv(self, bufsize: int, flags: int = 0, /) -> bytes:
        data, ancillary, _, _ = self.recvmsg(bufsize, _ANCILLARY_SIZE, flags)
        destination = "?"
        for level, kind, payload in ancillary:
            if level == socket.IPPROTO_IP and kind == IP_PKTINFO:
                _, _, addr = _PKTINFO.unpack_from(payload)
                destination = str(ipaddress.IPv4Address(addr))
        self.tap.received.append(Datagram(data, destination, 67))
        return data

    def sendto(self, data: Any, *args: Any) -> int:
        address = args[-1]
        self.tap.sent.append(Datagram(bytes(data), str(address[0]), int(address[1])))
        return super().sendto(data, *args)


def open_recording_socket(netns: str, interface: str, *, tap: Wiretap) -> RecordingSocket:
    """kvip's own DHCP socket, opened inside ``netns``, recording into ``tap``."""
    with inside(netns):
        plain = open_dhcp_socket(interface)
    sock = RecordingSocket(plain.family, plain.type, plain.proto, fileno=plain.detach())
    sock.tap = tap
    sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    sock.setblocking(False)
    return sock


# --- describing pools (the IPPool bodies come from tests.lab.objects.ippool) -----


@dataclass(frozen=True, slots=True)
class Reserved:
    """A VM NIC's reservation: ``mac`` always gets ``ip``; ``vm`` is its host name."""

    mac: str
    #: Its IPv4 address; None on an IPv6-only pool.
    ip: str | None
    vm: str = "vm"
    #: Its IPv6 address, on a dual-stack or IPv6-only pool.
    ip6: str | None = None

    @property
    def owner(self) -> Owner:
        return Owner(f"default/{self.vm} [{self.mac}]")


@dataclass(frozen=True, slots=True)
class PoolSetup:
    body: Mapping[str, Any]
    reservations: Sequence[Reserved] = ()


# --- running them -----------------------------------------------------------------


class PoolRig:
    """Handles to running pool actors, for the (non-trio) test thread."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.actors: dict[str, PoolActor] = {}
        self.taps: dict[str, Wiretap] = {}
        self._token: trio.lowlevel.TrioToken | None = None

    def _add(self, setup: PoolSetup) -> PoolActor:
        config = parse_ippool(setup.body)
        tap = self.taps.setdefault(config.name, Wiretap())
        server = self.lab.server

        def factory(interface: str) -> socket.socket:
            return open_recording_socket(server, interface, tap=tap)

        actor = PoolActor(config, socket_factory=factory, wire6=Dhcp6Wire(server))
        for nic in setup.reservations:
            ip6 = ipaddress.IPv6Address(nic.ip6) if nic.ip6 else None
            message = RestoreReservation(
                nic.owner,
                nic.mac,
                ipaddress.IPv4Address(nic.ip) if nic.ip is not None else None,
                hostname=nic.vm,
                ip6=ip6,
            )
            actor.handle_now(message)
        self.actors[config.name] = actor
        return actor

    def ask(self, pool: str, message: PoolMessage) -> Any:
        """Send ``message`` to pool ``pool`` and wait for its answer (or its error)."""
        if self._token is None:
            raise RigError("the pools are not running")
        return trio.from_thread.run(self.actors[pool].ask, message, trio_token=self._token)

    def state(self, pool: str) -> PoolState:
        state: PoolState = self.ask(pool, Inspect())
        return state

    def counters(self, pool: str) -> dict[str, Any]:
        return self.state(pool).counters

    def wait_until(
        self, pool: str, condition: Callable[[PoolState], bool], *, timeout: float = 5.0
    ) -> PoolState:
        """Poll the pool's state until ``condition`` holds; AssertionError (with the
        last state) if it does not within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.state(pool)
            if condition(state):
                return state
            if time.monotonic() > deadline:
                raise AssertionError(f"pool {pool}: condition not met; last state {state}")
            time.sleep(0.05)


@contextlib.contextmanager
def serve_pools(lab: Lab, *setups: PoolSetup) -> Iterator[PoolRig]:
    """Run a PoolActor per setup in the lab's server namespace for the block.

    Raises RigError when a pool cannot start (bad body, no such interface) or
    when the trio loop failed while the block ran.
    """
    rig = PoolRig(lab)
    ready = threading.Event()
    failures: list[BaseException] = []
    stop: list[trio.CancelScope] = []

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            stop.append(nursery.cancel_scope)
            for setup in setups:
                await nursery.start(rig._add(setup).run)
            rig._token = trio.lowlevel.current_trio_token()
            ready.set()

    def loop() -> None:
        try:
            trio.run(main)
        except BaseException as exc:  # reported to the test thread below
            failures.append(exc)
        finally:
            ready.set()

    thread = threading.Thread(target=loop, name=f"pools-{lab.server}", daemon=True)
    thread.start()
    if not ready.wait(STARTUP_TIMEOUT) or failures or rig._token is None:
        _stop(thread, stop, rig)
        cause = failures[0] if failures else None
        raise RigError(f"pools did not start: {_describe(cause)}") from cause
    try:
        yield rig
    finally:
        _stop(thread, stop, rig)
    if failures:
        raise RigError(f"the pools' loop failed: {_describe(failures[0])}") from failures[0]


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return f"no answer in {STARTUP_TIMEOUT}s"
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(inner) for inner in exc.exceptions)
    return repr(exc)


def _stop(thread: threading.Thread, stop: list[trio.CancelScope], rig: PoolRig) -> None:
    token, rig._token = rig._token, None
    if token is not None and stop:
        with contextlib.suppress(trio.RunFinishedError):
            trio.from_thread.run_sync(stop[0].cancel, trio_token=token)
    thread.join(10)
    if thread.is_alive():
        raise RigError("the pools' loop did not stop")


def run_parallel(*calls: Callable[[], T]) -> list[T]:
    """Run blocking calls (real clients) at once; results in order, first error raised."""
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(call) for call in calls]
        return [future.result() for future in futures]
