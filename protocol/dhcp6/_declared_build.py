"""`encode_declared`: a DHCPv6 message written through the construct
declarations of `_declared.py`; the tests hold it to `encode`'s bytes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from .._errors import EncodeError
from ._codec import TYPED_CODES
from ._declared import (
    ADDRESSES,
    CLIENT_LINKLAYER_ADDR,
    DUID,
    ELAPSED_TIME,
    IA_ADDRESS,
    IA_NA,
    IA_PREFIX,
    IA_TA,
    MESSAGE,
    NAME,
    ONE_ADDRESS,
    OPTIONS,
    ORO,
    PREFERENCE,
    RAPID_COMMIT,
    STATUS_CODE,
)
from ._duid import DuidEN, DuidLL, DuidLLT, DuidUUID, UnknownDuid
from ._encode import address_bytes, check_message, check_raw
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

__all__ = ["encode_declared"]

# Not compiled: construct 2.10 compiles Int24ub to a read that does not check
# its length, so a 3-byte message would parse (the twin test caught it).
_MESSAGE = MESSAGE
_OPTIONS = OPTIONS.compile()


def encode_declared(message: Message | RelayMessage) -> bytes:
    """`encode` through the declarations; the tests hold it equal to `encode`."""
    try:
        return _build_message(message, 0)
    except EncodeError:
        raise
    except Exception as exc:
        raise EncodeError(f"cannot encode: {type(exc).__name__}: {exc}") from exc


def _build_message(message: Message | RelayMessage, depth: int) -> bytes:
    check_message(message, depth)
    options = _build_options(message.options, depth + 1)
    if isinstance(message, RelayMessage):
        body: dict[str, object] = {
            "hop_count": message.hop_count,
            "link_address": address_bytes(message.link_address),
            "peer_address": address_bytes(message.peer_address),
            "options": options,
        }
    else:
        body = {"transaction_id": message.transaction_id, "options": options}
    built: bytes = _MESSAGE.build({"msg_type": int(message.msg_type), "body": body})
    return built


def _build_options(options: tuple[Any, ...], depth: int) -> bytes:
    if depth > MAX_DEPTH:
        raise EncodeError(f"messages and options nested more than {MAX_DEPTH} deep")
    if type(options) is not tuple:
        raise EncodeError(f"options must be a tuple, got {type(options).__name__}")
    items = []
    for option in options:
        builder = _BUILDERS.get(type(option))
        if builder is None:
            raise EncodeError(f"{type(option).__name__} is not a DHCPv6 option")
        items.append({"code": option.code, "data": builder(option, depth)})
    built: bytes = _OPTIONS.build({"options": items})
    return built


def _tuple(value: object) -> tuple[Any, ...]:
    if type(value) is not tuple:
        raise EncodeError(f"expected a tuple, got {type(value).__name__}")
    return value


def _build_name(name: object) -> bytes:
    labels = [{"length": len(label), "label": label} for label in split_name(name)]
    built: bytes = NAME.build([*labels, {"length": 0, "label": b""}])
    return built


def _build_ntp(option: NtpServer, depth: int) -> bytes:
    items = []
    for sub in _tuple(option.suboptions):
        if type(sub) is NtpServerAddress or type(sub) is NtpMulticastAddress:
            data = ONE_ADDRESS.build({"address": address_bytes(sub.address)})
        elif type(sub) is NtpServerFqdn:
            data = _build_name(sub.name)
        elif type(sub) is RawOption:
            check_raw(sub, frozenset({1, 2, 3}))
            data = b"" + sub.data
        else:
            raise EncodeError(f"{type(sub).__name__} is not an NTP sub-option")
        items.append({"code": sub.code, "data": data})
    built: bytes = _OPTIONS.build({"options": items})
    return built


def _build_duid(duid: object) -> bytes:
    if type(duid) is DuidLLT:
        kind, body = (
            1,
            {
                "hardware_type": duid.hardware_type,
                "time": duid.time,
                "link_layer_address": b"" + duid.link_layer_address,
            },
        )
    elif type(duid) is DuidEN:
        kind, body = 2, {"enterprise": duid.enterprise, "identifier": b"" + duid.identifier}
    elif type(duid) is DuidLL:
        kind = 3
        body = {
            "hardware_type": duid.hardware_type,
            "link_layer_address": b"" + duid.link_layer_address,
        }
    elif type(duid) is DuidUUID:
        if type(duid.uuid) is not UUID:
            raise EncodeError(f"DUID-UUID needs a UUID, got {duid.uuid!r}")
        kind, body = 4, {"uuid": duid.uuid.bytes}
    elif type(duid) is UnknownDuid:
        if duid.duid_type in (1, 2, 3, 4):
            raise EncodeError(f"DUID type {duid.duid_type} has a class: give it")
        kind, body = duid.duid_type, {"data": b"" + duid.data}
    else:
        raise EncodeError(f"expected a DUID, got {type(duid).__name__}")
    built: bytes = DUID.build({"duid_type": kind, "body": body})
    return built


def _build_raw(option: RawOption, depth: int) -> bytes:
    check_raw(option, TYPED_CODES)
    return b"" + option.data


def _build_ia_prefix(o: IAPrefix, depth: int) -> bytes:
    if not 0 <= o.prefix_length <= 128:
        raise EncodeError(f"prefix length {o.prefix_length!r}")
    built: bytes = IA_PREFIX.build(
        {
            "preferred_lifetime": o.preferred_lifetime,
            "valid_lifetime": o.valid_lifetime,
            "prefix_length": o.prefix_length,
            "prefix": address_bytes(o.prefix),
            "options": _build_options(o.options, depth + 1),
        }
    )
    return built


def _build_ia_address(o: IAAddress, depth: int) -> bytes:
    built: bytes = IA_ADDRESS.build(
        {
            "address": address_bytes(o.address),
            "preferred_lifetime": o.preferred_lifetime,
            "valid_lifetime": o.valid_lifetime,
            "options": _build_options(o.options, depth + 1),
        }
    )
    return built


def _build_ia(o: IANA | IAPD, depth: int) -> bytes:
    built: bytes = IA_NA.build(
        {"iaid": o.iaid, "t1": o.t1, "t2": o.t2, "options": _build_options(o.options, depth + 1)}
    )
    return built


_BUILDERS: dict[type, Callable[[Any, int], bytes]] = {
    ClientId: lambda o, depth: _build_duid(o.duid),
    ServerId: lambda o, depth: _build_duid(o.duid),
    IANA: _build_ia,
    IATA: lambda o, depth: IA_TA.build(
        {"iaid": o.iaid, "options": _build_options(o.options, depth + 1)}
    ),
    IAPD: _build_ia,
    IAAddress: _build_ia_address,
    IAPrefix: _build_ia_prefix,
    OptionRequest: lambda o, depth: ORO.build({"codes": list(_tuple(o.codes))}),
    Preference: lambda o, depth: PREFERENCE.build({"value": o.value}),
    ElapsedTime: lambda o, depth: ELAPSED_TIME.build({"hundredths": o.hundredths}),
    RelayMessageOption: lambda o, depth: _build_message(o.message, depth + 1),
    StatusCode: lambda o, depth: STATUS_CODE.build(
        {"status": o.status, "message": o.message if type(o.message) is str else None}
    ),
    RapidCommit: lambda o, depth: RAPID_COMMIT.build({}),
    InterfaceId: lambda o, depth: b"" + o.value,
    DnsServers: lambda o, depth: ADDRESSES.build(
        {"addresses": [address_bytes(a) for a in _tuple(o.addresses)]}
    ),
    DomainList: lambda o, depth: b"".join([_build_name(name) for name in _tuple(o.names)]),
    NtpServer: _build_ntp,
    ClientLinkLayerAddress: lambda o, depth: CLIENT_LINKLAYER_ADDR.build(
        {"link_layer_type": o.link_layer_type, "address": b"" + o.address}
    ),
    RawOption: _build_raw,
}
