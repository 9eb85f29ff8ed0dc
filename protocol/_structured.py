"""Option values with an inner structure: relay agent information (RFC 3046),
domain search lists (RFC 3397 over RFC 1035 names) and classless static
routes (RFC 3442)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from ._errors import DecodeError, EncodeError

__all__ = [
    "ClasslessRoute",
    "RelayAgentInformation",
    "check_domain_search",
    "check_routes",
    "decode_domain_search",
    "decode_relay_agent_info",
    "decode_routes",
    "encode_domain_search",
    "encode_relay_agent_info",
    "encode_routes",
]


@dataclass(frozen=True, slots=True)
class RelayAgentInformation:
    """Option 82: the relay's sub-options, in wire order, kept byte for byte.

    The server never interprets them; RFC 3046 2.2 asks it to echo them unchanged.
    """

    suboptions: tuple[tuple[int, bytes], ...] = ()

    def get(self, code: int) -> bytes | None:
        """The first sub-option `code` (1 circuit id, 2 remote id, ...), or None."""
        for sub_code, value in self.suboptions:
            if sub_code == code:
                return value
        return None

    @property
    def circuit_id(self) -> bytes | None:
        return self.get(1)

    @property
    def remote_id(self) -> bytes | None:
        return self.get(2)


@dataclass(frozen=True, slots=True)
class ClasslessRoute:
    """One RFC 3442 route: packets for `destination` go via `gateway`.

    Not keyword-only on purpose: it reads like the (destination, gateway) pair it is.
    """

    destination: IPv4Network
    gateway: IPv4Address


def decode_relay_agent_info(data: bytes) -> RelayAgentInformation:
    suboptions: list[tuple[int, bytes]] = []
    pos, size = 0, len(data)
    while pos < size:
        if pos + 2 > size:
            raise DecodeError(f"relay agent sub-option {data[pos]} has no length byte")
        code, length = data[pos], data[pos + 1]
        end = pos + 2 + length
        if end > size:
            raise DecodeError(f"relay agent sub-option {code} length {length} runs past the end")
        suboptions.append((code, data[pos + 2 : end]))
        pos = end
    return RelayAgentInformation(tuple(suboptions))


def encode_relay_agent_info(value: object) -> bytes:
    if not isinstance(value, RelayAgentInformation):
        raise EncodeError(f"expected RelayAgentInformation, got {type(value).__name__}")
    parts: list[bytes] = []
    for code, data in value.suboptions:
        if not isinstance(data, bytes) or not 0 <= code <= 255 or len(data) > 255:
            raise EncodeError(f"relay agent sub-option {code!r}: needs a code 0..255, <= 255 bytes")
        parts.append(bytes((code, len(data))) + data)
    return b"".join(parts)


# RFC 1035 4.1.4: two high bits 11 mark a compression pointer; 01 and 10 are
# reserved label types that no DHCP option uses.
_POINTER = 0xC0
_MAX_NAME = 255  # RFC 1035 2.3.4, counted on the wire (length bytes and the root)
_MAX_LABEL = 63
# A label may hold any ASCII but the dot that separates labels in the text
# form: that is what a str of dotted names can carry through a round trip.


def decode_domain_search(data: bytes) -> tuple[str, ...]:
    """RFC 3397: a run of RFC 1035 names; pointers are offsets into `data`."""
    names: list[str] = []
    pos = 0
    while pos < len(data):
        labels, pos = _walk_name(data, pos)
        names.append(b".".join(labels).decode("ascii"))
    return tuple(names)


def check_domain_search(data: bytes) -> None:
    """Raise DecodeError where `decode_domain_search` would, without building names.

    The same rules as `_walk_name`, cheaper: label bytes are checked per run of
    labels at once (length bytes are ASCII and never a dot, as labels hold at
    most 63 bytes... except a length of 46, which falls back to the exact walk),
    and a pointer to a label of an earlier name (what compression produces)
    reuses that suffix's known length. That suffix passed stricter floors when
    it was walked, so the outcome is the decoder's; a test holds them to it.
    """
    size = len(data)
    suffix_lengths: dict[int, int] = {}  # label offset -> wire length from there on
    pos = 0
    while pos < size:
        start = pos
        offsets: list[int] = []
        while True:
            if pos >= size:
                _walk_name(data, start)  # raises the exact error
                raise DecodeError(f"domain search name at offset {start} runs past the end")
            length = data[pos]
            if length == 0:
                run_end = pos
                pos += 1
                tail = 1
                break
            if length <= _MAX_LABEL:
                offsets.append(pos)
                pos += 1 + length
                continue
            if length < _POINTER:
                raise DecodeError(f"domain search label type {length:#x} at offset {pos} unknown")
            if pos + 1 >= size:
                raise DecodeError(f"domain search pointer at offset {pos} is truncated")
            target = ((length & 0x3F) << 8) | data[pos + 1]
            if target >= start:
                raise DecodeError(
                    f"domain search pointer at offset {pos} to {target} does not point backwards"
                )
            run_end = pos
            pos += 2
            known = suffix_lengths.get(target)
            if known is None:
                labels, _ = _walk_name(data, target)
                known = sum(len(label) + 1 for label in labels) + 1
            tail = known
            break
        if run_end == start:  # a bare pointer: its suffix was measured already
            continue
        run = data[start:run_end]
        if not run.isascii() or b"." in run:
            _walk_name(data, start)  # raises for a bad label, or was a length of 46
        if run_end - start + tail > _MAX_NAME:
            raise DecodeError(f"domain search name at offset {start} is longer than 255 bytes")
        base = run_end + tail
        suffix_lengths.update({offset: base - offset for offset in offsets})


def _walk_name(data: bytes, start: int) -> tuple[list[bytes], int]:
    """The labels of the name at `start`, and where the next name starts."""
    labels: list[bytes] = []
    pos = start
    # Every pointer must land strictly before the segment it was found in:
    # offsets then only decrease, which rules out loops, self and forward pointers.
    floor = start
    resume = -1
    wire_length = 1
    size = len(data)
    while True:
        if pos >= size:
            raise DecodeError(f"domain search name at offset {start} runs past the end")
        length = data[pos]
        if length == 0:
            return labels, pos + 1 if resume < 0 else resume
        if length >= _POINTER:
            if pos + 1 >= size:
                raise DecodeError(f"domain search pointer at offset {pos} is truncated")
            target = ((length & 0x3F) << 8) | data[pos + 1]
            if target >= floor:
                raise DecodeError(
                    f"domain search pointer at offset {pos} to {target} does not point backwards"
                )
            if resume < 0:
                resume = pos + 2
            floor = pos = target
            continue
        if length > _MAX_LABEL:
            raise DecodeError(f"domain search label type {length:#x} at offset {pos} unknown")
        end = pos + 1 + length
        if end > size:
            raise DecodeError(f"domain search label at offset {pos} runs past the end")
        wire_length += length + 1
        if wire_length > _MAX_NAME:
            raise DecodeError(f"domain search name at offset {start} is longer than 255 bytes")
        label = data[pos + 1 : end]
        if not label.isascii() or b"." in label:
            raise DecodeError(f"domain search label {label!r} is not ASCII without dots")
        labels.append(label)
        pos = end


def encode_domain_search(value: object) -> bytes:
    """Names in RFC 1035 form, compressed: a suffix already written becomes a pointer."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise EncodeError(f"expected a sequence of domain names, got {type(value).__name__}")
    out = bytearray()
    suffixes: dict[tuple[str, ...], int] = {}
    for name in value:
        labels = _split_name(name)
        for index in range(len(labels)):
            suffix = labels[index:]
            target = suffixes.get(suffix)
            if target is not None:
                out += bytes((_POINTER | target >> 8, target & 0xFF))
                break
            if len(out) < 0x4000:  # pointers carry 14 bits of offset
                suffixes[suffix] = len(out)
            out.append(len(labels[index]))
            out += labels[index].encode("ascii")
        else:
            out.append(0)
    return bytes(out)


def _split_name(name: object) -> tuple[str, ...]:
    if not isinstance(name, str):
        raise EncodeError(f"domain name must be str, got {type(name).__name__}")
    text = name.removesuffix(".")
    labels = tuple(text.split(".")) if text else ()
    for label in labels:
        if not 1 <= len(label) <= _MAX_LABEL or not label.isascii():
            raise EncodeError(f"domain name {name!r}: bad label {label!r}")
    if sum(len(label) + 1 for label in labels) + 1 > _MAX_NAME:
        raise EncodeError(f"domain name {name!r} is longer than 255 bytes on the wire")
    return labels


def decode_routes(data: bytes) -> tuple[ClasslessRoute, ...]:
    """RFC 3442: width, the significant octets of the destination, the router."""
    routes: list[ClasslessRoute] = []
    pos = 0
    while pos < len(data):
        width = data[pos]
        if width > 32:
            raise DecodeError(f"classless route at offset {pos}: prefix width {width} > 32")
        significant = (width + 7) // 8
        end = pos + 1 + significant + 4
        if end > len(data):
            raise DecodeError(f"classless route at offset {pos} runs past the end")
        prefix = int.from_bytes(data[pos + 1 : pos + 1 + significant].ljust(4, b"\0"), "big")
        # Bits past the width are not part of the destination (RFC 3442 is silent;
        # masking is what clients do), so they are dropped rather than refused.
        prefix &= (0xFFFFFFFF << (32 - width)) & 0xFFFFFFFF
        routes.append(
            ClasslessRoute(IPv4Network((prefix, width)), IPv4Address(data[end - 4 : end]))
        )
        pos = end
    return tuple(routes)


def check_routes(data: bytes) -> None:
    """Raise DecodeError where `decode_routes` would, without building routes."""
    pos = 0
    while pos < len(data):
        width = data[pos]
        if width > 32:
            raise DecodeError(f"classless route at offset {pos}: prefix width {width} > 32")
        end = pos + 1 + (width + 7) // 8 + 4
        if end > len(data):
            raise DecodeError(f"classless route at offset {pos} runs past the end")
        pos = end


def encode_routes(value: object) -> bytes:
    if not isinstance(value, Iterable):
        raise EncodeError(f"expected a sequence of ClasslessRoute, got {type(value).__name__}")
    parts: list[bytes] = []
    for route in value:
        if not (
            isinstance(route, ClasslessRoute)
            and isinstance(route.destination, IPv4Network)
            and isinstance(route.gateway, IPv4Address)
        ):
            raise EncodeError(f"expected ClasslessRoute(IPv4Network, IPv4Address), got {route!r}")
        width = route.destination.prefixlen
        significant = route.destination.network_address.packed[: (width + 7) // 8]
        parts.append(bytes((width,)) + significant + route.gateway.packed)
    return b"".join(parts)
