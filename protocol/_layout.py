"""Where each option goes when a message is written: order, long-option
splitting (RFC 3396) and option overload into `file` and `sname` (RFC 2131 4.1,
RFC 2132 9.3) when the options do not fit the client's maximum message size."""

from __future__ import annotations

from ._codes import OptionCode
from ._errors import MessageTooBig
from ._options import Options

__all__ = ["Items", "Layout", "plan_layout"]

_MAX_CHUNK = 255
_TLV = 2  # code and length bytes
_END = 1
_OVERLOAD_TLV = 3
_FIRST = int(OptionCode.MESSAGE_TYPE)
_LAST = int(OptionCode.RELAY_AGENT_INFO)

Items = list[tuple[int, bytes]]


# Options per field, each in writing order and without END: (options field,
# file, sname, option 52's value: 1 file, 2 sname, 3 both, 0 no overload).
# When overloading, (52, value) is already in the options field, before 82.
Layout = tuple[Items, Items, Items, int]


def ordered_chunks(options: Options) -> list[tuple[int, bytes, bool]]:
    """(code, chunk, splittable) in writing order: 53 first (RFC 2131 4.1
    recommends it), 82 last (RFC 3046 2.1), values over 255 bytes split
    (RFC 3396). Only long options may be split further: a client without
    RFC 3396 support must still see every short option whole."""
    codes = list(options)
    if _FIRST in options:
        codes.remove(_FIRST)
        codes.insert(0, _FIRST)
    if _LAST in options:
        codes.remove(_LAST)
        codes.append(_LAST)
    chunks: list[tuple[int, bytes, bool]] = []
    for code in codes:
        data = options.raw(code)
        assert data is not None
        if len(data) <= _MAX_CHUNK:
            chunks.append((code, data, False))
        else:
            chunks.extend(
                (code, data[i : i + _MAX_CHUNK], True) for i in range(0, len(data), _MAX_CHUNK)
            )
    return chunks


def plan_layout(options: Options, *, room: int | None, file_free: bool, sname_free: bool) -> Layout:
    """Fit the options into `room` bytes of options field (END included), then
    into `file` and `sname` if they are free (empty in the message).

    Raises MessageTooBig when they do not fit even so.
    """
    raw = options._raw
    needed = sum(map(len, raw.values())) + _TLV * len(raw) + _END
    if (room is None or needed <= room) and max(map(len, raw.values()), default=0) <= _MAX_CHUNK:
        # The common case, kept lean: everything fits, only 53 and 82 may move.
        items = list(raw.items())
        if _FIRST in raw and items[0][0] != _FIRST:
            items.remove((_FIRST, raw[_FIRST]))
            items.insert(0, (_FIRST, raw[_FIRST]))
        if _LAST in raw and items[-1][0] != _LAST:
            items.remove((_LAST, raw[_LAST]))
            items.append((_LAST, raw[_LAST]))
        return items, [], [], 0
    chunks = ordered_chunks(options)
    needed += sum(_TLV for _, data, splittable in chunks if splittable) - sum(
        _TLV for data in raw.values() if len(data) > _MAX_CHUNK
    )
    if room is None or needed <= room:
        return [(code, data) for code, data, _ in chunks], [], [], 0

    # First fit, field by field: options, then file, then sname. Short options
    # go first and whole; long ones are poured into what is left, their parts
    # in field order, as RFC 3396 joins them so.
    fields: list[Items] = [[]]
    free = [room - _OVERLOAD_TLV - _END]
    if file_free:
        fields.append([])
        free.append(128 - _END)
    if sname_free:
        fields.append([])
        free.append(64 - _END)
    relay = [(code, data) for code, data, splittable in chunks if code == _LAST and not splittable]
    if relay and _TLV + len(relay[0][1]) <= free[0]:
        free[0] -= _TLV + len(relay[0][1])  # RFC 3046 2.1: last of the options field
    else:
        relay = []
    short = [chunk for chunk in chunks if not chunk[2] and not (relay and chunk[0] == _LAST)]
    last_field: dict[int, int] = {}
    for code, data, splittable in short + [chunk for chunk in chunks if chunk[2]]:
        rest = data
        index = last_field.get(code, 0)
        while True:
            if index == len(fields):
                raise MessageTooBig(
                    f"options need {needed} bytes, more than the {room} bytes of the options"
                    " field with overload into the free file/sname fields"
                )
            if _TLV + len(rest) <= free[index]:
                fields[index].append((code, rest))
                free[index] -= _TLV + len(rest)
                last_field[code] = index
                break
            if splittable and free[index] > _TLV:
                cut = free[index] - _TLV
                fields[index].append((code, rest[:cut]))
                rest = rest[cut:]
                free[index] = 0
            index += 1
    file = fields[1] if file_free else []
    sname = fields[-1] if sname_free else []
    overload = (1 if file else 0) | (2 if sname else 0)
    main = fields[0]
    if overload:
        main.append((int(OptionCode.OVERLOAD), bytes((overload,))))
    return main + relay, file, sname, overload
