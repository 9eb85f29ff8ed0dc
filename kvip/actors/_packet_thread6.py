"""A pool's DHCPv6 packet thread: the twin of _packet_thread.py.

It reads requests from the pool's `Dhcp6Sockets` (each with the link-layer
source the Responder6 may need to know the client), answers under the
actor's lock, and sends. What it learns (DECLINE, RELEASE) waits in the
Responder6's notices; it posts one wakeup to the actor, as the IPv4 thread
does, and the actor takes the notices of both families in its own inbox.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from kvip.actors._dhcp6_socket import Dhcp6Sockets
from kvip.actors._packet_log import UnknownMacLog
from kvip.actors._packet_thread import IDLE_CHECK_SECONDS
from kvip.serving import Responder6

log = logging.getLogger(__name__)


@dataclass(slots=True)
class PacketThread6:
    name: str
    sockets: Dhcp6Sockets
    responder: Responder6
    lock: threading.Lock
    #: As PacketThread.post_notices: runs in the trio thread, once until taken.
    post_notices: Callable[[], None]
    token: trio.lowlevel.TrioToken
    #: As PacketThread.sighted: the MACs without a reservation first heard (and
    #: logged, within UnknownMacLog's budget), in the trio thread.
    sighted: Callable[[list[str]], None] | None = None
    stopping: threading.Event = field(default_factory=threading.Event)
    _posted: bool = False

    def notices_taken(self) -> None:
        """The actor took the pending notices (call with the lock held)."""
        self._posted = False

    def stop(self) -> None:
        """Make `run` return soon: `wake` ends a blocked receive."""
        self.stopping.set()
        self.sockets.wake()

    def run(self) -> None:
        """Receive, answer, send, until `stop` (runs in its own thread)."""
        sockets = self.sockets
        sockets.set_timeout(IDLE_CHECK_SECONDS)
        responder = self.responder
        counters = responder.counters
        history = responder.history
        unknown_macs = UnknownMacLog(self.name, "DHCPv6")
        observe = counters.latency.observe
        handle = responder.handle
        lock = self.lock
        receive = sockets.receive
        send = sockets.send
        clock = time.perf_counter
        offset = time.time() - clock()
        stopping = self.stopping
        while not stopping.is_set():
            try:
                received = receive()
            except OSError as exc:
                if stopping.is_set():
                    break
                log.warning("pool %s: DHCPv6 receive failed: %s", self.name, exc)
                stopping.wait(IDLE_CHECK_SECONDS)  # a gone interface must not spin
                continue
            if received is None:  # idle, woken, or not a request to us
                now = clock()
                offset = time.time() - now
                unknown_macs.tick(now)
                continue
            data, source, source_mac = received
            started = clock()
            with lock:
                reply = handle(data, started + offset, source, source_mac)
                fresh = history.take_fresh() if history.fresh else None
                post = bool(responder.notices) and not self._posted
                if post:
                    self._posted = True
            if reply is not None:
                try:
                    send(reply.payload, reply.address)
                except OSError as exc:
                    with lock:
                        counters.send_errors += 1
                    log.debug("pool %s: send to %s failed: %s", self.name, reply.address, exc)
                elapsed = clock() - started
                with lock:
                    observe(elapsed)
            if fresh:
                told = unknown_macs.sighted(fresh, started)
                if told and self.sighted is not None:
                    try:
                        self.token.run_sync_soon(self.sighted, told)
                    except trio.RunFinishedError:
                        return
            if post:
                try:
                    self.token.run_sync_soon(self.post_notices)
                except trio.RunFinishedError:
                    return
