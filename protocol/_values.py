"""Typed option values: which Python type each option code maps to, and the
conversions between that type and the option's (joined, RFC 3396) bytes."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from ipaddress import IPv4Address

from ._codes import MessageType, OptionCode
from ._errors import DecodeError, EncodeError
from ._structured import (
    ClasslessRoute,
    RelayAgentInformation,
    check_domain_search,
    check_routes,
    decode_domain_search,
    decode_relay_agent_info,
    decode_routes,
    encode_domain_search,
    encode_relay_agent_info,
    encode_routes,
)

__all__ = [
    "CALL",
    "CHECKS",
    "CHECK_RULES",
    "DECODERS",
    "ENCODERS",
    "MULTIPLE_OF_4",
    "NO_CHECK",
    "OptionValue",
    "decode_value",
    "encode_value",
]

OptionValue = (
    IPv4Address
    | tuple[IPv4Address, ...]
    | str
    | int
    | tuple[int, ...]
    | bytes
    | RelayAgentInformation
    | tuple[str, ...]
    | tuple[ClasslessRoute, ...]
)

Decoder = Callable[[int, bytes], OptionValue]
Check = Callable[[int, bytes], None]
Encoder = Callable[[int, object], bytes]

_C = OptionCode
ADDRESS = (_C.SUBNET_MASK, _C.BROADCAST_ADDRESS, _C.REQUESTED_IP, _C.SERVER_ID)
ADDRESS_LIST = (
    _C.ROUTER,
    _C.TIME_SERVERS,
    _C.NAME_SERVERS,
    _C.DNS,
    _C.LOG_SERVERS,
    _C.NIS_SERVERS,
    _C.NTP_SERVERS,
    _C.NETBIOS_NAME_SERVERS,
)
TEXT = (
    _C.HOST_NAME,
    _C.DOMAIN_NAME,
    _C.ROOT_PATH,
    _C.NIS_DOMAIN,
    _C.MESSAGE,
    _C.TFTP_SERVER_NAME,
    _C.BOOTFILE_NAME,
)
UINT16 = (_C.INTERFACE_MTU, _C.MAX_MESSAGE_SIZE)
UINT32 = (_C.LEASE_TIME, _C.RENEWAL_TIME, _C.REBINDING_TIME)

_MESSAGE_TYPES = {int(kind): kind for kind in MessageType}


def _length_error(code: int, data: bytes, expected: str) -> DecodeError:
    return DecodeError(f"option {code} length {len(data)}, {expected}")


def _decode_address(code: int, data: bytes) -> IPv4Address:
    if len(data) != 4:
        raise _length_error(code, data, "must be 4")
    return IPv4Address(data)


def _decode_address_list(code: int, data: bytes) -> tuple[IPv4Address, ...]:
    if len(data) % 4:
        raise _length_error(code, data, "must be a multiple of 4")
    return tuple(IPv4Address(data[i : i + 4]) for i in range(0, len(data), 4))


def _decode_text(code: int, data: bytes) -> str:
    # Many clients NUL-terminate names (RFC 2132 3.14 says not to); the NULs are
    # dropped from the value, and bytes that are not UTF-8 survive a round trip
    # as surrogate escapes instead of failing the whole packet.
    return data.rstrip(b"\0").decode("utf-8", "surrogateescape")


def _decode_uint16(code: int, data: bytes) -> int:
    if len(data) != 2:
        raise _length_error(code, data, "must be 2")
    return int.from_bytes(data, "big")


def _decode_uint32(code: int, data: bytes) -> int:
    if len(data) != 4:
        raise _length_error(code, data, "must be 4")
    return int.from_bytes(data, "big")


def _decode_message_type(code: int, data: bytes) -> int:
    if len(data) != 1:
        raise _length_error(code, data, "must be 1")
    return _MESSAGE_TYPES.get(data[0], data[0])


def _decode_request_list(code: int, data: bytes) -> tuple[int, ...]:
    return tuple(data)


def _decode_flag(code: int, data: bytes) -> bytes:
    if data:
        raise _length_error(code, data, "must be 0")
    return b""


def _encode_address(code: int, value: object) -> bytes:
    if not isinstance(value, IPv4Address):
        raise EncodeError(f"option {code} expects IPv4Address, got {type(value).__name__}")
    return value.packed


def _encode_address_list(code: int, value: object) -> bytes:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise EncodeError(f"option {code} expects a sequence of IPv4Address, got {value!r}")
    return b"".join(_encode_address(code, item) for item in value)


def _encode_text(code: int, value: object) -> bytes:
    if not isinstance(value, str):
        raise EncodeError(f"option {code} expects str, got {type(value).__name__}")
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as exc:
        raise EncodeError(f"option {code}: {value!r} is not encodable as UTF-8") from exc


def _unsigned(code: int, value: object, size: int) -> bytes:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 8 * size:
        raise EncodeError(f"option {code} expects an int of {size} bytes, got {value!r}")
    return value.to_bytes(size, "big")


def _encode_uint16(code: int, value: object) -> bytes:
    return _unsigned(code, value, 2)


def _encode_uint32(code: int, value: object) -> bytes:
    return _unsigned(code, value, 4)


def _encode_message_type(code: int, value: object) -> bytes:
    return _unsigned(code, value, 1)


def _encode_request_list(code: int, value: object) -> bytes:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise EncodeError(f"option {code} expects a sequence of option codes, got {value!r}")
    return b"".join(_unsigned(code, item, 1) for item in value)


def _encode_bytes(code: int, value: object) -> bytes:
    if not isinstance(value, bytes | bytearray):
        raise EncodeError(f"option {code} expects bytes, got {type(value).__name__}")
    return bytes(value)


def _encode_flag(code: int, value: object) -> bytes:
    if value != b"":
        raise EncodeError(f"option {code} carries no data: its value is b''")
    return b""


_DECODERS: dict[int, Decoder] = {
    **dict.fromkeys(ADDRESS, _decode_address),
    **dict.fromkeys(ADDRESS_LIST, _decode_address_list),
    **dict.fromkeys(TEXT, _decode_text),
    **dict.fromkeys(UINT16, _decode_uint16),
    **dict.fromkeys(UINT32, _decode_uint32),
    _C.MESSAGE_TYPE: _decode_message_type,
    _C.PARAMETER_REQUEST_LIST: _decode_request_list,
    _C.RAPID_COMMIT: _decode_flag,
    _C.RELAY_AGENT_INFO: lambda code, data: decode_relay_agent_info(data),
    _C.DOMAIN_SEARCH: lambda code, data: decode_domain_search(data),
    _C.CLASSLESS_ROUTES: lambda code, data: decode_routes(data),
    _C.MS_CLASSLESS_ROUTES: lambda code, data: decode_routes(data),
}
# Plain-int keys: lookups with wire bytes then hash like ints, not enum members.
DECODERS: dict[int, Decoder] = {int(code): decoder for code, decoder in _DECODERS.items()}


def _fixed_length(size: int) -> Check:
    expected = f"must be {size}"

    def check(code: int, data: bytes) -> None:
        if len(data) != size:
            raise _length_error(code, data, expected)

    return check


def _check_address_list(code: int, data: bytes) -> None:
    if len(data) % 4:
        raise _length_error(code, data, "must be a multiple of 4")


def _check_relay_agent_info(code: int, data: bytes) -> None:
    # A few short sub-option TLVs: parsing them is as cheap as any check.
    decode_relay_agent_info(data)


# What `decode` checks up front: exactly the failures of the decoders above
# (a test holds them to it), at a fraction of the cost. Values are then built
# on first access, so a server that never reads option 121 of a request never
# pays for IPv4Network objects.
_CHECKS: dict[int, Check] = {
    **dict.fromkeys(ADDRESS, _fixed_length(4)),
    **dict.fromkeys(ADDRESS_LIST, _check_address_list),
    **dict.fromkeys(UINT16, _fixed_length(2)),
    **dict.fromkeys(UINT32, _fixed_length(4)),
    _C.MESSAGE_TYPE: _fixed_length(1),
    _C.RAPID_COMMIT: _fixed_length(0),
    _C.RELAY_AGENT_INFO: _check_relay_agent_info,
    _C.DOMAIN_SEARCH: lambda code, data: check_domain_search(data),
    _C.CLASSLESS_ROUTES: lambda code, data: check_routes(data),
    _C.MS_CLASSLESS_ROUTES: lambda code, data: check_routes(data),
}
CHECKS: dict[int, Check] = {int(code): check for code, check in _CHECKS.items()}

# The same checks as `CHECKS`, in the form `decode` runs them: one int per
# option code, indexed by the code. n >= 0: exactly n bytes; MULTIPLE_OF_4;
# CALL: a structured option, run CHECKS[code]; NO_CHECK. Length rules are
# tested inline, far cheaper than a call per option; when one fails, the
# function in CHECKS raises the error with its message.
NO_CHECK = -1
CALL = -2
MULTIPLE_OF_4 = -3
_LENGTH_RULES = {
    **{int(code): 4 for code in ADDRESS + UINT32},
    **{int(code): MULTIPLE_OF_4 for code in ADDRESS_LIST},
    **{int(code): 2 for code in UINT16},
    int(_C.MESSAGE_TYPE): 1,
    int(_C.RAPID_COMMIT): 0,
}
CHECK_RULES: tuple[int, ...] = tuple(
    _LENGTH_RULES.get(code, CALL if code in CHECKS else NO_CHECK) for code in range(256)
)


_ENCODERS: dict[int, Encoder] = {
    **dict.fromkeys(ADDRESS, _encode_address),
    **dict.fromkeys(ADDRESS_LIST, _encode_address_list),
    **dict.fromkeys(TEXT, _encode_text),
    **dict.fromkeys(UINT16, _encode_uint16),
    **dict.fromkeys(UINT32, _encode_uint32),
    _C.MESSAGE_TYPE: _encode_message_type,
    _C.PARAMETER_REQUEST_LIST: _encode_request_list,
    _C.RAPID_COMMIT: _encode_flag,
    _C.RELAY_AGENT_INFO: lambda code, value: encode_relay_agent_info(value),
    _C.DOMAIN_SEARCH: lambda code, value: encode_domain_search(value),
    _C.CLASSLESS_ROUTES: lambda code, value: encode_routes(value),
    _C.MS_CLASSLESS_ROUTES: lambda code, value: encode_routes(value),
}
ENCODERS: dict[int, Encoder] = {int(code): encoder for code, encoder in _ENCODERS.items()}


def decode_value(code: int, data: bytes) -> OptionValue:
    """The typed value of option `code` from its joined bytes; unknown codes stay bytes."""
    decoder = DECODERS.get(code)
    return data if decoder is None else decoder(code, data)


def encode_value(code: int, value: object) -> bytes:
    """The bytes of a typed value; raises EncodeError when the type does not fit `code`."""
    encoder = ENCODERS.get(code, _encode_bytes)
    return encoder(code, value)
