"""The wire format, twice: declared with construct, and hand-tuned with `struct`.

The construct declarations below are the definition of the BOOTP header
(RFC 951, RFC 2131 2) and of the option TLVs (RFC 2132 2). `decode`/`encode`
run the hand-tuned readers and writers (`*_fast`) because they sit on the DHCP
hot path; the `*_declared` twins run the compiled declarations instead, and
the test suite checks with hypothesis that both produce the same fields from
any input and the same bytes from any message.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

from construct import (
    Check,
    Const,
    FixedSized,
    GreedyBytes,
    GreedyRange,
    If,
    Int8ub,
    Int16ub,
    Int32ub,
    Padding,
    Prefixed,
    Rebuild,
    Struct,
    len_,
    this,
)

from ._errors import DecodeError

__all__ = [
    "HEADER",
    "HEADER_SIZE",
    "HEADER_STRUCT",
    "MAGIC_COOKIE",
    "OPTION",
    "OPTION_AREA",
    "HeaderFields",
    "read_header_declared",
    "read_header_fast",
    "scan_options_declared",
    "scan_options_fast",
    "write_header_declared",
    "write_header_fast",
    "write_options_declared",
    "write_options_fast",
]

MAGIC_COOKIE = bytes((99, 130, 83, 99))  # RFC 2131 3
PAD = 0
END = 255
BOOTP_SIZE = 236  # the fixed header without the cookie
HEADER_SIZE = BOOTP_SIZE + len(MAGIC_COOKIE)
CHADDR_SIZE = 16
SNAME_SIZE = 64
FILE_SIZE = 128

HEADER = Struct(
    "op" / Int8ub,
    "htype" / Int8ub,
    "hlen" / Rebuild(Int8ub, len_(this.chaddr)),
    Check(this.hlen <= CHADDR_SIZE),
    "hops" / Int8ub,
    "xid" / Int32ub,
    "secs" / Int16ub,
    "flags" / Int16ub,
    "ciaddr" / Int32ub,
    "yiaddr" / Int32ub,
    "siaddr" / Int32ub,
    "giaddr" / Int32ub,
    "chaddr" / FixedSized(this.hlen, GreedyBytes),
    Padding(CHADDR_SIZE - this.hlen),
    # Whole fields: with option overload they carry options, not names.
    "sname" / FixedSized(SNAME_SIZE, GreedyBytes),
    "file" / FixedSized(FILE_SIZE, GreedyBytes),
    "cookie" / Const(MAGIC_COOKIE),
)

OPTION = Struct(
    "code" / Int8ub,
    # PAD and END are a lone code byte; every other option is code, length, data.
    "data" / If((this.code != PAD) & (this.code != END), Prefixed(Int8ub, GreedyBytes)),
)

# The options field: TLVs up to the first END; whatever cannot be parsed as
# options is left in `rest` (padding after END, or a truncated option).
OPTION_AREA = Struct("options" / GreedyRange(OPTION), "rest" / GreedyBytes)

_HEADER = HEADER.compile()
_OPTION = OPTION.compile()
_OPTION_AREA = OPTION_AREA.compile()

# op, htype, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr (as ints),
# chaddr (hlen bytes), sname (64 bytes), file (128 bytes).
HeaderFields = tuple[int, int, int, int, int, int, int, int, int, int, bytes, bytes, bytes]
HeaderReader = Callable[[bytes], HeaderFields]
OptionScanner = Callable[[bytes, int, int, dict[int, bytes]], None]
HeaderWriter = Callable[[HeaderFields], bytes]
# (code, data) pairs to write; data None means a lone code byte (PAD, END).
OptionItems = Sequence[tuple[int, bytes | None]]
OptionWriter = Callable[[OptionItems], bytes]

HEADER_STRUCT = struct.Struct("!BBBBIHHIIII16s64s128s4s")
assert HEADER_STRUCT.size == HEADER_SIZE


def read_header_fast(data: bytes) -> HeaderFields:
    if len(data) < HEADER_SIZE:
        if len(data) < BOOTP_SIZE:
            raise DecodeError(f"truncated header: {len(data)} bytes, need {BOOTP_SIZE}")
        raise DecodeError(f"no magic cookie: {len(data)} bytes, need {HEADER_SIZE}")
    (op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr, sname,
     file, cookie) = HEADER_STRUCT.unpack_from(data)  # fmt: skip
    if hlen > CHADDR_SIZE:
        raise DecodeError(f"hlen {hlen} > {CHADDR_SIZE}")
    if cookie != MAGIC_COOKIE:
        raise DecodeError(f"bad magic cookie {cookie.hex()}")
    return (op, htype, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr[:hlen],
            sname, file)  # fmt: skip


def read_header_declared(data: bytes) -> HeaderFields:
    try:
        h = _HEADER.parse(data)
    except Exception as exc:
        raise DecodeError(f"bad header: {type(exc).__name__} {exc}") from exc
    return (h.op, h.htype, h.hops, h.xid, h.secs, h.flags, h.ciaddr, h.yiaddr, h.siaddr,
            h.giaddr, h.chaddr, h.sname, h.file)  # fmt: skip


def scan_options_fast(data: bytes, start: int, end: int, found: dict[int, bytes]) -> None:
    """Add the options in data[start:end] to `found`, joining repeats (RFC 3396).

    Stops at END; a field that simply ends without END is accepted.
    """
    if end != len(data):  # the loop below reads to the end of `data`
        data = data[:end]
    pos = start
    try:
        while pos < end:
            code = data[pos]
            if code == 0:  # PAD; literals, not the names: no global lookups per option
                pos += 1
                continue
            if code == 255:  # END
                return
            stop = pos + 2 + data[pos + 1]  # IndexError: no length byte
            if stop > end:
                raise DecodeError(f"option {code} length {data[pos + 1]} runs past the end")
            if code in found:
                found[code] += data[pos + 2 : stop]
            else:
                found[code] = data[pos + 2 : stop]
            pos = stop
    except IndexError:
        raise DecodeError(f"option {data[pos]} has no length byte") from None


def scan_options_declared(data: bytes, start: int, end: int, found: dict[int, bytes]) -> None:
    try:
        area = _OPTION_AREA.parse(data[start:end])
    except Exception as exc:  # pragma: no cover - GreedyRange/GreedyBytes cannot fail
        raise DecodeError(f"bad options: {exc}") from exc
    for option in area.options:
        if option.code == END:
            return
        if option.code != PAD:
            found[option.code] = found.get(option.code, b"") + option.data
    if area.rest:
        raise DecodeError(f"malformed option at {end - len(area.rest) - start} of the field")


def write_header_fast(fields: HeaderFields) -> bytes:
    (op, htype, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr, sname,
     file) = fields  # fmt: skip
    # Callers have checked the lengths: struct would silently truncate.
    return HEADER_STRUCT.pack(op, htype, len(chaddr), hops, xid, secs, flags, ciaddr, yiaddr,
                               siaddr, giaddr, chaddr, sname, file, MAGIC_COOKIE)  # fmt: skip


def write_header_declared(fields: HeaderFields) -> bytes:
    (op, htype, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr, sname,
     file) = fields  # fmt: skip
    built: bytes = _HEADER.build(
        {
            "op": op,
            "htype": htype,
            "hops": hops,
            "xid": xid,
            "secs": secs,
            "flags": flags,
            "ciaddr": ciaddr,
            "yiaddr": yiaddr,
            "siaddr": siaddr,
            "giaddr": giaddr,
            "chaddr": chaddr,
            "sname": sname,
            "file": file,
        }
    )
    return built


def write_options_fast(options: OptionItems) -> bytes:
    """TLVs for (code, data) pairs; PAD and END are written as their lone byte."""
    return b"".join(
        [
            bytes((code, len(data))) + data if data is not None else bytes((code,))
            for code, data in options
        ]
    )


def write_options_declared(options: OptionItems) -> bytes:
    return b"".join(_OPTION.build({"code": code, "data": data}) for code, data in options)
