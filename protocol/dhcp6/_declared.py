"""The DHCPv6 wire format declared with construct (RFC 8415 8, 9, 21; RFC 3646,
RFC 5908, RFC 6939, RFC 6355), and a decoder and encoder that run on it.

These declarations are the definition; `decode`/`encode` (`_codec.py`,
`_encode.py`) are the hand-written twins the server runs, and the tests hold
them to the same results with hypothesis. Options nest (IA_NA, IA address,
relay message), so each declaration reads one level and leaves the nested
options as bytes for the next call.
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv6Address
from typing import Any
from uuid import UUID

from construct import (
    Bytes,
    Check,
    GreedyBytes,
    GreedyRange,
    GreedyString,
    Int8ub,
    Int16ub,
    Int24ub,
    Int32ub,
    Prefixed,
    RepeatUntil,
    Struct,
    Switch,
    Terminated,
    obj_,
    this,
)

from .._errors import DecodeError
from ._codec import TYPED_CODES
from ._codes import RELAY_TYPES, MessageType
from ._duid import Duid, DuidEN, DuidLL, DuidLLT, DuidUUID, UnknownDuid
from ._message import Message, RelayMessage
from ._names import MAX_DEPTH, MAX_LABEL, join_labels
from ._options import (
    IANA,
    IAPD,
    IATA,
    ClientId,
    ClientLinkLayerAddress,
    DnsServers,
    DomainList,
    ElapsedTime,
    IAAddress,
    IAPrefix,
    InterfaceId,
    NtpMulticastAddress,
    NtpServer,
    NtpServerAddress,
    NtpServerFqdn,
    NtpSuboption,
    Option,
    OptionRequest,
    Preference,
    RapidCommit,
    RawOption,
    RelayMessageOption,
    ServerId,
    StatusCode,
)

__all__ = ["MESSAGE", "OPTIONS", "decode_declared"]

_CLIENT_SERVER = Struct("transaction_id" / Int24ub, "options" / GreedyBytes)
_RELAY = Struct(
    "hop_count" / Int8ub,
    "link_address" / Bytes(16),
    "peer_address" / Bytes(16),
    "options" / GreedyBytes,
)
MESSAGE = Struct(
    "msg_type" / Int8ub,
    "body" / Switch(this.msg_type, {12: _RELAY, 13: _RELAY}, _CLIENT_SERVER),
)
OPTION = Struct("code" / Int16ub, "data" / Prefixed(Int16ub, GreedyBytes))
OPTIONS = Struct("options" / GreedyRange(OPTION), Terminated)

DUID = Struct(
    "duid_type" / Int16ub,
    "body"
    / Switch(
        this.duid_type,
        {
            1: Struct(
                "hardware_type" / Int16ub, "time" / Int32ub, "link_layer_address" / GreedyBytes
            ),
            2: Struct("enterprise" / Int32ub, "identifier" / GreedyBytes),
            3: Struct("hardware_type" / Int16ub, "link_layer_address" / GreedyBytes),
            4: Struct("uuid" / Bytes(16), Terminated),
        },
        Struct("data" / GreedyBytes),
    ),
)
IA_NA = Struct("iaid" / Int32ub, "t1" / Int32ub, "t2" / Int32ub, "options" / GreedyBytes)
IA_TA = Struct("iaid" / Int32ub, "options" / GreedyBytes)
IA_ADDRESS = Struct(
    "address" / Bytes(16),
    "preferred_lifetime" / Int32ub,
    "valid_lifetime" / Int32ub,
    "options" / GreedyBytes,
)
IA_PREFIX = Struct(
    "preferred_lifetime" / Int32ub,
    "valid_lifetime" / Int32ub,
    "prefix_length" / Int8ub,
    Check(this.prefix_length <= 128),
    "prefix" / Bytes(16),
    "options" / GreedyBytes,
)
ORO = Struct("codes" / GreedyRange(Int16ub), Terminated)
PREFERENCE = Struct("value" / Int8ub, Terminated)
ELAPSED_TIME = Struct("hundredths" / Int16ub, Terminated)
STATUS_CODE = Struct("status" / Int16ub, "message" / GreedyString("utf8"))
RAPID_COMMIT = Struct(Terminated)
ADDRESSES = Struct("addresses" / GreedyRange(Bytes(16)), Terminated)
LABEL = Struct("length" / Int8ub, Check(this.length <= MAX_LABEL), "label" / Bytes(this.length))
NAME = RepeatUntil(obj_.length == 0, LABEL)  # RFC 1035 3.1, no compression (RFC 8415 10)
DOMAIN_LIST = Struct("names" / GreedyRange(NAME), Terminated)
ONE_NAME = Struct("name" / NAME, Terminated)
ONE_ADDRESS = Struct("address" / Bytes(16), Terminated)
CLIENT_LINKLAYER_ADDR = Struct("link_layer_type" / Int16ub, "address" / GreedyBytes)

# Not compiled: construct 2.10 compiles Int24ub to a read that does not check
# its length, so a 3-byte message would parse (the twin test caught it).
_MESSAGE = MESSAGE
_OPTIONS = OPTIONS.compile()
_TYPES = {int(kind): kind for kind in MessageType}


def decode_declared(data: bytes) -> Message | RelayMessage:
    """`decode` through the declarations; the tests hold it equal to `decode`."""
    try:
        return _message(bytes(data), 0)
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError(f"malformed message: {type(exc).__name__}: {exc}") from exc


def _deeper(depth: int) -> None:
    if depth > MAX_DEPTH:
        raise DecodeError(f"messages and options nested more than {MAX_DEPTH} deep")


def _message(data: bytes, depth: int) -> Message | RelayMessage:
    _deeper(depth)
    parsed = _MESSAGE.parse(data)
    msg_type = _TYPES.get(parsed.msg_type)
    if msg_type is None:
        raise DecodeError(f"message type {parsed.msg_type} is not one kvip reads")
    body = parsed.body
    options = _options(body.options, depth + 1)
    if msg_type in RELAY_TYPES:
        return RelayMessage(
            msg_type=msg_type,
            hop_count=body.hop_count,
            link_address=IPv6Address(body.link_address),
            peer_address=IPv6Address(body.peer_address),
            options=options,
        )
    return Message(msg_type=msg_type, transaction_id=body.transaction_id, options=options)


def _options(data: bytes, depth: int) -> tuple[Option, ...]:
    _deeper(depth)
    found: list[Option] = []
    for option in _OPTIONS.parse(data).options:
        reader = _READERS.get(option.code)
        found.append(
            RawOption(option.code, option.data) if reader is None else reader(option.data, depth)
        )
    return tuple(found)


def _duid(data: bytes) -> Duid:
    parsed = DUID.parse(data)
    body = parsed.body
    if parsed.duid_type == 1:
        return DuidLLT(body.hardware_type, body.time, body.link_layer_address)
    if parsed.duid_type == 2:
        return DuidEN(body.enterprise, body.identifier)
    if parsed.duid_type == 3:
        return DuidLL(body.hardware_type, body.link_layer_address)
    if parsed.duid_type == 4:
        return DuidUUID(UUID(bytes=body.uuid))
    return UnknownDuid(parsed.duid_type, body.data)


def _name(labels: list[Any]) -> str:
    return join_labels([label.label for label in labels[:-1]])


def _ntp(data: bytes, depth: int) -> NtpServer:
    suboptions: list[NtpSuboption] = []
    for option in _OPTIONS.parse(data).options:
        code, value = option.code, option.data
        if code == NtpServerAddress.code:
            suboptions.append(NtpServerAddress(IPv6Address(ONE_ADDRESS.parse(value).address)))
        elif code == NtpMulticastAddress.code:
            suboptions.append(NtpMulticastAddress(IPv6Address(ONE_ADDRESS.parse(value).address)))
        elif code == NtpServerFqdn.code:
            suboptions.append(NtpServerFqdn(_name(ONE_NAME.parse(value).name)))
        else:
            suboptions.append(RawOption(code, value))
    return NtpServer(tuple(suboptions))


def _ia_address(data: bytes, depth: int) -> IAAddress:
    p = IA_ADDRESS.parse(data)
    return IAAddress(
        address=IPv6Address(p.address),
        preferred_lifetime=p.preferred_lifetime,
        valid_lifetime=p.valid_lifetime,
        options=_options(p.options, depth + 1),
    )


def _ia_prefix(data: bytes, depth: int) -> IAPrefix:
    p = IA_PREFIX.parse(data)
    return IAPrefix(
        preferred_lifetime=p.preferred_lifetime,
        valid_lifetime=p.valid_lifetime,
        prefix_length=p.prefix_length,
        prefix=IPv6Address(p.prefix),
        options=_options(p.options, depth + 1),
    )


def _ia_na(data: bytes, depth: int) -> IANA:
    p = IA_NA.parse(data)
    return IANA(iaid=p.iaid, t1=p.t1, t2=p.t2, options=_options(p.options, depth + 1))


def _ia_pd(data: bytes, depth: int) -> IAPD:
    p = IA_NA.parse(data)  # the same layout
    return IAPD(iaid=p.iaid, t1=p.t1, t2=p.t2, options=_options(p.options, depth + 1))


def _ia_ta(data: bytes, depth: int) -> IATA:
    p = IA_TA.parse(data)
    return IATA(iaid=p.iaid, options=_options(p.options, depth + 1))


def _status(data: bytes, depth: int) -> StatusCode:
    p = STATUS_CODE.parse(data)
    return StatusCode(p.status, p.message)


def _client_lladdr(data: bytes, depth: int) -> ClientLinkLayerAddress:
    p = CLIENT_LINKLAYER_ADDR.parse(data)
    return ClientLinkLayerAddress(p.link_layer_type, p.address)


def _rapid(data: bytes, depth: int) -> RapidCommit:
    RAPID_COMMIT.parse(data)
    return RapidCommit()


_READERS: dict[int, Callable[[bytes, int], Option]] = {
    ClientId.code: lambda data, depth: ClientId(_duid(data)),
    ServerId.code: lambda data, depth: ServerId(_duid(data)),
    IANA.code: _ia_na,
    IATA.code: _ia_ta,
    IAAddress.code: _ia_address,
    OptionRequest.code: lambda data, depth: OptionRequest(tuple(ORO.parse(data).codes)),
    Preference.code: lambda data, depth: Preference(PREFERENCE.parse(data).value),
    ElapsedTime.code: lambda data, depth: ElapsedTime(ELAPSED_TIME.parse(data).hundredths),
    RelayMessageOption.code: lambda data, depth: RelayMessageOption(_message(data, depth + 1)),
    StatusCode.code: _status,
    RapidCommit.code: _rapid,
    InterfaceId.code: lambda data, depth: InterfaceId(data),
    DnsServers.code: lambda data, depth: DnsServers(
        tuple(IPv6Address(a) for a in ADDRESSES.parse(data).addresses)
    ),
    DomainList.code: lambda data, depth: DomainList(
        tuple(_name(name) for name in DOMAIN_LIST.parse(data).names)
    ),
    IAPD.code: _ia_pd,
    IAPrefix.code: _ia_prefix,
    NtpServer.code: _ntp,
    ClientLinkLayerAddress.code: _client_lladdr,
}
assert frozenset(_READERS) == TYPED_CODES
