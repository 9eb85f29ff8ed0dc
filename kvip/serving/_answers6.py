"""What a Responder6 answers to each DHCPv6 message type (RFC 8415 18.3; the
rules are in _responder6.py's docstring): one method per type, each given the
decoded message, the client's MAC and its reservation, each returning the
reply to build or None for silence. A mixin of Responder6, on its packet path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from ipaddress import IPv6Address

from kvip.serving._build6 import (
    NO_ADDRS,
    NO_ADDRS_DECLINED,
    NOT_ON_LINK,
    SUCCESS,
    Built,
    bound_ias,
    given_back,
    listed,
)
from kvip.serving._config6 import PoolOptions6, Reservation6
from kvip.serving._counters import Counters
from kvip.serving._history import WHY_ANOTHER_SERVER, WHY_DRAINING, WHY_INVALID
from kvip.serving._notices import Declined, Notice, Released
from protocol.dhcp6 import (
    IANA,
    IAPD,
    IATA,
    ClientId,
    Duid,
    Message,
    MessageType,
    Option,
    Preference,
    RapidCommit,
    ServerId,
)

#: RFC 8415 18.2.1: a client takes an ADVERTISE of preference 255 at once.
MAX_PREFERENCE = Preference(255)
_RAPID_COMMIT = RapidCommit()
_IA_TYPES = (IANA, IATA, IAPD)


class Answers6:
    # (No __slots__: Responder6's dataclass holds the fields.)
    options: PoolOptions6
    server_duid: Duid
    declined: set[IPv6Address]
    counters: Counters
    notices: list[Notice]
    draining: bool
    _why: str | None
    _given: IPv6Address | None
    _server_id: ServerId
    _configuration: bytes
    mark_declined: Callable[[IPv6Address], bool]

    def _ours(self, message: Message) -> bool:
        """The message names this pool's DUID (RFC 8415 16: REQUEST, RENEW,
        RELEASE and DECLINE for another server are discarded)."""
        if message.server_duid == self.server_duid:
            return True
        self.counters.ignored += 1
        self._why = WHY_ANOTHER_SERVER
        return False

    def _valid(self, message: Message, *, server_id: bool) -> bool:
        """RFC 8415 16: a client id, and a server id exactly when expected
        (SOLICIT, CONFIRM and REBIND must carry none)."""
        if message.get(ClientId) is None or (message.get(ServerId) is not None) != server_id:
            self.counters.ignored += 1
            self._why = WHY_INVALID
            return False
        return True

    def _reply(
        self, kind: MessageType, request: Message, body: Sequence[Option], tail: bytes = b""
    ) -> Built:
        """Server id, the client's id (RFC 8415 18.3), then `body`, then the
        options encoded in `tail` (the configuration)."""
        client = request.get(ClientId)
        head: tuple[Option, ...] = (
            (self._server_id,) if client is None else (self._server_id, client)
        )
        return Built(
            Message(msg_type=kind, transaction_id=request.transaction_id, options=(*head, *body)),
            tail,
        )

    # -- one method per message type -----------------------------------------------

    def _solicit(
        self, request: Message, mac: bytes | None, reservation: Reservation6 | None
    ) -> Built | None:
        if reservation is None or not self._valid(request, server_id=False):
            return None
        if self.draining:
            self.counters.ignored += 1
            self._why = WHY_DRAINING
            return None
        ias, given = bound_ias(request, reservation, self.declined, self.options, renewing=False)
        if not given:
            # RFC 8415 18.3.9: nothing to assign is an ADVERTISE of the ids and
            # a NoAddrsAvail status only (some clients fail on IAs without addresses).
            why = NO_ADDRS_DECLINED if reservation.ip in self.declined else NO_ADDRS
            return self._reply(MessageType.ADVERTISE, request, (why,))
        self._given = reservation.ip
        if request.rapid_commit and self.options.rapid_commit:
            body = (*ias, _RAPID_COMMIT)
            return self._reply(MessageType.REPLY, request, body, self._configuration)
        body = (*ias, MAX_PREFERENCE)
        return self._reply(MessageType.ADVERTISE, request, body, self._configuration)

    def _request(
        self, request: Message, mac: bytes | None, reservation: Reservation6 | None
    ) -> Built | None:
        return self._bind(request, reservation, renewing=False)

    def _renew(
        self, request: Message, mac: bytes | None, reservation: Reservation6 | None
    ) -> Built | None:
        return self._bind(request, reservation, renewing=True)

    def _rebind(
        self, request: Message, mac: bytes | None, reservation: Reservation6 | None
    ) -> Built | None:
        if reservation is None or not self._valid(request, server_id=False):
            return None
        return self._bind(request, reservation, renewing=True)

    def _bind(
        self, request: Message, reservation: Reservation6 | None, *, renewing: bool
    ) -> Built | None:
        """REQUEST, RENEW (for us) and REBIND (for anyone): the reservation."""
        named = request.msg_type != MessageType.REBIND
        if named and not (self._valid(request, server_id=True) and self._ours(request)):
            return None
        ias, given = bound_ias(request, reservation, self.declined, self.options, renewing=renewing)
        if not given:
            self.counters.naks += 1
            return self._reply(MessageType.REPLY, request, ias)
        self._given = reservation.ip if reservation is not None else None
        return self._reply(MessageType.REPLY, request, ias, self._configuration)

    def _confirm(
        self, request: Message, mac: bytes | None, reservation: Reservation6 | None
    ) -> Built | None:
        if reservation is None or not self._valid(request, server_id=False):
            return None
        subnet = self.options.subnet
        addresses = [a for ia in request.options if isinstance(ia, IANA | IATA) for a in listed(ia)]
        if not addresses:  # RFC 8415 18.3.3: nothing to confirm, no reply
            self.counters.ignored += 1
            self._why = WHY_INVALID
            return None
        if all(a in subnet for a in addresses):
            return self._reply(MessageType.REPLY, request, (SUCCESS,))
        self.counters.naks += 1
        return self._reply(MessageType.REPLY, request, (NOT_ON_LINK,))

    def _release(
        self, request: Message, mac: bytes | None, reservation: Reservation6 | None
    ) -> Built | None:
        if not (self._valid(request, server_id=True) and self._ours(request)):
            return None
        ias, found = given_back(request, reservation)
        if reservation is not None and mac is not None and found:
            # The address stays the VM's (RFC 8415 18.3.7 lets a server keep it).
            self.counters.releases += 1
            self.notices.append(Released(mac.hex(":"), reservation.ip))
        return self._reply(MessageType.REPLY, request, (SUCCESS, *ias))

    def _decline(
        self, request: Message, mac: bytes | None, reservation: Reservation6 | None
    ) -> Built | None:
        if not (self._valid(request, server_id=True) and self._ours(request)):
            return None
        ias, found = given_back(request, reservation)
        if reservation is not None and mac is not None and found:
            self.counters.declines += 1
            if self.mark_declined(reservation.ip):
                self.notices.append(Declined(mac.hex(":"), reservation.ip, None))
        return self._reply(MessageType.REPLY, request, (SUCCESS, *ias))

    def _information(
        self, request: Message, mac: bytes | None, reservation: Reservation6 | None
    ) -> Built | None:
        if reservation is None:
            return None
        server = request.server_duid
        if (server is not None and server != self.server_duid) or any(
            isinstance(o, _IA_TYPES) for o in request.options
        ):
            # RFC 8415 16.12: another server's, or with IAs: not a valid one.
            self.counters.ignored += 1
            self._why = WHY_INVALID
            return None
        return self._reply(MessageType.REPLY, request, (), self._configuration)
