"""Fuzz target: arbitrary bytes into `decode`.

Only DecodeError may escape; whatever decodes reads back without errors,
re-encodes, and re-decodes equal; the construct declarations agree with the
hand-tuned path. Run under atheris (libFuzzer flags after the script name):

    .venv/bin/python fuzz/fuzz_decode.py -max_total_time=60 .fuzz-work fuzz/corpus

`check_decode` is the property; tests/test_fuzz_targets.py runs it under
hypothesis, so it must stay importable without atheris.
"""

from __future__ import annotations

import sys

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
        from protocol._codec import decode_declared
else:
    import protocol
    from protocol._codec import decode_declared


def check_decode(data: bytes) -> None:
    try:
        message = protocol.decode(data)
    except protocol.DecodeError:
        try:
            decode_declared(data)
        except protocol.DecodeError:
            return
        raise AssertionError("the construct declarations decode what decode refused") from None
    assert decode_declared(data) == message
    values = dict(message.options)  # validated by decode: reading raises nothing
    packet = protocol.encode(message)
    again = protocol.decode(packet)
    assert again == message, (message, again)
    assert dict(again.options) == values
    assert protocol.encode(again) == packet


def TestOneInput(data: bytes) -> None:  # noqa: N802 - the name atheris expects
    check_decode(data)


if __name__ == "__main__":
    if atheris is None:
        sys.exit("atheris is not installed: pip install -e '.[fuzz]'")
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
