"""The codec's two exceptions: what went wrong reading bytes, and writing them."""

from __future__ import annotations

__all__ = ["CodecError", "DecodeError", "EncodeError", "MessageTooBig"]


class CodecError(ValueError):
    """Base of the codec's errors; callers catch the specific one."""


class DecodeError(CodecError):
    """The bytes are not a DHCP message we can read; the message says why.

    `decode` (DHCPv4) and `protocol.dhcp6.decode` raise nothing else: every
    lower-level failure is chained with `raise ... from` so the cause stays
    visible in tracebacks.
    """


class EncodeError(CodecError):
    """A value or a message cannot be put on the wire (bad type, out of range, too big)."""


class MessageTooBig(EncodeError):
    """The options do not fit the size limit, not even continued in file and sname.

    Every value is encodable: a sender can leave options out and try again.
    """
