"""The DHCPv6 pool of the Responder6 tests: its options, two reserved NICs,
and how its clients' messages are made and answers read."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path

from kvip.serving import (
    PoolOptions6,
    Reply6,
    Reservation6,
    Responder6,
    pool_server_duid,
)
from protocol.dhcp6 import (
    IANA,
    IATA,
    ClientId,
    ClientLinkLayerAddress,
    DnsServers,
    DomainList,
    Duid,
    DuidLL,
    IAAddress,
    InterfaceId,
    Message,
    MessageType,
    NtpServer,
    NtpServerAddress,
    NtpServerFqdn,
    Option,
    RelayMessage,
    RelayMessageOption,
    ServerId,
    StatusCode,
    decode,
    encode,
)

MAC = bytes.fromhex("525400123456")
OTHER_MAC = bytes.fromhex("525400654321")
UNKNOWN_MAC = bytes.fromhex("5254000000ff")
IP = IPv6Address("2001:db8:1::10")
OTHER_IP = IPv6Address("2001:db8:1::11")
SUBNET = IPv6Network("2001:db8:1::/64")
SERVER = pool_server_duid("dual-stack")
ANOTHER_SERVER = pool_server_duid("someone-else")
CLIENT = DuidLL(1, MAC)
SOURCE = ("fe80::5054:ff:fe12:3456", 546, 0, 7)
RELAY_SOURCE = ("2001:db8:2::1", 547, 0, 0)
CORPUS6 = Path(__file__).resolve().parents[2] / "fuzz" / "corpus6"
CAPTURED_SOLICITS = sorted(
    p for p in CORPUS6.glob("*/*solicit*") if p.parent.name != "synthetic"
) + sorted(CORPUS6.glob("*/*relay-forw*"))

OPTIONS = PoolOptions6(
    subnet=SUBNET,
    dns=(IPv6Address("2001:db8:1::53"),),
    domain_search=("example.test", "lab.example.test"),
    ntp=(IPv6Address("2001:db8:1::123"),),
    ntp_names=("ntp.example.test",),
    preferred_lifetime=1000,
    valid_lifetime=2000,
)
CONFIGURATION = (
    DnsServers((IPv6Address("2001:db8:1::53"),)),
    DomainList(("example.test", "lab.example.test")),
    NtpServer((NtpServerAddress(IPv6Address("2001:db8:1::123")),)),
    NtpServer((NtpServerFqdn("ntp.example.test"),)),
)
NAMING_TYPES = (
    MessageType.REQUEST,
    MessageType.RENEW,
    MessageType.RELEASE,
    MessageType.DECLINE,
)


def responder(options: PoolOptions6 = OPTIONS, *, cache: bool = True) -> Responder6:
    r = Responder6(options, SERVER, cache=cache)
    r.set_reservation(MAC.hex(":"), Reservation6(IP, "vm1"))
    r.set_reservation(OTHER_MAC.hex(":"), Reservation6(OTHER_IP, "vm2"))
    return r


def client(
    kind: MessageType,
    *options: Option,
    duid: Duid | None = CLIENT,
    server: Duid | None = None,
    xid: int = 0xABCDEF,
) -> Message:
    """A client's message; REQUEST, RENEW, RELEASE and DECLINE name our server
    unless `server` says otherwise."""
    if server is None and kind in NAMING_TYPES:
        server = SERVER
    head: list[Option] = []
    if duid is not None:
        head.append(ClientId(duid))
    if server is not None:
        head.append(ServerId(server))
    return Message(msg_type=kind, transaction_id=xid, options=(*head, *options))


def relay(
    inner: Message | RelayMessage, *, hops: int = 0, interface: bytes | None = None,
    mac: bytes | None = None,
) -> RelayMessage:  # fmt: skip
    options: list[Option] = []
    if interface is not None:
        options.append(InterfaceId(interface))
    options.append(RelayMessageOption(inner))
    if mac is not None:
        options.append(ClientLinkLayerAddress(1, mac))
    return RelayMessage(
        msg_type=MessageType.RELAY_FORW,
        hop_count=hops,
        link_address=IPv6Address(f"2001:db8:{hops + 2}::1"),
        peer_address=IPv6Address(f"fe80::{hops + 1}"),
        options=tuple(options),
    )


def ask(
    r: Responder6,
    message: Message | RelayMessage,
    *,
    source: tuple[str, int, int, int] = SOURCE,
    source_mac: bytes | None = None,
) -> Reply6 | None:
    return r.handle(encode(message), 1.0, source, source_mac)


def answer(
    r: Responder6,
    message: Message | RelayMessage,
    *,
    source: tuple[str, int, int, int] = SOURCE,
    source_mac: bytes | None = None,
) -> Message:
    """The reply (decoded, relay layers taken off) to `message`."""
    reply = ask(r, message, source=source, source_mac=source_mac)
    assert reply is not None
    decoded = decode(reply.payload)
    inner = decoded.innermost if isinstance(decoded, RelayMessage) else decoded
    assert inner is not None
    assert inner.msg_type == reply.message_type
    assert inner.transaction_id == 0xABCDEF
    assert inner.server_duid == SERVER
    return inner


def addresses(ia: IANA | IATA) -> list[IAAddress]:
    return [o for o in ia.options if isinstance(o, IAAddress)]


def status(options: tuple[Option, ...]) -> int | None:
    found = [o for o in options if isinstance(o, StatusCode)]
    return found[0].status if found else None


def holds_reservation(ia: IANA, ip: IPv6Address = IP) -> bool:
    return (
        ia.t1 == 500
        and ia.t2 == 800
        and addresses(ia)[0] == IAAddress(address=ip, preferred_lifetime=1000, valid_lifetime=2000)
        and status(ia.options) is None
    )


def wrapped(reply: Message, relays: Sequence[RelayMessage]) -> Message | RelayMessage:
    """The reply inside a RELAY-REPL per relay the request came through (RFC
    8415 19.3), as `Message` objects: what `kvip.serving._build6.relayed`
    does on bytes is held to `encode` of this (test_responder6_replay)."""
    inner: Message | RelayMessage = reply
    for relay in reversed(relays):
        interface = relay.interface_id
        carried: tuple[Option, ...] = (RelayMessageOption(inner),)
        if interface is not None:
            carried = (InterfaceId(interface), *carried)
        inner = RelayMessage(
            msg_type=MessageType.RELAY_REPL,
            hop_count=relay.hop_count,
            link_address=relay.link_address,
            peer_address=relay.peer_address,
            options=carried,
        )
    return inner
