"""RFC 2131 server behaviour for static reservations, without any I/O.

`Responder.handle(bytes)` decides what one pool answers to one packet and
returns the reply bytes with their destination, or None for silence. The
pool actor owns a Responder and feeds it what its socket receives; tests and
fuzzers feed it directly (a socket-free transport).

Replies are cached at two levels. Per client, as encoded templates: a reply
depends only on the reservation, the pool's options and a few request fields
(the cache key), so a repeat exchange costs a decode and a copy with xid and
flags patched in. And per exact request: a request whose bytes, apart from
xid, secs and flags, equal those of one answered before gets the same answer
without being decoded at all (clients repeat themselves byte for byte:
retransmissions, renewals, a relay's steady stream). Any change of options,
reservations or declines clears both.

Both levels keep what the slow path decided (an `_Answer`: the reply with xid
and flags zeroed, its destination, and the flag bits it sets), and every
reply, cached or not, is finished by the same `_stamp` from the request's own
bytes: a cached answer cannot differ from a computed one. `cache=False` turns
both levels off, for the tests and fuzzers that hold them equal.

Every packet, replayed or not, is recorded in the pool's `History` (what the
MAC sent, what was answered or why not; _history.py), and is the responder's
`last`, for the packet thread's DEBUG line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any, NamedTuple

from kvip.serving import _history as why
from kvip.serving._build import ZERO, Warned, build, destination, fit
from kvip.serving._config import PoolOptions, Reservation
from kvip.serving._counters import Counters
from kvip.serving._history import History, MacRecord, Outcome, Seen, silent
from kvip.serving._notices import Declined, Notice, Released, mac_bytes
from protocol import DecodeError, EncodeError, Message, MessageType, Op, OptionCode, decode

log = logging.getLogger(__name__)

#: RFC 1542 4.1.1: relays discard requests that went through more hops.
MAX_HOPS = 16
MIN_MESSAGE_SIZE = 576
MAX_CACHED_REPLIES = 8192
BROADCAST_FLAG = 0x8000  # RFC 2131 2, the B bit of 'flags'


class Reply(NamedTuple):
    """One answer and where it goes. A NamedTuple, not a frozen dataclass: one is
    made per packet, and a frozen dataclass's __init__ costs four times as much."""

    payload: bytes
    address: tuple[str, int]
    message_type: MessageType


class _Answer(NamedTuple):
    """What the slow path decided for a request: everything of the reply but the
    request's own xid and flags, which `_stamp` adds."""

    #: The encoded reply with xid and flags zero.
    template: bytes
    address: tuple[str, int]
    kind: MessageType
    #: Bits the reply sets in the request's flags (RFC 2131 4.3.2: a relayed NAK's B bit).
    flags: int
    #: What the history says of it.
    outcome: Outcome


def _stamp(answer: _Answer, data: bytes) -> Reply:
    """The reply to the request `data`: its xid and flags (RFC 2131 4.1) stamped
    into the answer's template. The one way a reply is finished, cached or not."""
    t = answer.template
    flags = data[10:12]
    if answer.flags:
        flags = (int.from_bytes(flags, "big") | answer.flags).to_bytes(2, "big")
    return Reply(t[:4] + data[4:8] + t[8:10] + flags + t[12:], answer.address, answer.kind)


@dataclass(slots=True)
class _Replay:
    """What answering one exact request did, to do it again without decoding it."""

    answer: _Answer
    #: The client's hardware address, and its history (kept here: no lookup).
    mac: bytes
    record: MacRecord
    # Counter keys as plain strings: an enum's .name is a descriptor call.
    received: str
    sent: str
    nak: bool


def _replay_key(data: bytes) -> bytes:
    """The request minus xid (bytes 4-7), secs (8-9) and flags (10-11).

    Nothing else decides the answer: xid and flags are copied into the reply
    (RFC 2131 4.1), secs is not used, and decoding checks none of them.
    """
    return data[:4] + data[12:]


@dataclass(slots=True)
class Responder:
    options: PoolOptions
    reservations: dict[bytes, Reservation] = field(default_factory=dict)
    #: Addresses a client declined: not handed out until an operator clears them.
    declined: set[IPv4Address] = field(default_factory=set)
    counters: Counters = field(default_factory=Counters)
    #: What happened that the actor must act on (DECLINE, RELEASE); it drains this.
    notices: list[Notice] = field(default_factory=list)
    #: Answer from the two caches (False only to test and fuzz the slow path).
    cache: bool = True
    #: This replica is shutting down: no new bindings (DISCOVER and INIT-REBOOT are
    #: left to the other replicas, so clients move on), while a renewal and a DORA
    #: begun here are still answered.
    draining: bool = False
    _cache: dict[tuple[Any, ...], _Answer] = field(default_factory=dict)
    _replays: dict[bytes, _Replay] = field(default_factory=dict)
    #: Options left out to fit a size limit, already logged for these options.
    _left_out: set[Warned] = field(default_factory=set)
    #: What each MAC sent lately and what it got (or why not).
    history: History = field(default_factory=History)
    #: The last packet handled, as recorded (also when not kept in the history).
    last: Seen | None = None
    #: Wall-clock time of the history's entries.
    clock: Callable[[], float] = time.time

    # -- state changes, from the pool actor ------------------------------------

    def set_options(self, options: PoolOptions) -> None:
        self.options = options
        self._left_out.clear()
        self._forget()

    def set_reservation(self, mac: str, reservation: Reservation) -> None:
        self.reservations[mac_bytes(mac)] = reservation
        self._forget()

    def remove_reservation(self, mac: str) -> Reservation | None:
        self._forget()
        return self.reservations.pop(mac_bytes(mac), None)

    def mark_declined(self, ip: IPv4Address) -> None:
        """A client declined `ip`, as another replica saw (no notice: not news)."""
        if ip not in self.declined:
            self.declined.add(ip)
            self._forget()

    def clear_declined(self, ip: IPv4Address) -> bool:
        self._forget()
        if ip in self.declined:
            self.declined.discard(ip)
            return True
        return False

    def drain(self) -> None:
        self.draining = True
        self._forget()

    # -- the packet path ---------------------------------------------------------

    def _forget(self) -> None:
        self._cache.clear()
        self._replays.clear()

    def handle(self, data: bytes, now: float | None = None) -> Reply | None:
        """The reply to one received packet, or None when the pool stays silent.
        `now`: when it arrived, for the history (by default, `clock()`)."""
        if now is None:
            now = self.clock()
        if self.cache:
            known = self._replays.get(_replay_key(data))
            if known is not None:
                counters = self.counters
                counters.received[known.received] += 1
                counters.sent[known.sent] += 1
                if known.nak:
                    counters.naks += 1
                answer = known.answer
                seen = self.last = (
                    now, known.mac, known.received, data[4:8], answer.outcome
                )  # fmt: skip
                record = known.record
                record.count += 1
                record.seen.append(seen)
                if record.evicted:
                    known.record = self.history.revive(known.mac, record)
                return _stamp(answer, data)
        try:
            request = decode(data)
        except DecodeError as exc:
            self.counters.malformed += 1
            self._malformed(data, exc, now)
            return None
        result = self._handle(request)
        reserved = request.htype == 1 and request.chaddr in self.reservations
        kind_name = request.message_type.name if request.message_type is not None else "?"
        outcome = result if isinstance(result, Outcome) else result.outcome
        seen = self.last = (now, request.chaddr, kind_name, data[4:8], outcome)
        if not reserved:
            if outcome.why == why.WHY_UNKNOWN_MAC:
                self.history.record(seen, reserved=False)
            return None
        record = self.history.record(seen, reserved=True)
        if isinstance(result, Outcome):
            return None
        answer = result
        kind = answer.kind
        self.counters.sent[kind.name] += 1
        if self.cache:
            # Only answers are replayed: silence has counters of many kinds, and
            # DECLINE and RELEASE (never answered) have effects beyond counting.
            if len(self._replays) >= MAX_CACHED_REPLIES:
                self._replays.clear()
            self._replays[_replay_key(data)] = _Replay(
                answer,
                mac=request.chaddr,
                record=record,
                received=kind_name,
                sent=kind.name,
                nak=kind == MessageType.NAK,
            )
        return _stamp(answer, data)

    def _malformed(self, data: bytes, exc: DecodeError, now: float) -> None:
        """Recorded in the history of a reserved MAC only: garbage from random
        hardware addresses must not fill the table of unknown ones."""
        mac = data[28:34] if len(data) >= 34 and data[1:3] == b"\x01\x06" else b""
        outcome = silent(f"{why.WHY_MALFORMED}: {exc}")
        seen = self.last = (now, mac, "?", data[4:8], outcome)
        if mac in self.reservations:
            self.history.record(seen, reserved=True)

    def _handle(self, request: Message) -> _Answer | Outcome:
        """The answer to a decoded request, or why there is none."""
        kind = request.message_type
        if request.op != Op.BOOTREQUEST or kind is None:
            self.counters.ignored += 1
            return silent(why.WHY_NOT_A_REQUEST)
        self.counters.received[kind.name] += 1
        if request.hops > MAX_HOPS:
            self.counters.ignored += 1
            return silent(why.WHY_TOO_MANY_HOPS)
        reservation = self.reservations.get(request.chaddr) if request.htype == 1 else None
        if reservation is None:
            self.counters.unknown_mac += 1
            return silent(why.WHY_UNKNOWN_MAC)
        if self.draining and (
            kind == MessageType.DISCOVER
            or (
                kind == MessageType.REQUEST and request.server_id is None and request.ciaddr == ZERO
            )
        ):
            self.counters.ignored += 1
            return silent(why.WHY_DRAINING)
        if kind == MessageType.DISCOVER:
            return self._discover(request, reservation)
        if kind == MessageType.REQUEST:
            return self._request(request, reservation)
        if kind == MessageType.INFORM:
            return self._reply(request, reservation, MessageType.ACK, inform=True)
        if kind == MessageType.DECLINE:
            return self._decline(request, reservation)
        if kind == MessageType.RELEASE:
            return self._release(request, reservation)
        self.counters.ignored += 1
        return silent(why.WHY_NOT_HANDLED)

    def _discover(self, request: Message, reservation: Reservation) -> _Answer | Outcome:
        if reservation.ip in self.declined:
            # Counted, and in the history (and the DEBUG line): the DECLINE was
            # warned about (and shown in status) once; a client retrying, or anyone
            # sending DISCOVERs with its MAC, must not turn each packet into a warning.
            self.counters.ignored += 1
            return silent(why.WHY_DECLINED_ADDRESS)
        # RFC 4039: with rapid commit, a DISCOVER gets the ACK straight away.
        if OptionCode.RAPID_COMMIT in request.options:
            return self._reply(request, reservation, MessageType.ACK, rapid=True)
        return self._reply(request, reservation, MessageType.OFFER)

    def _request(self, request: Message, reservation: Reservation) -> _Answer | Outcome:
        server_id = request.server_id
        requested = request.requested_ip
        if server_id is not None:
            # SELECTING (RFC 2131 4.3.2): the client chose a server; if not us, be quiet.
            if server_id != self.options.server_ip:
                self.counters.ignored += 1
                return silent(why.WHY_ANOTHER_SERVER)
            wanted = requested if requested is not None else request.ciaddr
        elif request.ciaddr != ZERO:
            wanted = request.ciaddr  # RENEWING (unicast) or REBINDING (broadcast)
        elif requested is not None:
            wanted = requested  # INIT-REBOOT
        else:
            self.counters.malformed += 1
            return silent(why.WHY_NO_ADDRESS)
        if wanted != reservation.ip:
            return self._nak(request, f"{wanted} is not the address reserved for this client")
        if reservation.ip in self.declined:
            return self._nak(request, f"{wanted} was declined as in use; ask an operator")
        return self._reply(request, reservation, MessageType.ACK)

    def _for_another_server(self, request: Message) -> bool:
        """A DECLINE or RELEASE naming another server (RFC 2131 4.3.3, 4.3.4): with
        several replicas each has its own identifier, and the one the client named
        acts on it. Counted as ignored; one without an identifier is ours."""
        server_id = request.server_id
        if server_id is not None and server_id != self.options.server_ip:
            self.counters.ignored += 1
            return True
        return False

    def _decline(self, request: Message, reservation: Reservation) -> Outcome:
        if self._for_another_server(request):
            return silent(why.WHY_ANOTHER_SERVER)
        ip = request.requested_ip or reservation.ip
        self.counters.declines += 1
        if ip != reservation.ip:
            return Outcome(None, str(ip), why.WHY_DECLINE_IGNORED)
        self.declined.add(ip)
        self._forget()
        message = request.options.get(OptionCode.MESSAGE)
        self.notices.append(
            Declined(request.mac, ip, message if isinstance(message, str) else None)
        )
        return Outcome(None, str(ip), why.WHY_DECLINED)

    def _release(self, request: Message, reservation: Reservation) -> Outcome:
        if self._for_another_server(request):
            return silent(why.WHY_ANOTHER_SERVER)
        # The address stays the VM's (RFC 2131 4.3.4 lets us keep it); count it.
        self.counters.releases += 1
        released = request.ciaddr if request.ciaddr != ZERO else reservation.ip
        self.notices.append(Released(request.mac, released))
        return Outcome(None, str(released), why.WHY_RELEASED)

    # -- building replies ----------------------------------------------------------

    def _nak(self, request: Message, reason: str) -> _Answer | Outcome:
        self.counters.naks += 1
        return self._reply(request, None, MessageType.NAK, reason=reason)

    def _reply(
        self,
        request: Message,
        reservation: Reservation | None,
        kind: MessageType,
        *,
        inform: bool = False,
        rapid: bool = False,
        reason: str = "",
    ) -> _Answer | Outcome:
        opts = request.options
        # RFC 2132 9.10: the client's limit counts IP and UDP headers; never below 576.
        max_size = max(request.max_message_size or 0, MIN_MESSAGE_SIZE)
        renewing = kind == MessageType.ACK and request.ciaddr != ZERO
        # Everything `build`, `fit`, `destination` and the flags below read of
        # the request (the reservation and declines are cleared with the cache).
        key = (
            kind,
            inform,
            rapid,
            reason,
            request.chaddr,
            request.htype,
            request.ciaddr,
            request.giaddr,
            opts.raw(OptionCode.PARAMETER_REQUEST_LIST),
            opts.raw(OptionCode.CLIENT_ID),
            opts.raw(OptionCode.RELAY_AGENT_INFO),
            max_size,
        )
        answer = self._cache.get(key) if self.cache else None
        if answer is None:
            message = build(
                self.options,
                request,
                reservation,
                kind,
                inform=inform,
                rapid=rapid,
                reason=reason,
                renewing=renewing,
            )
            try:
                template = fit(message, max_size, subnet=self.options.subnet, warned=self._left_out)
            except EncodeError as exc:
                self.counters.send_errors += 1
                log.error("cannot build a %s for %s: %s", kind.name, request.mac, exc)
                return silent(why.WHY_CANNOT_BUILD)
            flags = 0
            if kind == MessageType.NAK and request.giaddr != ZERO:
                # RFC 2131 4.3.2: the client may have no usable address or mask and may
                # not answer ARP; the broadcast bit makes the relay broadcast the NAK.
                flags = BROADCAST_FLAG
            ip = str(reservation.ip) if reservation is not None and not inform else None
            outcome = Outcome(kind.name, ip, reason or None)
            answer = _Answer(template, destination(request, kind), kind, flags, outcome)
            if self.cache:
                if len(self._cache) >= MAX_CACHED_REPLIES:
                    self._cache.clear()
                self._cache[key] = answer
        return answer
