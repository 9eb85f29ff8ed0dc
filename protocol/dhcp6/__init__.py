"""Pure DHCPv6 codec (RFC 8415) declared with construct: bytes <-> typed messages, no I/O.

    message = decode(packet)           # raises DecodeError, and nothing else
    if isinstance(message, RelayMessage):
        client = message.innermost     # the client's message under the relays
    message.client_duid.mac            # "52:54:00:aa:bb:cc" from a DUID-LL(T), else None
    for ia in message.ia_nas: ...
    reply = Message(msg_type=MessageType.REPLY, transaction_id=message.transaction_id,
                    options=(ServerId(duid), ClientId(message.client_duid), IANA(...)))
    encode(reply)                      # raises EncodeError for a bad field

- A message's options are a tuple of typed option values (`ClientId`, `IANA`,
  `IAAddress`, `StatusCode`, ...), in wire order, repeats kept; options the
  codec does not type are `RawOption(code, data)` and re-encode as they came,
  so `encode(decode(packet)) == packet` for every packet `decode` accepts.
- `decode` validates every typed option (lengths, nested options, relayed
  messages, RFC 1035 names) before it returns.
- Errors are the DHCPv4 codec's: `protocol.DecodeError`, `protocol.EncodeError`.

The wire format is declared with construct in `_declared.py`; `decode` and
`encode` are hand-written twins, and the tests hold them to the same results.
"""

from .._errors import CodecError, DecodeError, EncodeError
from ._codec import decode
from ._codes import DuidType, MessageType, OptionCode, Status
from ._duid import Duid, DuidEN, DuidLL, DuidLLT, DuidUUID, UnknownDuid
from ._encode import encode
from ._message import Message, RelayMessage
from ._options import (
    IANA,
    IAPD,
    IATA,
    ClientId,
    ClientLinkLayerAddress,
    DnsServers,
    DomainList,
    ElapsedTime,
    IAAddress,
    IAPrefix,
    InterfaceId,
    NtpMulticastAddress,
    NtpServer,
    NtpServerAddress,
    NtpServerFqdn,
    NtpSuboption,
    Option,
    OptionRequest,
    Preference,
    RapidCommit,
    RawOption,
    RelayMessageOption,
    ServerId,
    StatusCode,
)

__all__ = [
    "IANA",
    "IAPD",
    "IATA",
    "ClientId",
    "ClientLinkLayerAddress",
    "CodecError",
    "DecodeError",
    "DnsServers",
    "DomainList",
    "Duid",
    "DuidEN",
    "DuidLL",
    "DuidLLT",
    "DuidType",
    "DuidUUID",
    "ElapsedTime",
    "EncodeError",
    "IAAddress",
    "IAPrefix",
    "InterfaceId",
    "Message",
    "MessageType",
    "NtpMulticastAddress",
    "NtpServer",
    "NtpServerAddress",
    "NtpServerFqdn",
    "NtpSuboption",
    "Option",
    "OptionCode",
    "OptionRequest",
    "Preference",
    "RapidCommit",
    "RawOption",
    "RelayMessage",
    "RelayMessageOption",
    "ServerId",
    "Status",
    "StatusCode",
    "UnknownDuid",
    "decode",
    "encode",
]
