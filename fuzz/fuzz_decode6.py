"""Fuzz target: arbitrary bytes into the DHCPv6 `decode` (protocol.dhcp6).

Only DecodeError may escape; whatever decodes re-encodes to the very same
bytes on both encoders, and the construct declarations read what the
hand-written decoder reads. Run under atheris (libFuzzer flags after the
script name; `make fuzz` gives it its own corpus, fuzz/corpus6):

    .venv/bin/python fuzz/fuzz_decode6.py -max_total_time=60 .fuzz-work6 fuzz/corpus6

`check_decode6` is the property; tests/test_fuzz_targets.py runs it under
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
    import uuid  # noqa: F401

    import construct  # noqa: F401

    with atheris.instrument_imports():
        from protocol import dhcp6
        from protocol.dhcp6._declared import decode_declared
        from protocol.dhcp6._declared_build import encode_declared
else:
    from protocol import dhcp6
    from protocol.dhcp6._declared import decode_declared
    from protocol.dhcp6._declared_build import encode_declared


def check_decode6(data: bytes) -> None:
    try:
        message = dhcp6.decode(data)
    except dhcp6.DecodeError:
        try:
            decode_declared(data)
        except dhcp6.DecodeError:
            return
        raise AssertionError("the construct declarations decode what decode refused") from None
    assert decode_declared(data) == message
    assert dhcp6.encode(message) == data, message
    assert encode_declared(message) == data, message


def TestOneInput(data: bytes) -> None:  # noqa: N802 - the name atheris expects
    check_decode6(data)


if __name__ == "__main__":
    if atheris is None:
        sys.exit("atheris is not installed: pip install -e '.[fuzz]'")
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
