"""The DHCPv6 encoder, by hand with `struct`: `encode(message) -> bytes`.
`_declared.py` writes through the construct declarations; the tests hold both
to the same bytes."""

from __future__ import annotations

import struct
from collections.abc import Callable
from ipaddress import IPv6Address
from typing import Any
from uuid import UUID

from .._errors import EncodeError
from ._codec import TYPED_CODES
from ._codes import RELAY_TYPES, MessageType
from ._duid import DuidEN, DuidLL, DuidLLT, DuidUUID, UnknownDuid
from ._message import Message, RelayMessage
from ._names import MAX_DEPTH, split_name
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
    OptionRequest,
    Preference,
    RapidCommit,
    RawOption,
    RelayMessageOption,
    ServerId,
    StatusCode,
)

__all__ = [
    "CLIENT_SERVER_TYPES",
    "address_bytes",
    "check_message",
    "check_raw",
    "duid_bytes",
    "encode",
    "name_bytes",
]

_TLV = struct.Struct("!HH")
_NTP_CODES = frozenset({NtpServerAddress.code, NtpMulticastAddress.code, NtpServerFqdn.code})
_MAX_VALUE = 0xFFFF
CLIENT_SERVER_TYPES = frozenset(int(kind) for kind in MessageType) - RELAY_TYPES


def encode(message: Message | RelayMessage) -> bytes:
    """The message's bytes. Raises EncodeError for a field of the wrong type or
    out of range, an option longer than 65535 bytes, or a `RawOption` under a
    code the codec types (give the typed value)."""
    try:
        return _message(message, 0)
    except EncodeError:
        raise
    except Exception as exc:  # struct.error, TypeError, AttributeError, ...
        raise EncodeError(f"cannot encode: {type(exc).__name__}: {exc}") from exc


def check_message(message: object, depth: int) -> None:
    """What both encoders refuse before writing a message's header."""
    if depth > MAX_DEPTH:
        raise EncodeError(f"messages and options nested more than {MAX_DEPTH} deep")
    if type(message) is Message:
        if message.msg_type not in CLIENT_SERVER_TYPES:
            raise EncodeError(f"message type {message.msg_type!r} is not a client/server type")
    elif type(message) is RelayMessage:
        if message.msg_type not in RELAY_TYPES:
            raise EncodeError(f"message type {message.msg_type!r} is not a relay type")
    else:
        raise EncodeError(f"expected Message or RelayMessage, got {type(message).__name__}")
    if type(message.options) is not tuple:
        raise EncodeError(f"options must be a tuple, got {type(message.options).__name__}")


def check_raw(option: RawOption, typed: frozenset[int]) -> None:
    if option.code in typed:
        raise EncodeError(f"option {option.code} has a type: give it, not a RawOption")


def address_bytes(address: object) -> bytes:
    if type(address) is not IPv6Address:
        raise EncodeError(f"expected IPv6Address, got {address!r}")
    return address.packed


def duid_bytes(duid: object) -> bytes:
    if type(duid) is DuidLLT:
        return struct.pack("!HHI", 1, duid.hardware_type, duid.time) + duid.link_layer_address
    if type(duid) is DuidEN:
        return struct.pack("!HI", 2, duid.enterprise) + duid.identifier
    if type(duid) is DuidLL:
        return struct.pack("!HH", 3, duid.hardware_type) + duid.link_layer_address
    if type(duid) is DuidUUID:
        if type(duid.uuid) is not UUID:
            raise EncodeError(f"DUID-UUID needs a UUID, got {duid.uuid!r}")
        return b"\x00\x04" + duid.uuid.bytes
    if type(duid) is UnknownDuid:
        if duid.duid_type in (1, 2, 3, 4):
            raise EncodeError(f"DUID type {duid.duid_type} has a class: give it")
        return struct.pack("!H", duid.duid_type) + duid.data
    raise EncodeError(f"expected a DUID, got {type(duid).__name__}")


def name_bytes(name: object) -> bytes:
    return b"".join(bytes((len(label),)) + label for label in split_name(name)) + b"\0"


def _message(message: Message | RelayMessage, depth: int) -> bytes:
    check_message(message, depth)
    body = _options(message.options, depth + 1)
    if type(message) is RelayMessage:
        link, peer = address_bytes(message.link_address), address_bytes(message.peer_address)
        return struct.pack("!BB", message.msg_type, message.hop_count) + link + peer + body
    assert type(message) is Message
    if not 0 <= message.transaction_id < 1 << 24:
        raise EncodeError(f"transaction id {message.transaction_id!r} is not 24 bits")
    return struct.pack("!I", message.msg_type << 24 | message.transaction_id) + body


def _options(options: tuple[Any, ...], depth: int) -> bytes:
    if depth > MAX_DEPTH:
        raise EncodeError(f"messages and options nested more than {MAX_DEPTH} deep")
    if type(options) is not tuple:
        raise EncodeError(f"options must be a tuple, got {type(options).__name__}")
    return b"".join([_option(option, depth) for option in options])


def _option(option: Any, depth: int) -> bytes:
    writer = _WRITERS.get(type(option))
    if writer is None:
        raise EncodeError(f"{type(option).__name__} is not a DHCPv6 option")
    data = writer(option, depth)
    if len(data) > _MAX_VALUE:
        raise EncodeError(f"option {option.code} is {len(data)} bytes, at most {_MAX_VALUE}")
    return _TLV.pack(option.code, len(data)) + data


def _raw(option: RawOption, depth: int) -> bytes:
    check_raw(option, TYPED_CODES)
    return b"" + option.data  # bytes-like only: bytes(5) would be 5 NULs


def _ntp(option: NtpServer, depth: int) -> bytes:
    if type(option.suboptions) is not tuple:
        raise EncodeError("NTP sub-options must be a tuple")
    parts = []
    for sub in option.suboptions:
        if type(sub) is NtpServerAddress or type(sub) is NtpMulticastAddress:
            data = address_bytes(sub.address)
        elif type(sub) is NtpServerFqdn:
            data = name_bytes(sub.name)
        elif type(sub) is RawOption:
            check_raw(sub, _NTP_CODES)
            data = b"" + sub.data
        else:
            raise EncodeError(f"{type(sub).__name__} is not an NTP sub-option")
        parts.append(_TLV.pack(sub.code, len(data)) + data)
    return b"".join(parts)


def _tuple(value: object, what: str) -> tuple[Any, ...]:
    if type(value) is not tuple:
        raise EncodeError(f"{what} must be a tuple, got {type(value).__name__}")
    return value


def _ia_prefix(o: IAPrefix, depth: int) -> bytes:
    if not 0 <= o.prefix_length <= 128:
        raise EncodeError(f"prefix length {o.prefix_length!r}")
    head = struct.pack("!IIB", o.preferred_lifetime, o.valid_lifetime, o.prefix_length)
    return head + address_bytes(o.prefix) + _options(o.options, depth + 1)


Writer = Callable[[Any, int], bytes]
_WRITERS: dict[type, Writer] = {
    ClientId: lambda o, depth: duid_bytes(o.duid),
    ServerId: lambda o, depth: duid_bytes(o.duid),
    IANA: lambda o, depth: struct.pack("!III", o.iaid, o.t1, o.t2) + _options(o.options, depth + 1),
    IATA: lambda o, depth: struct.pack("!I", o.iaid) + _options(o.options, depth + 1),
    IAPD: lambda o, depth: struct.pack("!III", o.iaid, o.t1, o.t2) + _options(o.options, depth + 1),
    IAAddress: lambda o, depth: (
        address_bytes(o.address)
        + struct.pack("!II", o.preferred_lifetime, o.valid_lifetime)
        + _options(o.options, depth + 1)
    ),
    IAPrefix: _ia_prefix,
    OptionRequest: lambda o, depth: struct.pack(f"!{len(_tuple(o.codes, 'codes'))}H", *o.codes),
    Preference: lambda o, depth: struct.pack("!B", o.value),
    ElapsedTime: lambda o, depth: struct.pack("!H", o.hundredths),
    RelayMessageOption: lambda o, depth: _message(o.message, depth + 1),
    StatusCode: lambda o, depth: struct.pack("!H", o.status) + o.message.encode("utf-8"),
    RapidCommit: lambda o, depth: b"",
    InterfaceId: lambda o, depth: b"" + o.value,
    DnsServers: lambda o, depth: b"".join(
        [address_bytes(a) for a in _tuple(o.addresses, "DNS servers")]
    ),
    DomainList: lambda o, depth: b"".join(
        [name_bytes(name) for name in _tuple(o.names, "domain names")]
    ),
    NtpServer: _ntp,
    ClientLinkLayerAddress: lambda o, depth: struct.pack("!H", o.link_layer_type) + o.address,
    RawOption: _raw,
}
