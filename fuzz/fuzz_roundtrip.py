"""Fuzz target: messages built from fuzzer bytes must survive encode/decode.

The bytes choose the header fields and the options; option values are typed
by decoding random option bytes with the codec's own value decoders, so every
option type's encoder is driven with real values. Each message must encode
(with or without a max_size; only the latter may refuse, with EncodeError),
the construct declarations must write the same bytes, and decoding must give
the message back.

    .venv/bin/python fuzz/fuzz_roundtrip.py -max_total_time=60 .fuzz-work fuzz/corpus
"""

from __future__ import annotations

import sys
from ipaddress import IPv4Address
from typing import Protocol

try:
    import atheris
except ImportError:  # the hypothesis run needs no atheris
    atheris = None

if atheris is not None and __name__ == "__main__":
    # Coverage feedback from our code only: construct and the standard library
    # are imported first, uninstrumented, which keeps the target fast.
    import ipaddress  # noqa: F401

    import construct  # noqa: F401

    with atheris.instrument_imports():
        import protocol
        from protocol._codec import encode_declared
        from protocol._values import decode_value
else:
    import protocol
    from protocol._codec import encode_declared
    from protocol._values import decode_value


class Provider(Protocol):
    def ConsumeBool(self) -> bool: ...  # noqa: N802 - atheris's names
    def ConsumeIntInRange(self, low: int, high: int) -> int: ...  # noqa: N802
    def ConsumeBytes(self, count: int) -> bytes: ...  # noqa: N802


class BytesProvider:
    """The part of atheris.FuzzedDataProvider used here, for runs without atheris."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def ConsumeBytes(self, count: int) -> bytes:  # noqa: N802
        out = self._data[self._pos : self._pos + count]
        self._pos += len(out)
        return out

    def ConsumeIntInRange(self, low: int, high: int) -> int:  # noqa: N802
        span = high - low + 1
        raw = int.from_bytes(self.ConsumeBytes((span.bit_length() + 7) // 8), "big")
        return low + raw % span

    def ConsumeBool(self) -> bool:  # noqa: N802
        return self.ConsumeIntInRange(0, 1) == 1


def provider(data: bytes) -> Provider:
    return atheris.FuzzedDataProvider(data) if atheris is not None else BytesProvider(data)


def build_message(source: Provider) -> protocol.Message:
    def u(bits: int) -> int:
        return source.ConsumeIntInRange(0, (1 << bits) - 1)

    def address() -> IPv4Address:
        return IPv4Address(u(32))

    pairs: list[tuple[int, object]] = []
    for _ in range(source.ConsumeIntInRange(0, 12)):
        code = source.ConsumeIntInRange(1, 254)
        raw = source.ConsumeBytes(source.ConsumeIntInRange(0, 300))
        if code == 52 or any(code == seen for seen, _ in pairs):
            continue
        try:
            pairs.append((code, decode_value(code, raw)))
        except protocol.DecodeError:
            continue
    return protocol.Message(
        op=protocol.Op.BOOTREQUEST if source.ConsumeBool() else protocol.Op.BOOTREPLY,
        xid=u(32),
        chaddr=source.ConsumeBytes(source.ConsumeIntInRange(0, 16)),
        htype=u(8),
        hops=u(8),
        secs=u(16),
        flags=u(16),
        ciaddr=address(),
        yiaddr=address(),
        siaddr=address(),
        giaddr=address(),
        sname=source.ConsumeBytes(source.ConsumeIntInRange(0, 64)).rstrip(b"\0"),
        file=source.ConsumeBytes(source.ConsumeIntInRange(0, 128)).rstrip(b"\0"),
        options=protocol.Options.from_pairs(pairs),
    )


def check_roundtrip(data: bytes) -> None:
    source = provider(data)
    message = build_message(source)
    max_size = source.ConsumeIntInRange(0, 1500) if source.ConsumeBool() else None
    try:
        packet = protocol.encode(message, max_size=max_size)
    except protocol.EncodeError:
        assert max_size is not None, "encode without a size limit refused a valid message"
        return
    assert encode_declared(message, max_size=max_size) == packet
    assert len(packet) >= 300
    if max_size is not None:
        assert len(packet) <= max(max_size, 576) - 28
    assert protocol.decode(packet) == message


def TestOneInput(data: bytes) -> None:  # noqa: N802 - the name atheris expects
    check_roundtrip(data)


if __name__ == "__main__":
    if atheris is None:
        sys.exit("atheris is not installed: pip install -e '.[fuzz]'")
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
