"""`Message`: one DHCPv4 message as typed, immutable fields."""

from __future__ import annotations

from dataclasses import dataclass, fields
from ipaddress import IPv4Address
from typing import cast

from ._codes import MessageType, Op, OptionCode
from ._options import Options
from ._structured import RelayAgentInformation

__all__ = ["Message"]

_ZERO = IPv4Address(0)
_BROADCAST_FLAG = 0x8000  # RFC 2131 2, figure 2


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """A BOOTP/DHCP message (RFC 2131 2).

    `chaddr` holds exactly `hlen` bytes (0..16). `sname` and `file` are stored
    without their trailing NULs; when option overload (52) put options there,
    they are empty and the options are in `options`. Fields are not checked
    here: `encode` checks ranges and lengths and raises `EncodeError`.
    """

    op: Op
    xid: int
    chaddr: bytes
    htype: int = 1
    hops: int = 0
    secs: int = 0
    flags: int = 0
    ciaddr: IPv4Address = _ZERO
    yiaddr: IPv4Address = _ZERO
    siaddr: IPv4Address = _ZERO
    giaddr: IPv4Address = _ZERO
    sname: bytes = b""
    file: bytes = b""
    options: Options = Options()  # noqa: RUF009 - immutable, safe to share

    @property
    def message_type(self) -> MessageType | None:
        """Option 53, or None when it is missing or not a known type."""
        kind = self.options.get(OptionCode.MESSAGE_TYPE)
        return kind if isinstance(kind, MessageType) else None

    @property
    def broadcast(self) -> bool:
        """The client asked for broadcast replies (RFC 2131 4.1)."""
        return bool(self.flags & _BROADCAST_FLAG)

    @property
    def mac(self) -> str:
        """chaddr as lowercase colon-separated hex ("52:54:00:aa:bb:cc" for Ethernet)."""
        return self.chaddr.hex(":")

    @property
    def requested_ip(self) -> IPv4Address | None:
        """Option 50."""
        value = self.options.get(OptionCode.REQUESTED_IP)
        return value if isinstance(value, IPv4Address) else None

    @property
    def server_id(self) -> IPv4Address | None:
        """Option 54."""
        value = self.options.get(OptionCode.SERVER_ID)
        return value if isinstance(value, IPv4Address) else None

    @property
    def max_message_size(self) -> int | None:
        """Option 57, as the client sent it (`encode` applies the 576 minimum)."""
        value = self.options.get(OptionCode.MAX_MESSAGE_SIZE)
        return value if isinstance(value, int) else None

    @property
    def parameter_request_list(self) -> tuple[int, ...]:
        """Option 55, or () when absent."""
        value = self.options.get(OptionCode.PARAMETER_REQUEST_LIST)
        return cast("tuple[int, ...]", value) if value is not None else ()

    @property
    def relay_agent_info(self) -> RelayAgentInformation | None:
        """Option 82."""
        value = self.options.get(OptionCode.RELAY_AGENT_INFO)
        return value if isinstance(value, RelayAgentInformation) else None


# A frozen dataclass's __init__ goes through object.__setattr__ once per field,
# which costs more than the rest of `decode`. decode builds messages through
# these slot setters instead; the result is the same object (the tests compare
# decode's messages with those that Message(...) makes in `decode_declared`).
FIELD_ORDER = tuple(field.name for field in fields(Message))
assert FIELD_ORDER == (
    "op", "xid", "chaddr", "htype", "hops", "secs", "flags", "ciaddr", "yiaddr", "siaddr",
    "giaddr", "sname", "file", "options",
)  # fmt: skip
(set_op, set_xid, set_chaddr, set_htype, set_hops, set_secs, set_flags, set_ciaddr,
 set_yiaddr, set_siaddr, set_giaddr, set_sname, set_file, set_options) = (
    vars(Message)[name].__set__ for name in FIELD_ORDER
)  # fmt: skip
