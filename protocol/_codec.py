"""The codec's one door: `decode(bytes) -> Message` and `encode(Message) -> bytes`."""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address

from ._codes import Op
from ._errors import DecodeError, EncodeError
from ._layout import plan_layout
from ._message import (
    Message,
    set_chaddr,
    set_ciaddr,
    set_file,
    set_flags,
    set_giaddr,
    set_hops,
    set_htype,
    set_op,
    set_options,
    set_secs,
    set_siaddr,
    set_sname,
    set_xid,
    set_yiaddr,
)
from ._options import Options, options_from_wire
from ._values import CALL, CHECK_RULES, CHECKS, MULTIPLE_OF_4
from ._wire import (
    CHADDR_SIZE,
    END,
    FILE_SIZE,
    HEADER_SIZE,
    HEADER_STRUCT,
    MAGIC_COOKIE,
    SNAME_SIZE,
    HeaderReader,
    HeaderWriter,
    OptionScanner,
    OptionWriter,
    read_header_declared,
    read_header_fast,
    scan_options_declared,
    scan_options_fast,
    write_header_declared,
    write_header_fast,
    write_options_declared,
    write_options_fast,
)

__all__ = ["MIN_MAX_SIZE", "decode", "encode"]

_OPS = {int(op): op for op in Op}
_OVERLOAD = 52
_ZERO = IPv4Address(0)
# RFC 1542 2.1: relay agents may drop BOOTP messages shorter than 300 bytes.
MIN_SIZE = 300
# RFC 2132 9.10: the smallest maximum message size a client may announce.
MIN_MAX_SIZE = 576
# RFC 2131 2 counts those 576 bytes as an IP datagram: 548 bytes of DHCP message
# (312 of options field) plus the 20-byte IP and 8-byte UDP headers.
_IP_UDP_HEADERS = 28
_ROOM_OVERHEAD = _IP_UDP_HEADERS + HEADER_SIZE
_FIRST = 53  # RFC 2131 4.1 recommends option 53 first
_LAST = 82  # RFC 3046 2.1: relay agent information last
_END_BYTE = bytes((END,))
_MIN_BODY = MIN_SIZE - HEADER_SIZE - 1  # options before END in a 300-byte message
_PADDED_ENDS = [_END_BYTE + bytes(pad) for pad in range(_MIN_BODY + 1)]
_NO_SNAME = bytes(SNAME_SIZE)
_NO_FILE = bytes(FILE_SIZE)
_unpack_header = HEADER_STRUCT.unpack_from
_pack_header = HEADER_STRUCT.pack


def decode(data: bytes) -> Message:
    """Parse one DHCPv4 message and validate every option kvip knows.

    Raises DecodeError, and only DecodeError, for anything malformed.
    """
    # The hand-tuned twin of `_decode` with the `_fast` readers inlined; the
    # tests hold it equal to `decode_declared`, which runs the construct
    # declarations through `_decode`.
    try:
        if type(data) is not bytes:
            data = bytes(data)
        if len(data) < HEADER_SIZE:
            read_header_fast(data)  # raises the precise error
        (op_code, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr,
         sname, file, cookie) = _unpack_header(data)  # fmt: skip
        if hlen > CHADDR_SIZE or cookie != MAGIC_COOKIE:
            read_header_fast(data)
        op = _OPS.get(op_code)
        if op is None:
            raise DecodeError(f"op {op_code} is neither BOOTREQUEST (1) nor BOOTREPLY (2)")
        raw: dict[int, bytes] = {}
        scan_options_fast(data, HEADER_SIZE, len(data), raw)
        if _OVERLOAD in raw:
            sname, file = _read_overload(raw, sname, file, scan_options_fast)
        else:  # mostly all NULs: a compare is cheaper than a strip
            sname = b"" if sname == _NO_SNAME else sname.rstrip(b"\0")
            file = b"" if file == _NO_FILE else file.rstrip(b"\0")
        rules = CHECK_RULES
        for code, value in raw.items():
            rule = rules[code]
            if rule >= 0:
                if len(value) != rule:
                    CHECKS[code](code, value)  # raises, with the message
            elif rule == CALL or (rule == MULTIPLE_OF_4 and len(value) % 4):
                CHECKS[code](code, value)
        # Message(...) without the frozen __init__'s cost (see _message.py).
        message: Message = object.__new__(Message)
        set_op(message, op)
        set_xid(message, xid)
        set_chaddr(message, chaddr[:hlen])
        set_htype(message, htype)
        set_hops(message, hops)
        set_secs(message, secs)
        set_flags(message, flags)
        set_ciaddr(message, _ADDRESSES_GET(ciaddr) or _address(ciaddr))
        set_yiaddr(message, _ADDRESSES_GET(yiaddr) or _address(yiaddr))
        set_siaddr(message, _ADDRESSES_GET(siaddr) or _address(siaddr))
        set_giaddr(message, _ADDRESSES_GET(giaddr) or _address(giaddr))
        set_sname(message, sname)
        set_file(message, file)
        set_options(message, options_from_wire(raw))
        return message
    except DecodeError:
        raise
    except Exception as exc:  # the promise: nothing else escapes
        raise DecodeError(f"malformed message: {type(exc).__name__}: {exc}") from exc


# Header addresses repeat (zero, the server, relays, a pool's clients): one
# IPv4Address per value costs a dict lookup instead of a constructor call.
_ADDRESSES: dict[int, IPv4Address] = {0: _ZERO}
_ADDRESSES_GET = _ADDRESSES.get
_ADDRESS_CACHE_SIZE = 4096


def _address(value: int) -> IPv4Address:
    if len(_ADDRESSES) >= _ADDRESS_CACHE_SIZE:
        _ADDRESSES.clear()
        _ADDRESSES[0] = _ZERO
    address = _ADDRESSES[value] = IPv4Address(value)
    return address


def _read_overload(
    raw: dict[int, bytes], sname: bytes, file: bytes, scan: OptionScanner
) -> tuple[bytes, bytes]:
    """Options continued in file and sname (RFC 2131 4.1): add them to `raw`,
    and return sname and file as the message keeps them."""
    overload = raw.pop(_OVERLOAD)
    if len(overload) != 1 or not 1 <= overload[0] <= 3:
        raise DecodeError(f"option 52 is {overload.hex() or 'empty'}, must be 01, 02 or 03")
    # File first, then sname; a field that holds options holds no name.
    if overload[0] & 1:
        scan(file, 0, FILE_SIZE, raw)
        file = b""
    if overload[0] & 2:
        scan(sname, 0, SNAME_SIZE, raw)
        sname = b""
    if _OVERLOAD in raw:
        raise DecodeError("option overload loop: option 52 inside file or sname")
    return sname.rstrip(b"\0"), file.rstrip(b"\0")


def decode_declared(data: bytes) -> Message:
    """`decode` through the construct declarations; the tests hold it equal to `decode`."""
    try:
        return _decode(data, read_header_declared, scan_options_declared, _init_message)
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError(f"malformed message: {type(exc).__name__}: {exc}") from exc


def _init_message(
    op: Op, xid: int, chaddr: bytes, htype: int, hops: int, secs: int, flags: int,
    ciaddr: IPv4Address, yiaddr: IPv4Address, siaddr: IPv4Address, giaddr: IPv4Address,
    sname: bytes, file: bytes, options: Options,
) -> Message:  # fmt: skip
    return Message(
        op=op, xid=xid, chaddr=chaddr, htype=htype, hops=hops, secs=secs, flags=flags,
        ciaddr=ciaddr, yiaddr=yiaddr, siaddr=siaddr, giaddr=giaddr, sname=sname, file=file,
        options=options,
    )  # fmt: skip


MessageFactory = Callable[
    [Op, int, bytes, int, int, int, int, IPv4Address, IPv4Address, IPv4Address, IPv4Address,
     bytes, bytes, Options],
    Message,
]  # fmt: skip


def _decode(
    data: bytes, read_header: HeaderReader, scan: OptionScanner, make: MessageFactory
) -> Message:
    if type(data) is not bytes:
        data = bytes(data)
    (op_code, htype, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr, sname,
     file) = read_header(data)  # fmt: skip
    op = _OPS.get(op_code)
    if op is None:
        raise DecodeError(f"op {op_code} is neither BOOTREQUEST (1) nor BOOTREPLY (2)")
    raw: dict[int, bytes] = {}
    scan(data, HEADER_SIZE, len(data), raw)
    if _OVERLOAD in raw:
        sname, file = _read_overload(raw, sname, file, scan)
    else:
        sname = sname.rstrip(b"\0")
        file = file.rstrip(b"\0")
    for code, value in raw.items():
        check = CHECKS.get(code)
        if check is not None:
            check(code, value)
    return make(
        op, xid, chaddr, htype, hops, secs, flags,
        _ZERO if ciaddr == 0 else IPv4Address(ciaddr),
        _ZERO if yiaddr == 0 else IPv4Address(yiaddr),
        _ZERO if siaddr == 0 else IPv4Address(siaddr),
        _ZERO if giaddr == 0 else IPv4Address(giaddr),
        sname, file, options_from_wire(raw),
    )  # fmt: skip


def encode(message: Message, *, max_size: int | None = None) -> bytes:
    """The message's bytes, padded to at least 300 (RFC 1542).

    `max_size` is the client's maximum DHCP message size (option 57): values
    below 576 count as 576 (RFC 2132 9.10), and like RFC 2131 2 it includes
    28 bytes of IP and UDP headers. Options that do not fit are continued in
    `file`, then `sname`, when those are empty (option overload, RFC 2131 4.1).
    None means no limit. Raises EncodeError when the message cannot be written.
    """
    # The common case by hand: no long option, everything fits, 53 already
    # first and 82 last. Anything else takes the general path, `_encode`.
    try:
        m = message
        options = m.options
        if type(m) is not Message or type(options) is not Options:
            return _encode(m, max_size, write_header_fast, write_options_fast)
        raw = options._raw
        if (_FIRST in raw and next(iter(raw)) != _FIRST) or (
            _LAST in raw and next(reversed(raw)) != _LAST
        ):
            return _encode(m, max_size, write_header_fast, write_options_fast)
        try:
            body = b"".join([bytes((code, len(data))) + data for code, data in raw.items()])
        except ValueError:  # a value over 255 bytes, to split (RFC 3396)
            return _encode(m, max_size, write_header_fast, write_options_fast)
        if max_size is not None and len(body) >= max(max_size, MIN_MAX_SIZE) - _ROOM_OVERHEAD:
            return _encode(m, max_size, write_header_fast, write_options_fast)  # overload
        op, chaddr, sname, file = m.op, m.chaddr, m.sname, m.file
        ciaddr, yiaddr, siaddr, giaddr = m.ciaddr, m.yiaddr, m.siaddr, m.giaddr
        if (
            type(op) is not Op
            or type(ciaddr) is not IPv4Address
            or type(yiaddr) is not IPv4Address
            or type(siaddr) is not IPv4Address
            or type(giaddr) is not IPv4Address
            or len(chaddr) > CHADDR_SIZE
            or len(sname) > SNAME_SIZE
            or len(file) > FILE_SIZE
        ):
            # Not a plain case (an int op, a bad field): the general path checks all.
            return _encode(m, max_size, write_header_fast, write_options_fast)
        try:
            # `_ip` is what int(address) returns, without a Python-level call per
            # address (a tenth of encode); the types were checked just above, and
            # tests/test_codec_wire.py pins the attribute for newer Pythons.
            header = _pack_header(
                op, m.htype, len(chaddr), m.hops, m.xid, m.secs, m.flags,
                ciaddr._ip, yiaddr._ip, siaddr._ip, giaddr._ip,  # type: ignore[attr-defined]
                chaddr, sname, file, MAGIC_COOKIE,
            )  # fmt: skip
        except Exception as exc:
            raise EncodeError(f"header field out of range: {exc}") from exc
        short = _MIN_BODY - len(body)
        return header + body + _PADDED_ENDS[short] if short > 0 else header + body + _END_BYTE
    except EncodeError:
        raise
    except (TypeError, AttributeError, ValueError) as exc:  # fields of the wrong type
        raise EncodeError(f"cannot encode: {type(exc).__name__}: {exc}") from exc


def encode_declared(message: Message, *, max_size: int | None = None) -> bytes:
    """`encode` through the construct declarations; the tests hold it equal to `encode`."""
    try:
        return _encode(message, max_size, write_header_declared, write_options_declared)
    except EncodeError:
        raise
    except (TypeError, AttributeError, ValueError) as exc:
        raise EncodeError(f"cannot encode: {type(exc).__name__}: {exc}") from exc


def _encode(
    message: Message,
    max_size: int | None,
    write_header: HeaderWriter,
    write_options: OptionWriter,
) -> bytes:
    m = message
    if not isinstance(m, Message):
        raise EncodeError(f"expected Message, got {type(m).__name__}")
    if not isinstance(m.op, int) or m.op not in _OPS:
        raise EncodeError(f"op {m.op!r} is neither BOOTREQUEST nor BOOTREPLY")
    chaddr, sname, file = m.chaddr, m.sname, m.file
    # struct would pad or truncate silently; wrong types fail in write_header.
    if len(chaddr) > 16 or len(sname) > 64 or len(file) > 128:
        raise EncodeError(
            f"chaddr/sname/file hold {len(chaddr)}/{len(sname)}/{len(file)} bytes,"
            " at most 16/64/128"
        )
    ciaddr, yiaddr, siaddr, giaddr = m.ciaddr, m.yiaddr, m.siaddr, m.giaddr
    if not (
        type(ciaddr) is IPv4Address
        and type(yiaddr) is IPv4Address
        and type(siaddr) is IPv4Address
        and type(giaddr) is IPv4Address
    ):
        raise EncodeError(
            f"addresses must be IPv4Address: {ciaddr!r} {yiaddr!r} {siaddr!r} {giaddr!r}"
        )
    options = m.options
    if type(options) is not Options:
        raise EncodeError(f"options must be Options, got {type(options).__name__}")
    room = None if max_size is None else max(max_size, MIN_MAX_SIZE) - _IP_UDP_HEADERS - HEADER_SIZE
    main, in_file, in_sname, overload = plan_layout(
        options, room=room, file_free=not file, sname_free=not sname
    )
    if overload & 1:
        file = write_options([*in_file, (END, None)])
    if overload & 2:
        sname = write_options([*in_sname, (END, None)])
    try:
        header = write_header(
            (
                int(m.op),
                m.htype,
                m.hops,
                m.xid,
                m.secs,
                m.flags,
                int(ciaddr),
                int(yiaddr),
                int(siaddr),
                int(giaddr),
                chaddr,
                sname,
                file,
            )
        )
    except Exception as exc:
        raise EncodeError(f"header field out of range: {exc}") from exc
    body = write_options([*main, (END, None)])
    short = MIN_SIZE - HEADER_SIZE - len(body)
    return header + body + bytes(short) if short > 0 else header + body
