"""Option values (RFC 8415 21 and the RFCs named below), one frozen class each.

A message's options are a tuple of these, in wire order: DHCPv6 repeats
options (several IA_NA, several addresses inside one), so it is not a mapping.
Options the codec does not type stay `RawOption` and are written back as they came.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import TYPE_CHECKING, ClassVar, TypeVar

from ._codes import OptionCode
from ._duid import Duid

if TYPE_CHECKING:
    from ._message import Message, RelayMessage

__all__ = [
    "IANA",
    "IAPD",
    "IATA",
    "ClientId",
    "ClientLinkLayerAddress",
    "DnsServers",
    "DomainList",
    "ElapsedTime",
    "IAAddress",
    "IAPrefix",
    "InterfaceId",
    "NtpMulticastAddress",
    "NtpServer",
    "NtpServerAddress",
    "NtpServerFqdn",
    "NtpSuboption",
    "Option",
    "OptionRequest",
    "Preference",
    "RapidCommit",
    "RawOption",
    "RelayMessageOption",
    "ServerId",
    "StatusCode",
    "find",
    "find_all",
]


@dataclass(frozen=True, slots=True)
class RawOption:
    """An option (or NTP sub-option) the codec does not type: its code and bytes."""

    code: int
    data: bytes


@dataclass(frozen=True, slots=True)
class ClientId:
    code: ClassVar[int] = OptionCode.CLIENT_ID
    duid: Duid


@dataclass(frozen=True, slots=True)
class ServerId:
    code: ClassVar[int] = OptionCode.SERVER_ID
    duid: Duid


@dataclass(frozen=True, slots=True, kw_only=True)
class IANA:
    """Identity association for non-temporary addresses (3): T1 and T2 in seconds."""

    code: ClassVar[int] = OptionCode.IA_NA
    iaid: int
    t1: int = 0
    t2: int = 0
    options: tuple[Option, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class IATA:
    """Identity association for temporary addresses (4): kvip only answers it
    with a status code (NoAddrsAvail)."""

    code: ClassVar[int] = OptionCode.IA_TA
    iaid: int
    options: tuple[Option, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class IAPD:
    """Identity association for prefix delegation (25): kvip only answers it
    with a status code (NoPrefixAvail)."""

    code: ClassVar[int] = OptionCode.IA_PD
    iaid: int
    t1: int = 0
    t2: int = 0
    options: tuple[Option, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class IAAddress:
    """An address inside an IA_NA or IA_TA (5); lifetimes in seconds, 0xffffffff infinite."""

    code: ClassVar[int] = OptionCode.IA_ADDRESS
    address: IPv6Address
    preferred_lifetime: int = 0
    valid_lifetime: int = 0
    options: tuple[Option, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class IAPrefix:
    """A prefix inside an IA_PD (26). `prefix` is kept as sent, host bits and all."""

    code: ClassVar[int] = OptionCode.IA_PREFIX
    preferred_lifetime: int = 0
    valid_lifetime: int = 0
    prefix_length: int
    prefix: IPv6Address
    options: tuple[Option, ...] = ()


@dataclass(frozen=True, slots=True)
class OptionRequest:
    """Option request option (6): the option codes the client asks for."""

    code: ClassVar[int] = OptionCode.ORO
    codes: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Preference:
    code: ClassVar[int] = OptionCode.PREFERENCE
    value: int


@dataclass(frozen=True, slots=True)
class ElapsedTime:
    """Elapsed time (8) in hundredths of a second, 0xffff for 'longer'."""

    code: ClassVar[int] = OptionCode.ELAPSED_TIME
    hundredths: int


@dataclass(frozen=True, slots=True)
class RelayMessageOption:
    """Relay message (9): the message a relay forwards, or the reply it is to deliver."""

    code: ClassVar[int] = OptionCode.RELAY_MESSAGE
    message: Message | RelayMessage


@dataclass(frozen=True, slots=True)
class StatusCode:
    """Status code (13): a `Status` number and a UTF-8 message for humans."""

    code: ClassVar[int] = OptionCode.STATUS_CODE
    status: int
    message: str = ""


@dataclass(frozen=True, slots=True)
class RapidCommit:
    """Rapid commit (14): a two-message exchange (RFC 8415 18.3.1); no value."""

    code: ClassVar[int] = OptionCode.RAPID_COMMIT


@dataclass(frozen=True, slots=True)
class InterfaceId:
    """Interface id (18): opaque to the server, echoed in the relay reply."""

    code: ClassVar[int] = OptionCode.INTERFACE_ID
    value: bytes


@dataclass(frozen=True, slots=True)
class DnsServers:
    """Recursive DNS servers (23, RFC 3646)."""

    code: ClassVar[int] = OptionCode.DNS_SERVERS
    addresses: tuple[IPv6Address, ...] = ()


@dataclass(frozen=True, slots=True)
class DomainList:
    """Domain search list (24, RFC 3646): uncompressed RFC 1035 names.

    Names read back without their trailing dot; "" is the root.
    """

    code: ClassVar[int] = OptionCode.DOMAIN_LIST
    names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NtpServerAddress:
    """NTP sub-option 1 (RFC 5908 4.1): a unicast server address."""

    code: ClassVar[int] = 1
    address: IPv6Address


@dataclass(frozen=True, slots=True)
class NtpMulticastAddress:
    """NTP sub-option 2 (RFC 5908 4.2): a multicast group."""

    code: ClassVar[int] = 2
    address: IPv6Address


@dataclass(frozen=True, slots=True)
class NtpServerFqdn:
    """NTP sub-option 3 (RFC 5908 4.3): one server name, without its trailing dot."""

    code: ClassVar[int] = 3
    name: str


NtpSuboption = NtpServerAddress | NtpMulticastAddress | NtpServerFqdn | RawOption


@dataclass(frozen=True, slots=True)
class NtpServer:
    """NTP server (56, RFC 5908): one server, as its sub-options. Several servers
    are several options."""

    code: ClassVar[int] = OptionCode.NTP_SERVER
    suboptions: tuple[NtpSuboption, ...] = ()


@dataclass(frozen=True, slots=True)
class ClientLinkLayerAddress:
    """Client link-layer address (79, RFC 6939), added by the first relay."""

    code: ClassVar[int] = OptionCode.CLIENT_LINKLAYER_ADDR
    link_layer_type: int
    address: bytes

    @property
    def mac(self) -> str | None:
        """The Ethernet address, or None for other hardware."""
        if self.link_layer_type == 1 and len(self.address) == 6:
            return self.address.hex(":")
        return None


Option = (
    ClientId | ServerId | IANA | IATA | IAPD | IAAddress | IAPrefix | OptionRequest | Preference
    | ElapsedTime | RelayMessageOption | StatusCode | RapidCommit | InterfaceId | DnsServers
    | DomainList | NtpServer | ClientLinkLayerAddress | RawOption
)  # fmt: skip

T = TypeVar("T")


def find(options: tuple[Option, ...], kind: type[T]) -> T | None:
    """The first option of class `kind`, or None."""
    for option in options:
        if type(option) is kind:
            return option
    return None


def find_all(options: tuple[Option, ...], kind: type[T]) -> tuple[T, ...]:
    """Every option of class `kind`, in wire order."""
    return tuple(option for option in options if type(option) is kind)
