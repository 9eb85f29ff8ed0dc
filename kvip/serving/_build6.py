"""The pieces of a DHCPv6 reply (RFC 8415): who the client is, what goes in its
IAs, the pool's configuration options, the relay layers and the destination.

Pure functions of the request, the pool's options and the reservation; the
Responder6 decides which reply to build from them. And the byte-level pieces
of its replay cache: where a message's transaction id and Elapsed Time lie
and the request without them (`replay_key`), and the one way a
reply is finished (`stamp`).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence, Set
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import NamedTuple

from kvip.serving._config6 import PoolOptions6, Reservation6
from kvip.serving._history import Outcome
from protocol.dhcp6 import (
    IANA,
    IAPD,
    IATA,
    DnsServers,
    DomainList,
    DuidLL,
    DuidLLT,
    EncodeError,
    IAAddress,
    InterfaceId,
    Message,
    MessageType,
    NtpServer,
    NtpServerAddress,
    NtpServerFqdn,
    Option,
    RelayMessage,
    RelayMessageOption,
    Status,
    StatusCode,
    encode,
)

#: RFC 8415 7.2: clients listen on 546, servers and relays on 547.
CLIENT_PORT6 = 546
SERVER_PORT6 = 547

#: IANA hardware type of Ethernet (DUIDs, RFC 6939's link-layer type).
ETHERNET = 1
MAC_SIZE = 6

_TLV = struct.Struct("!HH")
_MAX_OPTION = 0xFFFF

#: The socket address of an AF_INET6 peer: host, port, flowinfo, scope id.
SockAddr6 = tuple[str, int, int, int]

# Status options are the same few values again and again: made once.
NO_ADDRS = StatusCode(Status.NO_ADDRS_AVAIL, "no address reserved for this client")
NO_ADDRS_DECLINED = StatusCode(
    Status.NO_ADDRS_AVAIL, "the reserved address was declined as in use; ask an operator"
)
NO_PREFIX = StatusCode(Status.NO_PREFIX_AVAIL, "this server delegates no prefixes")
NO_BINDING = StatusCode(Status.NO_BINDING, "no binding for this IA")
NOT_ON_LINK = StatusCode(Status.NOT_ON_LINK, "an address is not on this link")
SUCCESS = StatusCode(Status.SUCCESS, "")


def duid_mac(message: Message) -> bytes | None:
    """The Ethernet address in the client's DUID-LL or DUID-LLT, else None."""
    option = message.client_duid
    if type(option) is DuidLL or type(option) is DuidLLT:
        address = option.link_layer_address
        if option.hardware_type == ETHERNET and len(address) == MAC_SIZE:
            return address
    return None


def link_mac(source_mac: bytes | None, relays: Sequence[RelayMessage]) -> bytes | None:
    """The client's MAC as the link saw it: for a direct message the frame's
    source; for a relayed one option 79 of the relay next to the client (the
    innermost, last of `relays`: only it saw the client's frame)."""
    if not relays:
        return source_mac if source_mac is not None and len(source_mac) == MAC_SIZE else None
    option = relays[-1].client_link_layer_address
    if (
        option is not None
        and option.link_layer_type == ETHERNET
        and len(option.address) == MAC_SIZE
    ):
        return option.address
    return None


def client_mac(
    message: Message, source_mac: bytes | None, relays: Sequence[RelayMessage]
) -> bytes | None:
    """The MAC that identifies the client: its DUID's when a DUID-LL(T) carries
    one, else the link's (`link_mac`). The Responder6 also tries the link's
    when the DUID's is not reserved, or is but the link's names another
    reserved NIC (see kvip.serving._responder6)."""
    mac = duid_mac(message)
    return mac if mac is not None else link_mac(source_mac, relays)


def configuration(options: PoolOptions6) -> tuple[Option, ...]:
    """The pool's configuration options, the same in every reply: DNS servers
    (23), search list (24), one NTP option (56) per server, by address
    (sub-option 1) or name (sub-option 3)."""
    found: list[Option] = []
    if options.dns:
        found.append(DnsServers(options.dns))
    if options.domain_search:
        found.append(DomainList(options.domain_search))
    found.extend(NtpServer((NtpServerAddress(ip),)) for ip in options.ntp)
    found.extend(NtpServer((NtpServerFqdn(name),)) for name in options.ntp_names)
    return tuple(found)


def configuration_bytes(options: PoolOptions6) -> bytes:
    """`configuration(options)` encoded as a message's options: made once per
    `set_options`, and put after the other options of each reply."""
    return encode(
        Message(msg_type=MessageType.REPLY, transaction_id=0, options=configuration(options))
    )[_CLIENT_HEADER:]


class Built(NamedTuple):
    """A reply before encoding: its message, and options already encoded that
    follow the message's own (`configuration_bytes`)."""

    message: Message
    tail: bytes


def listed(ia: IANA | IATA) -> list[IPv6Address]:
    """The addresses the client put in an IA, in order."""
    return [o.address for o in ia.options if type(o) is IAAddress]


def withdrawn(addresses: Sequence[IPv6Address], keep: IPv6Address | None) -> list[IAAddress]:
    """RFC 8415 18.3.4/18.3.5: addresses the client holds that are not (or no
    longer) its own come back with lifetimes 0, so it stops using them."""
    return [IAAddress(address=a) for a in addresses if a != keep]


def assigned(ia: IANA, address: IPv6Address, options: PoolOptions6) -> IANA:
    """`ia` holding the reserved `address` with the pool's lifetimes and T1/T2,
    and the client's other addresses withdrawn."""
    held: list[Option] = [
        IAAddress(
            address=address,
            preferred_lifetime=options.preferred_lifetime,
            valid_lifetime=options.valid_lifetime,
        )
    ]
    held.extend(withdrawn(listed(ia), address))
    return IANA(
        iaid=ia.iaid, t1=options.renewal_time, t2=options.rebinding_time, options=tuple(held)
    )


def refused(ia: IANA | IATA | IAPD, status: StatusCode, *, withdraw: bool = False) -> Option:
    """`ia` with no address but a status (and, with `withdraw`, the client's
    addresses at lifetimes 0); T1 and T2 zero."""
    if isinstance(ia, IAPD):
        return IAPD(iaid=ia.iaid, options=(status,))
    held: list[Option] = []
    if withdraw:
        held.extend(withdrawn(listed(ia), None))
    held.append(status)
    if isinstance(ia, IATA):
        return IATA(iaid=ia.iaid, options=tuple(held))
    return IANA(iaid=ia.iaid, options=tuple(held))


def bound_ias(
    request: Message,
    reservation: Reservation6 | None,
    declined: Set[IPv6Address],
    options: PoolOptions6,
    *,
    renewing: bool,
) -> tuple[list[Option], bool]:
    """A SOLICIT's, REQUEST's, RENEW's or REBIND's IAs answered: the reservation
    in the first IA_NA, a status in the others; and whether an address was
    assigned. `renewing` (RENEW, REBIND): NoBinding where there is no binding
    (RFC 8415 18.3.4), and a declined address withdrawn."""
    address = reservation.ip if reservation is not None else None
    ias: list[Option] = []
    first, given = True, False
    for option in request.options:
        if isinstance(option, IANA):
            if not first or address is None:
                ias.append(refused(option, NO_BINDING if renewing else NO_ADDRS))
            elif address in declined:
                ias.append(refused(option, NO_ADDRS_DECLINED, withdraw=renewing))
            else:
                ias.append(assigned(option, address, options))
                given = True
            first = False
        elif isinstance(option, IATA):
            ias.append(refused(option, NO_BINDING if renewing else NO_ADDRS))
        elif isinstance(option, IAPD):
            ias.append(refused(option, NO_BINDING if renewing else NO_PREFIX))
    return ias, given


def given_back(request: Message, reservation: Reservation6 | None) -> tuple[list[Option], bool]:
    """A RELEASE's or DECLINE's IAs answered: NoBinding for each that does not
    hold the reservation (RFC 8415 18.3.7, 18.3.8); and whether one did."""
    address = reservation.ip if reservation is not None else None
    ias: list[Option] = []
    found = False
    for option in request.options:
        if isinstance(option, IANA) and address is not None and address in listed(option):
            found = True
        elif isinstance(option, IANA | IATA | IAPD):
            ias.append(refused(option, NO_BINDING))
    return ias, found


def relayed(payload: bytes, relays: Sequence[RelayMessage]) -> bytes:
    """The encoded reply `payload` inside a RELAY-REPL per relay the request
    came through (RFC 8415 19.3), innermost first: each copies its relay's
    hop count, link-address and peer-address, and its Interface-Id (18), and
    ends with the message it relays (option 9)."""
    for relay in reversed(relays):
        if len(payload) > _MAX_OPTION:
            raise EncodeError(f"a relayed reply of {len(payload)} bytes does not fit option 9")
        layer = [bytes((MessageType.RELAY_REPL, relay.hop_count)), relay.link_address.packed]
        layer.append(relay.peer_address.packed)
        interface = relay.interface_id
        if interface is not None:
            layer += (_TLV.pack(InterfaceId.code, len(interface)), interface)
        layer += (_TLV.pack(RelayMessageOption.code, len(payload)), payload)
        payload = b"".join(layer)
    return payload


# -- the replay cache's bytes ------------------------------------------------------

#: RFC 8415 8, 9: a client message's header (type, transaction id), a relay's
#: (type, hop count, link-address, peer-address); option 9 relays, option 8 is
#: Elapsed Time (RFC 8415 21.9, 21.10).
_CLIENT_HEADER, _RELAY_HEADER = 4, 34
_RELAY_TYPES = frozenset((int(MessageType.RELAY_FORW), int(MessageType.RELAY_REPL)))
_RELAY_MSG, _ELAPSED_TIME = 9, 8
XID_SIZE = 3
_NO_XID, _NO_ELAPSED = bytes(XID_SIZE), bytes(2)


class Answer6(NamedTuple):
    """What the slow path decided for a request: the reply but for the
    request's transaction id, which `stamp` adds."""

    #: The encoded reply, its transaction id zero.
    template: bytes
    #: Where the transaction id goes in `template` (under its relay layers).
    xid_at: int
    relayed: bool
    kind: MessageType


@dataclass(slots=True)
class Replay6:
    """What answering one exact request did, to do it again without decoding it."""

    answer: Answer6
    #: The client's MAC (None: unknown), for the responder's `last`.
    mac: bytes | None
    # Counter keys as plain strings: an enum's .name is a descriptor call.
    received: str
    sent: str
    #: Whether it counted an unknown client and a nak.
    unknown: bool
    nak: bool
    #: What the MAC's history says of it.
    outcome: Outcome


class Reply6(NamedTuple):
    """One answer and where it goes (an AF_INET6 `sendto` address)."""

    payload: bytes
    address: SockAddr6
    message_type: MessageType


def stamp(answer: Answer6, xid: bytes, source: SockAddr6) -> Reply6:
    """The reply to the request with transaction id `xid` (RFC 8415 16: the
    reply carries the client's) from `source`. The one way a reply is
    finished, whether it was just computed or replayed.

    RFC 8415 18.3.10, 19.3: a reply goes back to the address it came from, at
    the client port, or at the server port when a relay sent it; the scope id
    keeps a link-local destination on its interface."""
    t, at = answer.template, answer.xid_at
    port = SERVER_PORT6 if answer.relayed else CLIENT_PORT6
    return Reply6(t[:at] + xid + t[at + XID_SIZE :], (source[0], port, 0, source[3]), answer.kind)


def template(payload: bytes, client: int, *, relayed: bool, kind: MessageType) -> Answer6:
    """The encoded reply `payload`, whose last `client` bytes are the client's
    message (`relayed` puts it last in each layer), as an answer to `stamp`:
    its transaction id zeroed, and where it is."""
    at = len(payload) - client + 1
    return Answer6(payload[:at] + _NO_XID + payload[at + XID_SIZE :], at, relayed, kind)


def replay_key(data: bytes) -> tuple[bytes, int] | None:
    """The message `data` with its client message's transaction id and Elapsed
    Time values zeroed, and where that transaction id is; None when the bytes
    are not options laid end to end as the decoder reads them, or a relay
    layer has no option 9 or more than one (the decoder takes the first: a
    key must not depend on which). A cheap TLV walk, no decoding.

    Nothing else may differ between two requests that get the same answer:
    the transaction id is stamped into the reply, the elapsed time is read by
    no answer, and the decoder accepts any value of either; every other byte,
    the Client ID and IAIDs the reply echoes and the relay fields it copies
    included, is in the key."""
    start, end = 0, len(data)
    while end - start >= _RELAY_HEADER and data[start] in _RELAY_TYPES:
        pos, inner = start + _RELAY_HEADER, None
        while pos + 4 <= end:
            stop = pos + 4 + (data[pos + 2] << 8 | data[pos + 3])
            if data[pos + 1] == _RELAY_MSG and data[pos] == 0:
                if inner is not None:
                    return None
                inner = pos + 4, stop
            pos = stop
        if pos != end or inner is None:
            return None
        start, end = inner
    if end - start < _CLIENT_HEADER or data[start] in _RELAY_TYPES:
        return None
    xid_at = start + 1
    key = data[:xid_at] + _NO_XID
    done = pos = start + _CLIENT_HEADER
    while pos + 4 <= end:
        length = data[pos + 2] << 8 | data[pos + 3]
        if length == 2 and data[pos + 1] == _ELAPSED_TIME and data[pos] == 0:
            key += data[done : pos + 4] + _NO_ELAPSED
            done = pos + 6
        pos += 4 + length
    if pos != end:
        return None
    return key + data[done:], xid_at
