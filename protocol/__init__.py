"""Pure DHCPv4 codec declared with construct: bytes <-> typed messages, no I/O.

`decode` and `encode` are the only doors; `decode` raises only `DecodeError`.
"""

from ._codec import decode, encode
from ._codes import MessageType, Op, OptionCode
from ._errors import CodecError, DecodeError, EncodeError
from ._message import Message
from ._options import Options
from ._structured import ClasslessRoute, RelayAgentInformation
from ._values import OptionValue

__all__ = [
    "ClasslessRoute",
    "CodecError",
    "DecodeError",
    "EncodeError",
    "Message",
    "MessageType",
    "Op",
    "OptionCode",
    "OptionValue",
    "Options",
    "RelayAgentInformation",
    "decode",
    "encode",
]
