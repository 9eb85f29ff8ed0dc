"""A pool's packet thread: blocking receive, answer, send, in an OS thread.

A trio wakeup per packet cost about twice the CPU of a blocking receive
(bench/README.md), so each pool's socket is served by a thread of its own.
The thread shares only the Responder with the actor's inbox task, always under
the actor's lock, whose critical sections are CPU-only (no I/O, no logging).
What the thread learns (DECLINE, RELEASE) it does not act on: it posts one
wakeup to the actor (`post_notices`), which takes the notices as a message in
its own inbox. What it logs of each packet (_packet_log.py) it logs after
letting go of the lock.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from kvip.actors._packet_log import UnknownMacLog, log_packet
from kvip.serving import Declined, Notice, Released, Responder

log = logging.getLogger(__name__)

#: How often the packet thread looks up from an idle socket to see whether it
#: should stop (it is normally woken at once by shutting the socket down).
IDLE_CHECK_SECONDS = 1


@dataclass(slots=True)
class PacketThread:
    name: str
    sock: socket.socket
    responder: Responder
    lock: threading.Lock
    #: Runs in the trio thread (through the token) when notices are waiting;
    #: called once until the actor has taken them (`notices_taken`).
    post_notices: Callable[[], None]
    token: trio.lowlevel.TrioToken
    #: Runs in the trio thread with the unknown MACs whose first sighting was
    #: logged (within the log's budget).
    sighted: Callable[[list[str]], None] | None = None
    stopping: threading.Event = field(default_factory=threading.Event)
    _posted: bool = False

    def notices_taken(self) -> None:
        """The actor took the pending notices (call with the lock held)."""
        self._posted = False

    def stop(self) -> None:
        """Make `run` return soon: shutting the socket down wakes a blocked recv."""
        self.stopping.set()
        # Linux says ENOTCONN for an unconnected UDP socket, and wakes the reader anyway.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RD)

    def run(self) -> None:
        """Receive, answer, send, until `stop` (runs in its own thread)."""
        sock = self.sock
        sock.setblocking(True)
        # A kernel receive timeout, not settimeout(): that would poll() before every recv.
        sock.setsockopt(
            socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", IDLE_CHECK_SECONDS, 0)
        )
        responder = self.responder
        counters = responder.counters
        history = responder.history
        unknown_macs = UnknownMacLog(self.name)
        enabled = log.isEnabledFor
        observe = counters.latency.observe
        handle = responder.handle
        lock = self.lock
        recv = sock.recv
        sendto = sock.sendto
        clock = time.perf_counter
        # The history's times are wall-clock: the latency's clock plus an offset
        # (one clock read per packet, not two), set again whenever idle.
        offset = time.time() - clock()
        stopping = self.stopping
        while not stopping.is_set():
            try:
                data = recv(4096)
            except BlockingIOError:  # idle for IDLE_CHECK_SECONDS
                now = clock()
                offset = time.time() - now
                unknown_macs.tick(now)
                continue
            except OSError as exc:
                log.warning("pool %s: receive failed: %s", self.name, exc)
                continue
            if not data and stopping.is_set():
                break  # woken by stop()'s shutdown, not a (malformed) empty datagram
            started = clock()
            with lock:
                reply = handle(data, started + offset)
                seen = responder.last
                fresh = history.take_fresh() if history.fresh else None
                post = bool(responder.notices) and not self._posted
                if post:
                    self._posted = True
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
            if fresh:
                told = unknown_macs.sighted(fresh, started)
                if told and self.sighted is not None:
                    try:
                        self.token.run_sync_soon(self.sighted, told)
                    except trio.RunFinishedError:
                        return
            if seen is not None and enabled(logging.DEBUG):
                log_packet(self.name, seen)
            if post:
                try:
                    self.token.run_sync_soon(self.post_notices)
                except trio.RunFinishedError:
                    return


def log_notice(pool: str, notice: Notice) -> None:
    """What the log says of a DECLINE or RELEASE a client sent."""
    if isinstance(notice, Declined):
        log.warning(
            "pool %s: %s declined %s: the address is in use by another host%s. "
            "With a static reservation there is no other address to offer; "
            "find the other host, then clear the decline",
            pool,
            notice.mac,
            notice.ip,
            f" ({notice.message})" if notice.message else "",
            extra=_fields(pool, notice, "DECLINE"),
        )
    elif isinstance(notice, Released):
        log.info(
            "pool %s: %s released %s; the address stays reserved for its VM",
            pool,
            notice.mac,
            notice.ip,
            extra=_fields(pool, notice, "RELEASE"),
        )


def _fields(pool: str, notice: Notice, kind: str) -> dict[str, str]:
    return {"pool": pool, "mac": notice.mac, "ip": str(notice.ip), "message_type": kind}
