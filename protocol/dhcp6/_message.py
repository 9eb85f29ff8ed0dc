"""`Message` and `RelayMessage`: the two DHCPv6 message formats (RFC 8415 8, 9)."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import TypeVar

from ._codes import MessageType
from ._duid import Duid
from ._options import (
    IANA,
    IAPD,
    IATA,
    ClientId,
    ClientLinkLayerAddress,
    ElapsedTime,
    InterfaceId,
    Option,
    OptionRequest,
    RapidCommit,
    RelayMessageOption,
    ServerId,
    find,
    find_all,
)

__all__ = ["Message", "RelayMessage"]

T = TypeVar("T")


class _Lookups:
    __slots__ = ()
    options: tuple[Option, ...]

    def get(self, kind: type[T]) -> T | None:
        """The first option of class `kind` (`ClientId`, `IANA`, ...), or None."""
        return find(self.options, kind)

    def get_all(self, kind: type[T]) -> tuple[T, ...]:
        """Every option of class `kind`, in wire order."""
        return find_all(self.options, kind)


@dataclass(frozen=True, slots=True, kw_only=True)
class Message(_Lookups):
    """A client/server message (RFC 8415 8): type, 24-bit transaction id, options.

    Fields are not checked here: `encode` checks them and raises `EncodeError`.
    """

    msg_type: MessageType
    transaction_id: int
    options: tuple[Option, ...] = ()

    @property
    def client_duid(self) -> Duid | None:
        option = self.get(ClientId)
        return option.duid if option is not None else None

    @property
    def server_duid(self) -> Duid | None:
        option = self.get(ServerId)
        return option.duid if option is not None else None

    @property
    def ia_nas(self) -> tuple[IANA, ...]:
        return self.get_all(IANA)

    @property
    def ia_tas(self) -> tuple[IATA, ...]:
        return self.get_all(IATA)

    @property
    def ia_pds(self) -> tuple[IAPD, ...]:
        return self.get_all(IAPD)

    @property
    def requested_options(self) -> tuple[int, ...]:
        """Option 6's codes, () when absent."""
        option = self.get(OptionRequest)
        return option.codes if option is not None else ()

    @property
    def rapid_commit(self) -> bool:
        return self.get(RapidCommit) is not None

    @property
    def elapsed_time(self) -> int | None:
        """Option 8 in hundredths of a second."""
        option = self.get(ElapsedTime)
        return option.hundredths if option is not None else None


@dataclass(frozen=True, slots=True, kw_only=True)
class RelayMessage(_Lookups):
    """A relay-agent/server message (RFC 8415 9): RELAY-FORW or RELAY-REPL.

    `link_address` is unspecified (::) when the relay could not tell the link;
    `peer_address` is where the relayed message came from (a client or relay).
    """

    msg_type: MessageType
    hop_count: int
    link_address: IPv6Address
    peer_address: IPv6Address
    options: tuple[Option, ...] = ()

    @property
    def relayed(self) -> Message | RelayMessage | None:
        """Option 9's message."""
        option = self.get(RelayMessageOption)
        return option.message if option is not None else None

    @property
    def innermost(self) -> Message | None:
        """The client's (or server's) message under every relay layer."""
        inner = self.relayed
        while isinstance(inner, RelayMessage):
            inner = inner.relayed
        return inner

    @property
    def interface_id(self) -> bytes | None:
        option = self.get(InterfaceId)
        return option.value if option is not None else None

    @property
    def client_link_layer_address(self) -> ClientLinkLayerAddress | None:
        """Option 79 (RFC 6939), set by the relay next to the client."""
        return self.get(ClientLinkLayerAddress)
