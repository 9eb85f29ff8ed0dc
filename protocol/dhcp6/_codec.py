"""The DHCPv6 decoder, by hand with `struct`: `decode(bytes)`. `_declared.py`
reads the same bytes through the construct declarations, and the tests hold
both to the same results on any input."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import fields
from ipaddress import IPv6Address
from typing import Any
from uuid import UUID

from .._errors import DecodeError
from ._codes import RELAY_TYPES, DuidType, MessageType
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

__all__ = ["TYPED_CODES", "decode"]

_TYPES = {int(kind): kind for kind in MessageType}
_TLV = struct.Struct("!HH")
_III = struct.Struct("!III")
_II = struct.Struct("!II")
_IIB = struct.Struct("!IIB")
_H = struct.Struct("!H")
RELAY_HEADER = 34  # msg-type, hop-count, link-address, peer-address
CLIENT_HEADER = 4  # msg-type, transaction-id


def decode(data: bytes) -> Message | RelayMessage:
    """Parse one DHCPv6 message (a relay message with everything it relays),
    validating every option the codec types.

    Raises DecodeError, and only DecodeError, for anything malformed.
    """
    try:
        if type(data) is not bytes:
            data = bytes(data)
        return _message(data, 0)
    except DecodeError:
        raise
    except Exception as exc:  # the promise: nothing else escapes
        raise DecodeError(f"malformed message: {type(exc).__name__}: {exc}") from exc


def _slot_setters(kind: type, names: tuple[str, ...]) -> tuple[Callable[[Any, Any], None], ...]:
    """The slot setters of a frozen dataclass's fields, checked to be all of them.

    A frozen dataclass's __init__ goes through object.__setattr__ per field,
    which costs as much as the rest of decoding a SOLICIT; `decode` builds the
    most frequent values through these setters instead. The result is the same
    object: the tests compare `decode` with `decode_declared`, which calls the
    constructors, type and field by field.
    """
    assert tuple(field.name for field in fields(kind)) == names, kind
    return tuple(vars(kind)[name].__set__ for name in names)


_new = object.__new__
_MESSAGE_SETTERS = _slot_setters(Message, ("msg_type", "transaction_id", "options"))
_IANA_SETTERS = _slot_setters(IANA, ("iaid", "t1", "t2", "options"))
_IA_ADDRESS_SETTERS = _slot_setters(
    IAAddress, ("address", "preferred_lifetime", "valid_lifetime", "options")
)


def _message(data: bytes, depth: int) -> Message | RelayMessage:
    if depth > MAX_DEPTH:
        raise DecodeError(f"messages and options nested more than {MAX_DEPTH} deep")
    if len(data) < CLIENT_HEADER:
        raise DecodeError(f"truncated message: {len(data)} bytes")
    msg_type = _TYPES.get(data[0])
    if msg_type is None:
        raise DecodeError(f"message type {data[0]} is not one kvip reads")
    if msg_type in RELAY_TYPES:
        if len(data) < RELAY_HEADER:
            raise DecodeError(f"truncated relay message: {len(data)} bytes")
        return RelayMessage(
            msg_type=msg_type,
            hop_count=data[1],
            link_address=IPv6Address(data[2:18]),
            peer_address=IPv6Address(data[18:34]),
            options=_options(data, RELAY_HEADER, depth + 1),
        )
    # Message(...) without the frozen __init__'s cost (see `_slot_setters`).
    message: Message = _new(Message)
    _MESSAGE_SETTERS[0](message, msg_type)
    _MESSAGE_SETTERS[1](message, int.from_bytes(data[1:4], "big"))
    _MESSAGE_SETTERS[2](message, _options(data, CLIENT_HEADER, depth + 1))
    return message


def _options(data: bytes, pos: int, depth: int) -> tuple[Option, ...]:
    if depth > MAX_DEPTH:
        raise DecodeError(f"messages and options nested more than {MAX_DEPTH} deep")
    # `_tlvs` inlined: this loop runs for every option of every packet.
    end = len(data)
    found: list[Option] = []
    readers, unpack = _READERS, _TLV.unpack_from
    while pos < end:
        if pos + 4 > end:
            raise DecodeError(f"option header cut short at byte {pos}")
        code, length = unpack(data, pos)
        stop = pos + 4 + length
        if stop > end:
            raise DecodeError(f"option {code} length {length} runs past the end")
        reader = readers.get(code)
        body = data[pos + 4 : stop]
        found.append(RawOption(code, body) if reader is None else reader(body, depth))
        pos = stop
    return tuple(found)


def _tlvs(data: bytes, pos: int) -> list[tuple[int, bytes]]:
    """(code, value) of each option from `pos` to the end of `data`."""
    end = len(data)
    found: list[tuple[int, bytes]] = []
    while pos < end:
        if pos + 4 > end:
            raise DecodeError(f"option header cut short at byte {pos}")
        code, length = _TLV.unpack_from(data, pos)
        stop = pos + 4 + length
        if stop > end:
            raise DecodeError(f"option {code} length {length} runs past the end")
        found.append((code, data[pos + 4 : stop]))
        pos = stop
    return found


def _duid(body: bytes) -> Duid:
    size = len(body)
    if size < 2:
        raise DecodeError("DUID without a type")
    kind = body[0] << 8 | body[1]
    if kind == DuidType.LLT:
        if size < 8:
            raise DecodeError(f"DUID-LLT of {size} bytes")
        hardware_type, time = struct.unpack_from("!HI", body, 2)
        return DuidLLT(hardware_type, time, body[8:])
    if kind == DuidType.EN:
        if size < 6:
            raise DecodeError(f"DUID-EN of {size} bytes")
        return DuidEN(int.from_bytes(body[2:6], "big"), body[6:])
    if kind == DuidType.LL:
        if size < 4:
            raise DecodeError(f"DUID-LL of {size} bytes")
        return DuidLL(body[2] << 8 | body[3], body[4:])
    if kind == DuidType.UUID:
        if size != 18:
            raise DecodeError(f"DUID-UUID of {size} bytes, must be 18")
        return DuidUUID(UUID(bytes=body[2:]))
    return UnknownDuid(kind, body[2:])


def _at_least(body: bytes, size: int, what: str) -> None:
    if len(body) < size:
        raise DecodeError(f"{what} of {len(body)} bytes, needs {size}")


def _exactly(body: bytes, size: int, what: str) -> None:
    if len(body) != size:
        raise DecodeError(f"{what} of {len(body)} bytes, must be {size}")


def _ia_na(body: bytes, depth: int) -> IANA:
    _at_least(body, 12, "IA_NA")
    iaid, t1, t2 = _III.unpack_from(body)
    ia: IANA = _new(IANA)
    set_iaid, set_t1, set_t2, set_options = _IANA_SETTERS
    set_iaid(ia, iaid)
    set_t1(ia, t1)
    set_t2(ia, t2)
    set_options(ia, _options(body, 12, depth + 1))
    return ia


def _ia_ta(body: bytes, depth: int) -> IATA:
    _at_least(body, 4, "IA_TA")
    return IATA(iaid=int.from_bytes(body[:4], "big"), options=_options(body, 4, depth + 1))


def _ia_pd(body: bytes, depth: int) -> IAPD:
    _at_least(body, 12, "IA_PD")
    iaid, t1, t2 = _III.unpack_from(body)
    return IAPD(iaid=iaid, t1=t1, t2=t2, options=_options(body, 12, depth + 1))


def _ia_address(body: bytes, depth: int) -> IAAddress:
    _at_least(body, 24, "IA address")
    preferred, valid = _II.unpack_from(body, 16)
    address: IAAddress = _new(IAAddress)
    set_address, set_preferred, set_valid, set_options = _IA_ADDRESS_SETTERS
    set_address(address, IPv6Address(body[:16]))
    set_preferred(address, preferred)
    set_valid(address, valid)
    set_options(address, _options(body, 24, depth + 1))
    return address


def _ia_prefix(body: bytes, depth: int) -> IAPrefix:
    _at_least(body, 25, "IA prefix")
    preferred, valid, length = _IIB.unpack_from(body)
    if length > 128:
        raise DecodeError(f"IA prefix length {length}")
    return IAPrefix(
        preferred_lifetime=preferred,
        valid_lifetime=valid,
        prefix_length=length,
        prefix=IPv6Address(body[9:25]),
        options=_options(body, 25, depth + 1),
    )


def _oro(body: bytes, depth: int) -> OptionRequest:
    if len(body) % 2:
        raise DecodeError(f"option request of {len(body)} bytes, not pairs")
    return OptionRequest(struct.unpack(f"!{len(body) // 2}H", body))


def _preference(body: bytes, depth: int) -> Preference:
    _exactly(body, 1, "preference")
    return Preference(body[0])


def _elapsed(body: bytes, depth: int) -> ElapsedTime:
    _exactly(body, 2, "elapsed time")
    return ElapsedTime(body[0] << 8 | body[1])


def _status(body: bytes, depth: int) -> StatusCode:
    _at_least(body, 2, "status code")
    return StatusCode(body[0] << 8 | body[1], body[2:].decode("utf-8"))


def _rapid(body: bytes, depth: int) -> RapidCommit:
    _exactly(body, 0, "rapid commit")
    return RapidCommit()


def _dns(body: bytes, depth: int) -> DnsServers:
    if len(body) % 16:
        raise DecodeError(f"DNS servers of {len(body)} bytes, not addresses")
    return DnsServers(tuple(IPv6Address(body[i : i + 16]) for i in range(0, len(body), 16)))


def _name(body: bytes, pos: int) -> tuple[str, int]:
    """One name from `pos` on, and where the next one starts."""
    labels: list[bytes] = []
    end = len(body)
    while True:
        if pos >= end:
            raise DecodeError("domain name without its root label")
        size = body[pos]
        if size == 0:
            return join_labels(labels), pos + 1
        if size > MAX_LABEL or pos + 1 + size > end:
            raise DecodeError(f"domain name label of {size} bytes (a pointer, or cut short)")
        labels.append(body[pos + 1 : pos + 1 + size])
        pos += 1 + size


def _domains(body: bytes, depth: int) -> DomainList:
    names: list[str] = []
    pos = 0
    while pos < len(body):
        name, pos = _name(body, pos)
        names.append(name)
    return DomainList(tuple(names))


def _ntp(body: bytes, depth: int) -> NtpServer:
    suboptions: list[NtpSuboption] = []
    for code, data in _tlvs(body, 0):
        if code == NtpServerAddress.code or code == NtpMulticastAddress.code:
            _exactly(data, 16, f"NTP sub-option {code}")
            kind = NtpServerAddress if code == NtpServerAddress.code else NtpMulticastAddress
            suboptions.append(kind(IPv6Address(data)))
        elif code == NtpServerFqdn.code:
            name, stop = _name(data, 0)
            if stop != len(data):
                raise DecodeError("NTP server FQDN holds more than one name")
            suboptions.append(NtpServerFqdn(name))
        else:
            suboptions.append(RawOption(code, data))
    return NtpServer(tuple(suboptions))


def _client_lladdr(body: bytes, depth: int) -> ClientLinkLayerAddress:
    _at_least(body, 2, "client link-layer address")
    return ClientLinkLayerAddress(body[0] << 8 | body[1], body[2:])


Reader = Callable[[bytes, int], Option]
_READERS: dict[int, Reader] = {
    ClientId.code: lambda body, depth: ClientId(_duid(body)),
    ServerId.code: lambda body, depth: ServerId(_duid(body)),
    IANA.code: _ia_na,
    IATA.code: _ia_ta,
    IAAddress.code: _ia_address,
    OptionRequest.code: _oro,
    Preference.code: _preference,
    ElapsedTime.code: _elapsed,
    RelayMessageOption.code: lambda body, depth: RelayMessageOption(_message(body, depth + 1)),
    StatusCode.code: _status,
    RapidCommit.code: _rapid,
    InterfaceId.code: lambda body, depth: InterfaceId(body),
    DnsServers.code: _dns,
    DomainList.code: _domains,
    IAPD.code: _ia_pd,
    IAPrefix.code: _ia_prefix,
    NtpServer.code: _ntp,
    ClientLinkLayerAddress.code: _client_lladdr,
}
# Codes `decode` never leaves raw: a RawOption with one would not read back as itself.
TYPED_CODES = frozenset(_READERS)
