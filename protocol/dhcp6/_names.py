"""RFC 1035 wire names as DHCPv6 carries them: uncompressed (RFC 8415 10),
labels of 1..63 ASCII bytes, at most 255 bytes in all, ending with the root.

The framing (length bytes) is read and written twice, in `_codec.py` and in
`_declared.py`; what a label may hold is decided here, once, for both.
"""

from __future__ import annotations

from .._errors import DecodeError, EncodeError

__all__ = ["MAX_DEPTH", "MAX_LABEL", "MAX_NAME", "join_labels", "split_name"]

MAX_LABEL = 63
MAX_NAME = 255  # wire bytes, the root's zero included
# Options nest (IA_NA > IAADDR > status, relay > relay > message): both twins
# refuse more than this many levels instead of recursing without end.
MAX_DEPTH = 32


def join_labels(labels: list[bytes]) -> str:
    """The dotted name of labels read off the wire (the root label not included)."""
    if sum(map(len, labels)) + len(labels) + 1 > MAX_NAME:
        raise DecodeError(f"domain name longer than {MAX_NAME} bytes")
    try:
        parts = [label.decode("ascii") for label in labels]
    except UnicodeDecodeError:
        raise DecodeError(f"domain name label is not ASCII: {labels!r}") from None
    if any("." in part for part in parts):
        raise DecodeError(f"domain name label holds a dot: {labels!r}")
    return ".".join(parts)


def split_name(name: object) -> list[bytes]:
    """The labels of a dotted name ("" is the root; one trailing dot is allowed)."""
    if not isinstance(name, str):
        raise EncodeError(f"domain name must be str, got {type(name).__name__}")
    if name.endswith("."):
        name = name[:-1]
    if not name:
        return []
    try:
        labels = [part.encode("ascii") for part in name.split(".")]
    except UnicodeEncodeError:
        raise EncodeError(f"domain name {name!r} is not ASCII (use its IDNA form)") from None
    if not all(1 <= len(label) <= MAX_LABEL for label in labels):
        raise EncodeError(f"domain name {name!r} has an empty label or one over 63 bytes")
    if sum(map(len, labels)) + len(labels) + 1 > MAX_NAME:
        raise EncodeError(f"domain name {name!r} is longer than {MAX_NAME} bytes")
    return labels
