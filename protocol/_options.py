"""`Options`: the immutable, ordered option set of a message."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from ._codes import OptionCode
from ._errors import DecodeError, EncodeError
from ._values import OptionValue, decode_value, encode_value

__all__ = ["Options", "options_from_wire"]

# Framing, not content: PAD and END delimit options, and OVERLOAD (52) says where
# they continue; the codec writes those itself (RFC 2131 4.1, RFC 2132 9.3).
RESERVED_CODES = frozenset({OptionCode.PAD, OptionCode.END, OptionCode.OVERLOAD})


class Options(Mapping[int, OptionValue]):
    """Option code -> typed value, in wire order; equal and hashable by content.

    Equality ignores order, like a dict's: order only decides how the options
    are written (53 first, 82 last, the rest as given). Values compare in the
    form `decode` returns: a list of routers reads back as a tuple, 53 as a
    `MessageType`, a host name without the NULs some clients append, a domain
    name without its trailing dot. That is what makes `decode(encode(m)) == m`.

    Building from typed values checks and encodes each value at once
    (`EncodeError` for a wrong type or range). Options from `decode` were
    validated there, and each value is built from its bytes on first access:
    reading them raises nothing.
    """

    __slots__ = ("_hash", "_raw", "_values")

    _raw: dict[int, bytes]
    _values: dict[int, OptionValue]  # a cache, filled on access
    _hash: int | None

    def __init__(self, values: Mapping[int, object] | None = None) -> None:
        self._raw = {}
        self._values = {}
        self._hash = None
        for code, value in (values or {}).items():
            self._add(code, value)

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[int, object]]) -> Options:
        """Options from (code, value) pairs in order; each code at most once."""
        options = cls()
        for code, value in pairs:
            if code in options._raw:
                raise EncodeError(f"option {code} given twice; give one (long) value")
            options._add(code, value)
        return options

    def _add(self, code: int, value: object) -> None:
        if not isinstance(code, int) or isinstance(code, bool) or not 0 <= code <= 255:
            raise EncodeError(f"option code {code!r} is not an int 0..255")
        code = int(code)
        if code in RESERVED_CODES:
            raise EncodeError(f"option {code} is framing that the codec writes itself")
        self._raw[code] = encode_value(code, value)

    def raw(self, code: int) -> bytes | None:
        """The option's bytes as on the wire (all parts joined, RFC 3396), or None."""
        return self._raw.get(code)

    def raw_items(self) -> Iterable[tuple[int, bytes]]:
        """(code, joined bytes) in order, as `encode` writes them (before reordering)."""
        return self._raw.items()

    def __getitem__(self, code: int) -> OptionValue:
        try:
            return self._values[code]
        except KeyError:
            pass
        data = self._raw[code]
        try:
            value = decode_value(code, data)
        except DecodeError:
            raise
        except Exception as exc:  # a bug if ever reached: decode validated `data`
            raise DecodeError(f"option {code}: {exc}") from exc
        self._values[code] = value
        return value

    def __contains__(self, code: object) -> bool:
        return code in self._raw

    def __iter__(self) -> Iterator[int]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def _all_values(self) -> dict[int, OptionValue]:
        return {code: self[code] for code in self._raw}

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Options):
            # Equal bytes are equal values; different bytes may still decode alike.
            return self._raw == other._raw or self._all_values() == other._all_values()
        return super().__eq__(other)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._all_values().items()))
        return self._hash

    def __repr__(self) -> str:
        return f"Options({self._all_values()!r})"


# options_from_wire runs once per decoded packet: slot setters are the cheapest way in.
_new = object.__new__
_set_raw = vars(Options)["_raw"].__set__
_set_values = vars(Options)["_values"].__set__
_set_hash = vars(Options)["_hash"].__set__


def options_from_wire(raw: dict[int, bytes]) -> Options:
    """Adopt the joined option bytes that `decode` has already validated (no copy)."""
    options: Options = _new(Options)
    _set_raw(options, raw)
    _set_values(options, {})
    _set_hash(options, None)
    return options
