"""Building one reply: its options, its size limit, its destination (RFC 2131/2132).

Pure functions of the pool's options, the request and the reservation; the
Responder decides which reply to build, caches the result and adds xid and
flags.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from kvip.serving._config import PoolOptions, Reservation
from protocol import Message, MessageTooBig, MessageType, Op, OptionCode, Options, encode

log = logging.getLogger(__name__)

SERVER_PORT = 67
CLIENT_PORT = 68
BROADCAST = IPv4Address("255.255.255.255")
ZERO = IPv4Address(0)

#: (size limit, options left out): a warning already given for these options.
Warned = tuple[int, tuple[int, ...]]

#: Options a reply is not sent without (those DHCP.md says are always in an OFFER
#: or ACK, and what the client sent that must come back): when the pool's options
#: do not fit the client's size limit, the others are left out, least wanted first.
ESSENTIAL = frozenset(
    (
        OptionCode.MESSAGE_TYPE,
        OptionCode.SERVER_ID,
        OptionCode.RAPID_COMMIT,
        OptionCode.LEASE_TIME,
        OptionCode.RENEWAL_TIME,
        OptionCode.REBINDING_TIME,
        OptionCode.SUBNET_MASK,
        OptionCode.ROUTER,
        OptionCode.MESSAGE,
        OptionCode.CLIENT_ID,
        OptionCode.RELAY_AGENT_INFO,
    )
)


def fit(message: Message, max_size: int, *, subnet: IPv4Network, warned: set[Warned]) -> bytes:
    """The reply's bytes within the client's size limit (RFC 2132 9.10). When
    the pool's options do not fit even with overload, the least wanted are
    left out until they do: those the client did not ask for, then the end
    of its parameter request list; never those in `ESSENTIAL`. What was left
    out is warned about once per (size limit, options) in `warned`."""
    try:
        return encode(message, max_size=max_size)
    except MessageTooBig as exc:
        too_big = exc
    kept = dict(message.options.items())
    left_out: list[int] = []
    for code in reversed(list(kept)):
        if code in ESSENTIAL:
            continue
        del kept[code]
        left_out.append(code)
        try:
            payload = encode(replace(message, options=Options(kept)), max_size=max_size)
        except MessageTooBig:
            continue
        seen = (max_size, tuple(left_out))
        if seen not in warned:
            warned.add(seen)
            log.warning(
                "the options of the pool on %s do not fit a %d-byte reply (the limit of %s):"
                " left out option(s) %s; shorten the DNS, search or route lists",
                subnet,
                max_size,
                message.mac,
                ", ".join(map(str, sorted(left_out))),
            )
        return payload
    raise too_big


def build(
    pool: PoolOptions,
    request: Message,
    reservation: Reservation | None,
    kind: MessageType,
    *,
    inform: bool,
    rapid: bool,
    reason: str,
    renewing: bool,
) -> Message:
    """The reply (xid and flags zero) for a request, before it is fitted."""
    options: dict[int, Any] = {
        OptionCode.MESSAGE_TYPE: kind,
        OptionCode.SERVER_ID: pool.server_ip,
    }
    client_id = request.options.get(OptionCode.CLIENT_ID)
    if kind == MessageType.NAK or reservation is None:
        # RFC 2131 table 3: a NAK carries only the server id and a message.
        options[OptionCode.MESSAGE] = reason
    else:
        if rapid:
            options[OptionCode.RAPID_COMMIT] = b""
        if not inform:
            options[OptionCode.LEASE_TIME] = pool.lease_time
            options[OptionCode.RENEWAL_TIME] = pool.renewal_time
            options[OptionCode.REBINDING_TIME] = pool.rebinding_time
        options.update(configuration(pool, request, reservation))
    if client_id is not None:
        options[OptionCode.CLIENT_ID] = client_id  # RFC 6842
    relay_info = request.options.get(OptionCode.RELAY_AGENT_INFO)
    if relay_info is not None and request.giaddr != ZERO:
        options[OptionCode.RELAY_AGENT_INFO] = relay_info  # RFC 3046 2.2
    acked = kind != MessageType.NAK and not inform
    return Message(
        op=Op.BOOTREPLY,
        xid=0,
        flags=0,
        htype=request.htype,
        chaddr=request.chaddr,
        giaddr=request.giaddr,
        ciaddr=request.ciaddr if (inform or renewing) else ZERO,
        yiaddr=reservation.ip if (acked and reservation is not None) else ZERO,
        options=Options(options),
    )


def configuration(pool: PoolOptions, request: Message, reservation: Reservation) -> dict[int, Any]:
    """Subnet mask, router and every option the pool sets, in the order of the
    client's parameter request list (RFC 2132 9.8) where it gives one."""
    asked = request.parameter_request_list
    offered: dict[int, Any] = {OptionCode.SUBNET_MASK: pool.subnet.netmask}
    if pool.router is not None:
        offered[OptionCode.ROUTER] = (pool.router,)
    if pool.dns:
        offered[OptionCode.DNS] = pool.dns
    if pool.domain_name:
        offered[OptionCode.DOMAIN_NAME] = pool.domain_name
    if pool.domain_search:
        offered[OptionCode.DOMAIN_SEARCH] = pool.domain_search
    if pool.ntp:
        offered[OptionCode.NTP_SERVERS] = pool.ntp
    if pool.mtu is not None:
        offered[OptionCode.INTERFACE_MTU] = pool.mtu
    if pool.routes:
        offered[OptionCode.CLASSLESS_ROUTES] = pool.classless_routes
    if OptionCode.BROADCAST_ADDRESS in asked:
        offered[OptionCode.BROADCAST_ADDRESS] = pool.subnet.broadcast_address
    if OptionCode.HOST_NAME in asked and reservation.hostname:
        offered[OptionCode.HOST_NAME] = reservation.hostname
    ordered = {code: offered[code] for code in asked if code in offered}
    ordered.update((code, value) for code, value in offered.items() if code not in ordered)
    return ordered


def destination(request: Message, kind: MessageType) -> tuple[str, int]:
    """RFC 2131 4.1: where a reply goes."""
    if request.giaddr != ZERO:
        return str(request.giaddr), SERVER_PORT
    if kind == MessageType.NAK:
        return str(BROADCAST), CLIENT_PORT
    if request.ciaddr != ZERO:
        return str(request.ciaddr), CLIENT_PORT
    # Broadcast bit set, or a client without an address we could only reach
    # through an ARP entry we cannot add: broadcasting is allowed and works.
    return str(BROADCAST), CLIENT_PORT
