"""Pure DHCPv4 codec declared with construct: bytes <-> typed messages, no I/O.

    message = decode(packet)              # raises DecodeError, and nothing else
    message.message_type, message.mac, message.options[OptionCode.REQUESTED_IP]
    reply = Message(op=Op.BOOTREPLY, xid=message.xid, chaddr=message.chaddr,
                    options=Options({53: MessageType.OFFER, 54: server, ...}))
    encode(reply, max_size=message.max_message_size or 576)  # RFC 2131: 576 unless told

- `decode` validates every option kvip knows (lengths, relay sub-options,
  domain-search pointers, route widths) before it returns: reading the values
  of a decoded message never raises. Values are built on first access.
- `Options` maps option codes to typed values (see `OptionValue`), keeps wire
  order, and compares like a dict. Built from values, it checks them at once.
- `encode` writes 53 first and 82 last, splits values over 255 bytes
  (RFC 3396), overloads `file`/`sname` when `max_size` forces it (RFC 2131),
  and pads to 300 bytes (RFC 1542).

The BOOTP header and the option TLVs are declared with construct in `_wire.py`;
the hot path is hand-tuned and the tests hold both to the same results.

The DHCPv6 codec (RFC 8415) is `protocol.dhcp6`, built the same way; the two
share only `DecodeError` and `EncodeError`.
"""

from ._codec import decode, encode
from ._codes import MessageType, Op, OptionCode
from ._errors import CodecError, DecodeError, EncodeError, MessageTooBig
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
    "MessageTooBig",
    "MessageType",
    "Op",
    "OptionCode",
    "OptionValue",
    "Options",
    "RelayAgentInformation",
    "decode",
    "encode",
]
