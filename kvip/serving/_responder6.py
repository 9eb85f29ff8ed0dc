"""RFC 8415 server behaviour for static reservations, without any I/O: the
DHCPv6 twin of `Responder`.

`Responder6.handle(data, now, source, source_mac)` decides what one pool
answers to one packet and returns the reply with its destination, or None for
silence. It never raises: a packet `protocol.dhcp6.decode` refuses is counted
as malformed and dropped.

Who is the client? DHCPv6 has no chaddr, and a reservation belongs to a NIC's
MAC. `client_mac` (in _build6.py) takes it, in this order, from:

1. the client's DUID, when it is a DUID-LL or DUID-LLT of an Ethernet address
   (dhclient, dhcpcd and wide-dhcpv6 make a DUID-LLT by default, as the
   corpus in fuzz/corpus6 shows);
2. for a direct message, the Ethernet source of the frame, which the pool's
   socket sees on the bridge (clients whose DUID holds no MAC: systemd-networkd's
   DUID-EN, dhcpcd's DUID-UUID, any UnknownDuid);
3. for a relayed message, option 79 (RFC 6939) of the relay next to the client.

A DUID-LLT is made once per host, from whichever NIC came first, and kept; a
VM with two NICs sends it on both. So the link's MAC (2 or 3) is tried when
the DUID's has no reservation in this pool, and wins when it is reserved too
but differs (two NICs of one VM on one network: the frame says which sent it).

What it answers (RFC 8415 18.3):

- SOLICIT: ADVERTISE (Preference 255: the client need not wait for others),
  or REPLY with Rapid Commit when the client asks and the pool allows; the
  first IA_NA holds the reserved address, other IA_NAs and IA_TAs get
  NoAddrsAvail, IA_PDs NoPrefixAvail. When nothing is offered (a declined
  address, no IA_NA), the ADVERTISE holds the ids and NoAddrsAvail only.
  Unknown clients and a draining replica: silence.
- REQUEST, RENEW, RELEASE, DECLINE: only when their Server Identifier is
  ours. REQUEST: a REPLY holding the reservation as a SOLICIT's ADVERTISE
  would; when nothing can be given (unknown client, declined address) each
  IA says why (NoAddrsAvail).
- RENEW, and REBIND (which names no server): the reservation in the first
  IA_NA, NoBinding in the other IAs, and every address the client holds that
  is not its reservation back with lifetimes 0. An unknown client gets
  NoBinding for a RENEW, silence for a REBIND.
- CONFIRM: Success when every address the client lists is on the pool's
  subnet, NotOnLink otherwise; silence without addresses.
- RELEASE and DECLINE: REPLY Success, and NoBinding in each IA that does not
  hold the reservation. When one does, the reservation stays the VM's and
  the actor is told (a `Released` or `Declined` notice); a declined address
  is not offered again until `clear_declined`.
- INFORMATION-REQUEST from a known client: REPLY with configuration only.

Configuration options (DNS servers, search list, NTP servers) go in every
REPLY and ADVERTISE that assigns an address, and in every INFORMATION-REQUEST
reply, whether the client's ORO lists them or not: RFC 8415 18.3 lets a
server send what it is configured to, the operator configured them for these
VMs, clients ignore what they do not use, and the reply then does not depend
on the ORO (the clients captured in fuzz/corpus6 all ask for 23 and 24, all
but dhcp6c for 56 too).

Not done: Server Unicast (the replies never offer it, so a unicast request
is answered like a multicast one), Reconfigure and authentication.

Counters are the DHCPv4 ones, keyed by DHCPv6 message type names; `naks`
counts replies that assign nothing to a client that asked for an address
(REQUEST, RENEW, REBIND) and CONFIRMs answered NotOnLink.

Replay cache, as the DHCPv4 `Responder`'s: a request whose bytes equal those
of one answered before, but for the client message's transaction id and
Elapsed Time value (`replay_key`), from the same frame source MAC, gets the
same answer without being decoded (retransmissions, renewals, a relay's
steady stream). The answer kept (`Answer6`) is the reply with its
transaction id zero, and every reply, replayed or computed, is finished by
the same `stamp` with the request's own transaction id and source: a
replayed answer cannot differ from a computed one. Only answers are kept:
silence has many counters, and RELEASE and DECLINE have notices and
declines beyond their REPLY. Any change of options, reservations, declines
or draining clears it; `cache=False` turns it off (the tests and fuzzers
hold both ways equal).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv6Address

from kvip.serving._answers6 import Answers6
from kvip.serving._build6 import (
    Built,
    Replay6,
    Reply6,
    SockAddr6,
    configuration_bytes,
    duid_mac,
    link_mac,
    relayed,
    replay_key,
    stamp,
    template,
)
from kvip.serving._config6 import PoolOptions6, Reservation6
from kvip.serving._counters import Counters
from kvip.serving._history import (
    WHY_CANNOT_BUILD,
    WHY_NOT_HANDLED,
    WHY_UNKNOWN_MAC,
    History,
    Outcome,
    silent,
)
from kvip.serving._notices import Notice, mac_bytes
from protocol.dhcp6 import (
    DecodeError,
    Duid,
    EncodeError,
    Message,
    MessageType,
    RelayMessage,
    ServerId,
    decode,
    encode,
)

log = logging.getLogger(__name__)

#: Answers kept at most; the cache starts afresh when full.
MAX_CACHED_REPLIES = 8192

#: The last packet handled: when, the client's MAC (None: unknown), its type.
Last6 = tuple[float, bytes | None, str]


@dataclass(slots=True)
class Responder6(Answers6):
    """One pool's DHCPv6 server state: reservations, declines, counters."""

    options: PoolOptions6
    #: The pool's DUID (`pool_server_duid`), the same on every replica; fixed.
    server_duid: Duid
    #: Reservations by the NIC's 6-byte MAC.
    reservations: dict[bytes, Reservation6] = field(default_factory=dict)
    #: Addresses a client declined: not handed out until an operator clears them.
    declined: set[IPv6Address] = field(default_factory=set)
    counters: Counters = field(default_factory=Counters)
    #: What each MAC sent lately and what it was answered, or why not (as
    #: the DHCPv4 Responder's; a message whose client has no MAC is not kept).
    history: History = field(default_factory=History)
    #: What handling one message found, for its history: why silent, what given.
    _why: str | None = field(default=None, init=False)
    _given: IPv6Address | None = field(default=None, init=False)
    #: What happened that the actor must act on (DECLINE, RELEASE); it drains this.
    notices: list[Notice] = field(default_factory=list)
    #: This replica is shutting down: no SOLICIT is answered (clients move to
    #: the other replicas), while REQUEST, RENEW and the rest still are.
    draining: bool = False
    #: The last packet handled, for the packet thread's DEBUG line.
    last: Last6 | None = None
    #: Answer repeated requests from the replay cache (False only to test and
    #: fuzz the slow path).
    cache: bool = True
    _replays: dict[tuple[bytes, bytes | None], Replay6] = field(default_factory=dict)
    _server_id: ServerId = field(init=False)
    #: The pool's configuration options, encoded once per `set_options`.
    _configuration: bytes = field(init=False)

    def __post_init__(self) -> None:
        self._server_id = ServerId(self.server_duid)
        self._configuration = configuration_bytes(self.options)

    # -- state changes, from the pool actor ------------------------------------

    def set_options(self, options: PoolOptions6) -> None:
        self.options = options
        self._configuration = configuration_bytes(options)
        self._replays.clear()

    def set_reservation(self, mac: str, reservation: Reservation6) -> None:
        self.reservations[mac_bytes(mac)] = reservation
        self._replays.clear()

    def remove_reservation(self, mac: str) -> Reservation6 | None:
        self._replays.clear()
        return self.reservations.pop(mac_bytes(mac), None)

    def mark_declined(self, ip: IPv6Address) -> bool:
        """A client declined `ip`, as another replica saw (no notice: not news).
        True when it was not declined here yet."""
        if ip in self.declined:
            return False
        self.declined.add(ip)
        self._replays.clear()
        return True

    def clear_declined(self, ip: IPv6Address) -> bool:
        self._replays.clear()
        if ip in self.declined:
            self.declined.discard(ip)
            return True
        return False

    def drain(self) -> None:
        self.draining = True
        self._replays.clear()

    # -- the packet path ---------------------------------------------------------

    def handle(
        self, data: bytes, now: float, source: SockAddr6, source_mac: bytes | None
    ) -> Reply6 | None:
        """The reply to one received packet, or None when the pool stays silent.

        `now`: when it arrived; `source`: the sender's (host, port, flowinfo,
        scope id) as the socket saw it; `source_mac`: its frame's Ethernet
        source (without CAP_NET_RAW: an EUI-64 link-local's MAC), or None.
        """
        counters = self.counters
        key: tuple[bytes, bytes | None] | None = None
        layout = replay_key(data) if self.cache else None
        if layout is not None:
            key = (layout[0], source_mac)
            known = self._replays.get(key)
            if known is not None:
                counters.received[known.received] += 1
                if known.unknown:
                    counters.unknown_mac += 1
                if known.nak:
                    counters.naks += 1
                counters.sent[known.sent] += 1
                self.last = (now, known.mac, known.received)
                xid_at = layout[1]
                xid = data[xid_at : xid_at + 3]
                if known.mac is not None:
                    seen = (now, known.mac, known.received, xid, known.outcome)
                    self.history.record(seen, reserved=not known.unknown)
                return stamp(known.answer, xid, source)
        try:
            message = decode(data)
        except DecodeError:
            counters.malformed += 1
            self.last = (now, None, "?")
            return None
        relays: list[RelayMessage] = []
        while isinstance(message, RelayMessage):
            if message.msg_type != MessageType.RELAY_FORW:  # a RELAY-REPL is not ours
                counters.ignored += 1
                return None
            relays.append(message)
            inner = message.relayed
            if inner is None:  # RFC 8415 19.1: a RELAY-FORW always relays a message
                counters.malformed += 1
                return None
            message = inner
        kind = message.msg_type
        counters.received[kind.name] += 1
        answer = _ANSWERS.get(kind)
        if answer is None:  # ADVERTISE, REPLY, RECONFIGURE: from servers, not to them
            counters.ignored += 1
            self.last = (now, None, kind.name)
            return None
        mac, reservation = self._client(message, relays, source_mac)
        self.last = (now, mac, kind.name)
        if reservation is None:
            counters.unknown_mac += 1
        naks = counters.naks
        self._why = self._given = None
        built = answer(self, message, mac, reservation)
        xid = message.transaction_id.to_bytes(3, "big")
        if built is None:
            why = WHY_UNKNOWN_MAC if reservation is None else self._why or WHY_NOT_HANDLED
            self._remember(now, mac, kind.name, xid, silent(why), reservation is not None)
            return None
        reply = built.message
        try:
            client = encode(reply) + built.tail
            payload = relayed(client, relays) if relays else client
        except EncodeError as exc:
            counters.send_errors += 1
            log.error("cannot build a %s for %s: %s", reply.msg_type.name, mac, exc)
            outcome = silent(f"{WHY_CANNOT_BUILD}: {exc}")
            self._remember(now, mac, kind.name, xid, outcome, reservation is not None)
            return None
        sent = reply.msg_type
        counters.sent[sent.name] += 1
        given = self._given
        outcome = Outcome(sent.name, str(given) if given is not None else None, None)
        self._remember(now, mac, kind.name, xid, outcome, reservation is not None)
        done = template(payload, len(client), relayed=bool(relays), kind=sent)
        if key is not None and kind not in _NOT_REPLAYED:
            if len(self._replays) >= MAX_CACHED_REPLIES:
                self._replays.clear()
            self._replays[key] = Replay6(
                done, mac, kind.name, sent.name, reservation is None, counters.naks != naks,
                outcome,
            )  # fmt: skip
        return stamp(done, xid, source)

    def _remember(
        self, now: float, mac: bytes | None, kind: str, xid: bytes, outcome: Outcome, known: bool
    ) -> None:
        """Into the MAC's history (a client whose MAC is not known: nowhere)."""
        if mac is not None:
            self.history.record((now, mac, kind, xid, outcome), reserved=known)

    def _client(
        self, message: Message, relays: Sequence[RelayMessage], source_mac: bytes | None
    ) -> tuple[bytes | None, Reservation6 | None]:
        """The client's MAC and its reservation (see the module docstring)."""
        mac = duid_mac(message)
        on_link = link_mac(source_mac, relays)
        if on_link is not None and on_link != mac:
            # The DUID's MAC when reserved, unless the link names another
            # reserved NIC: a host DUID is shared by all the VM's NICs.
            reservation = self.reservations.get(on_link)
            if reservation is not None:
                return on_link, reservation
        if mac is not None:
            reservation = self.reservations.get(mac)
            if reservation is not None:
                return mac, reservation
        return (mac if on_link is None else on_link), None


#: Their REPLY is not all they do: the notice and the decline are done every time.
_NOT_REPLAYED = (MessageType.RELEASE, MessageType.DECLINE)
_Answer = Callable[[Answers6, Message, bytes | None, Reservation6 | None], Built | None]
_ANSWERS: dict[MessageType, _Answer] = {
    MessageType.SOLICIT: Answers6._solicit,
    MessageType.REQUEST: Answers6._request,
    MessageType.CONFIRM: Answers6._confirm,
    MessageType.RENEW: Answers6._renew,
    MessageType.REBIND: Answers6._rebind,
    MessageType.RELEASE: Answers6._release,
    MessageType.DECLINE: Answers6._decline,
    MessageType.INFORMATION_REQUEST: Answers6._information,
}
