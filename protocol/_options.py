"""`Options`: the immutable, ordered option set of a message."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from ._codes import OptionCode
from ._errors import EncodeError
from ._values import OptionValue, decode_value, encode_value

__all__ = ["Options"]

# Framing, not content: PAD and END delimit options, and OVERLOAD (52) says where
# they continue; the codec writes those itself (RFC 2131 4.1, RFC 2132 9.3).
RESERVED_CODES = frozenset({OptionCode.PAD, OptionCode.END, OptionCode.OVERLOAD})


class Options(Mapping[int, OptionValue]):
    """Option code -> typed value, in wire order; equal and hashable by content.

    Equality ignores order, like a dict: the order only decides how the options
    are written (after option 53, before option 82). Built from typed values,
    each value is checked and brought to the form `decode` would return (a list
    of routers becomes a tuple, 53 becomes a `MessageType`, a domain name loses
    its trailing dot), so that `decode(encode(m)) == m`. Invalid values raise
    `EncodeError` here, not later in `encode`.

    All values are decoded and validated by `decode`, so reading a decoded
    `Options` never raises.
    """

    __slots__ = ("_hash", "_raw", "_values")

    _raw: dict[int, bytes]
    _values: dict[int, OptionValue]
    _hash: int | None

    def __init__(self, values: Mapping[int, OptionValue] | None = None) -> None:
        self._raw = {}
        self._values = {}
        self._hash = None
        for code, value in (values or {}).items():
            self._add(code, value)

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[int, OptionValue]]) -> Options:
        """Options from (code, value) pairs in order; a code may appear once."""
        options = cls()
        for code, value in pairs:
            if code in options._raw:
                raise EncodeError(f"option {code} given twice; give one (long) value")
            options._add(code, value)
        return options

    @classmethod
    def _from_wire(cls, raw: dict[int, bytes], values: dict[int, OptionValue]) -> Options:
        """Adopt what `decode` already parsed and validated (no copies, no checks)."""
        options = cls.__new__(cls)
        options._raw = raw
        options._values = values
        options._hash = None
        return options

    def _add(self, code: int, value: OptionValue) -> None:
        if not isinstance(code, int) or isinstance(code, bool) or not 0 <= code <= 255:
            raise EncodeError(f"option code {code!r} is not an int 0..255")
        code = int(code)
        if code in RESERVED_CODES:
            raise EncodeError(f"option {code} is framing that the codec writes itself")
        data = encode_value(code, value)
        self._raw[code] = data
        self._values[code] = decode_value(code, data)

    def raw(self, code: int) -> bytes | None:
        """The option's bytes as on the wire (all parts joined, RFC 3396), or None."""
        return self._raw.get(code)

    def __getitem__(self, code: int) -> OptionValue:
        return self._values[code]

    def __contains__(self, code: object) -> bool:
        return code in self._values

    def __iter__(self) -> Iterator[int]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Options):
            return self._values == other._values
        return super().__eq__(other)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._values.items()))
        return self._hash

    def __repr__(self) -> str:
        return f"Options({self._values!r})"
