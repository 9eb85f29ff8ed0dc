"""Replay fuzz/corpus6: DHCPv6 packets captured from real clients (dhclient -6,
dhcpcd -6, dhcp6c, systemd-networkd), the replies of dnsmasq, kea-dhcp6 and a
kvip pool, and dnsmasq as a relay (scripts/capture_corpus6.py), plus the
synthetic seeds of fuzz/seeds6.py.

Every packet decodes, re-encodes byte for byte on both encoders, and reads
the same through the construct declarations; the captures are named for what
they hold and carry only lab addresses and MACs.
"""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Network
from pathlib import Path

import pytest

from kvip.serving import pool_server_duid
from protocol import dhcp6
from protocol.dhcp6._declared import decode_declared
from protocol.dhcp6._declared_build import encode_declared
from scripts.corpus6_packets import KEA_SERVER_DUID, KVIP_POOL, reservations

CORPUS = Path(__file__).resolve().parent.parent / "fuzz" / "corpus6"
SYNTHETIC = CORPUS / "synthetic"
LAB = (IPv6Network("2001:db8::/32"), IPv6Network("fe80::/10"))
CLIENT_TYPES = {
    dhcp6.MessageType.SOLICIT,
    dhcp6.MessageType.REQUEST,
    dhcp6.MessageType.CONFIRM,
    dhcp6.MessageType.RENEW,
    dhcp6.MessageType.REBIND,
    dhcp6.MessageType.RELEASE,
    dhcp6.MessageType.DECLINE,
    dhcp6.MessageType.INFORMATION_REQUEST,
}

SERVER_TYPES = {
    dhcp6.MessageType.ADVERTISE,
    dhcp6.MessageType.REPLY,
    dhcp6.MessageType.RELAY_REPL,
}
CLIENTS = ("dhclient", "dhcpcd", "dhcp6c", "networkd")
SERVERS = ("dnsmasq", "kea", "kvip")


def packet_files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(
        path
        for path in CORPUS.rglob("*")
        if path.is_file() and not path.name.startswith("README") and path.suffix != ".md"
    )


PACKETS = packet_files()
CAPTURED = [path for path in PACKETS if SYNTHETIC not in path.parents]


def decoded(path: Path) -> dhcp6.Message | dhcp6.RelayMessage:
    return dhcp6.decode(path.read_bytes())


@pytest.mark.parametrize("path", PACKETS, ids=[str(p.relative_to(CORPUS)) for p in PACKETS])
def test_corpus6_packet_decodes_and_re_encodes_byte_for_byte(path: Path) -> None:
    data = path.read_bytes()
    message = dhcp6.decode(data)
    assert dhcp6.encode(message) == data
    assert encode_declared(message) == data
    assert decode_declared(data) == message


def test_corpus6_holds_captured_packets() -> None:
    # The replay above proves little on synthetic seeds alone; in CI a skip fails.
    if not CAPTURED:
        pytest.skip("no captured packets under fuzz/corpus6/ (python -m scripts.capture_corpus6)")


def all_values(value: object) -> list[object]:
    """`value` and everything inside it: options, nested options, relayed messages."""
    found = [value]
    if isinstance(value, tuple):
        for item in value:
            found += all_values(item)
    elif hasattr(value, "__dataclass_fields__"):
        for name in value.__dataclass_fields__:
            found += all_values(getattr(value, name))
    return found


@pytest.mark.parametrize("path", CAPTURED, ids=[str(p.relative_to(CORPUS)) for p in CAPTURED])
def test_captured_packet_is_what_its_name_says_and_holds_only_lab_values(path: Path) -> None:
    message = decoded(path)
    source, kind = path.parent.name, path.stem.removeprefix(f"{path.parent.name}-")
    assert kind.rsplit("-", 1)[0] == message.msg_type.name.lower().replace("_", "-")
    if source in CLIENTS:
        assert message.msg_type in CLIENT_TYPES
    if source in SERVERS:
        assert message.msg_type in SERVER_TYPES
    values = all_values(message)
    for value in values:
        if isinstance(value, IPv6Address):
            assert value.is_unspecified or any(value in net for net in LAB), value
        if isinstance(value, dhcp6.DuidLL | dhcp6.DuidLLT):
            assert value.link_layer_address.startswith(b"\x52\x54\x00"), value


def test_corpus6_covers_every_duid_type_relays_and_the_client_exchanges() -> None:
    values = [value for path in CAPTURED for value in all_values(decoded(path))]
    kinds = {type(value) for value in values}
    assert {dhcp6.DuidLLT, dhcp6.DuidLL, dhcp6.DuidEN, dhcp6.DuidUUID} <= kinds
    assert {dhcp6.IANA, dhcp6.IATA, dhcp6.IAPD, dhcp6.IAAddress, dhcp6.StatusCode} <= kinds
    assert {dhcp6.DnsServers, dhcp6.DomainList, dhcp6.NtpServer, dhcp6.RapidCommit} <= kinds
    assert {dhcp6.RelayMessageOption, dhcp6.ClientLinkLayerAddress} <= kinds
    types = {value.msg_type for value in values if isinstance(value, dhcp6.Message)}
    assert {
        dhcp6.MessageType.SOLICIT,
        dhcp6.MessageType.ADVERTISE,
        dhcp6.MessageType.REQUEST,
        dhcp6.MessageType.REPLY,
        dhcp6.MessageType.CONFIRM,
        dhcp6.MessageType.RENEW,
        dhcp6.MessageType.REBIND,
        dhcp6.MessageType.RELEASE,
        dhcp6.MessageType.INFORMATION_REQUEST,
    } <= types


def test_corpus6_has_no_duplicates() -> None:
    payloads = [path.read_bytes() for path in PACKETS]
    assert len(set(payloads)) == len(payloads)


@pytest.mark.parametrize("source", [*CLIENTS, *SERVERS])
def test_corpus6_holds_each_client_s_requests_and_each_server_s_replies(source: str) -> None:
    types = {decoded(path).msg_type for path in CAPTURED if path.parent.name == source}
    if source in SERVERS:
        assert {dhcp6.MessageType.ADVERTISE, dhcp6.MessageType.REPLY} <= types
    else:
        assert {dhcp6.MessageType.SOLICIT, dhcp6.MessageType.REQUEST} <= types


@pytest.mark.parametrize(
    ("server", "duid"), [("kvip", pool_server_duid(KVIP_POOL)), ("kea", KEA_SERVER_DUID)]
)
def test_captured_replies_name_their_server_and_hand_out_only_reservations(
    server: str, duid: dhcp6.Duid
) -> None:
    reserved = {IPv6Address(ip) for ip in reservations().values()}
    replies = [decoded(path) for path in CAPTURED if path.parent.name == server]
    assert replies
    for reply in replies:
        assert isinstance(reply, dhcp6.Message) and reply.server_duid == duid
        for ia in reply.ia_nas:
            for option in ia.options:
                if isinstance(option, dhcp6.IAAddress):
                    assert option.address in reserved
