"""What scripts/capture_corpus6.py keeps of a capture: the DHCPv6 payloads of
a pcap, filed under the client tool owning the frame's source MAC, the server,
or the relay; checked safe to publish; one of each distinct payload."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import shutil
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from kvip.serving import pool_server_duid
from protocol import dhcp6
from tests.lab import pcapfile
from tests.lab.dhcp6lab import LAB6, LINK_LOCAL

# Each client tool owns MACs 52:54:00:<tool>:00:<n>; the frame's MAC says who sent it.
TOOLS = {0x1B: "dhclient", 0x1C: "dhcpcd", 0x1D: "networkd", 0x1E: "dhcp6c"}
# DUIDs given to dhcpcd by value: a DUID-UUID of a made-up UUID (dhcpcd's own
# would be this machine's DMI UUID) and a DUID-EN like systemd-networkd's.
DUID_UUID = "00:04:" + ":".join(
    f"{b:02x}" for b in bytes.fromhex("6f1b5bd21f2e4b8c9a3e0123456789ab")
)
DUID_EN = "00:02:00:00:ab:11:" + ":".join(f"{b:02x}" for b in b"kvip-lab")


def _duid(value: str) -> dhcp6.Duid | None:
    """The DUID in dhcpcd's colon-hex notation, read the way the codec reads one."""
    data = bytes.fromhex(value.replace(":", ""))
    message = dhcp6.decode(b"\x01\x00\x00\x00\x00\x01" + len(data).to_bytes(2, "big") + data)
    assert isinstance(message, dhcp6.Message)
    return message.client_duid


#: The pool the capture runs kvip with: its server DUID is made from the name.
KVIP_POOL = "corpus6"
#: Kea's server DUID as tests/lab/dhcp6servers.kea6 sets it: DUID-EN under the
#: enterprise number RFC 5612 keeps for documentation.
KEA_SERVER_DUID = dhcp6.DuidEN(32473, b"kvip")
LAB_DUIDS = {_duid(DUID_UUID), _duid(DUID_EN), KEA_SERVER_DUID, pool_server_duid(KVIP_POOL)}
SYSTEMD_ENTERPRISE = 43793


def _systemd_duid(duid: dhcp6.Duid) -> bool:
    """networkd's DUID-EN: derived from the made-up machine id `networkd6` mounts
    over /etc/machine-id (networkd does not start when that mount fails)."""
    return isinstance(duid, dhcp6.DuidEN) and duid.enterprise == SYSTEMD_ENTERPRISE


MESSAGE_NAMES = {int(kind): kind.name.lower().replace("_", "-") for kind in dhcp6.MessageType}
DHCPV6_PORTS = (546, 547)


def mac(tool: int, n: int) -> str:
    return f"52:54:00:{tool:02x}:00:{n:02x}"


def reservations() -> dict[str, str]:
    return {mac(tool, n): f"2001:db8:0:1::{tool:x}:{n:x}" for tool in TOOLS for n in range(1, 9)}


@dataclass(frozen=True, slots=True)
class Packet:
    source: str
    kind: str
    payload: bytes
    message: dhcp6.Message | dhcp6.RelayMessage
    #: For a server's reply: who sent the request it answers (same transaction
    #: id) and its kind, e.g. "dhcp6c renew".
    answers: str | None = None


def udp6_payloads(pcap: bytes) -> Iterator[tuple[str, int, bytes]]:
    """(source MAC, source port, UDP payload) of each IPv6 DHCP datagram (Ethernet,
    no extension headers: what the lab's clients and dnsmasq send)."""
    for linktype, _, frame in pcapfile.read_records(pcap):
        if linktype != pcapfile.LINKTYPE_ETHERNET or frame[12:14] != b"\x86\xdd":
            continue
        ip = frame[14:]
        if len(ip) < 48 or ip[6] != 17:
            continue
        sport, dport, length = (
            int.from_bytes(ip[40:42]),
            int.from_bytes(ip[42:44]),
            int.from_bytes(ip[44:46]),
        )
        if sport in DHCPV6_PORTS or dport in DHCPV6_PORTS:
            yield frame[6:12].hex(":"), sport, ip[48 : 40 + length]


def addresses_in(message: object) -> Iterator[ipaddress.IPv6Address]:
    """Every IPv6 address a decoded message carries, nested ones included."""
    if isinstance(message, ipaddress.IPv6Address):
        yield message
    elif isinstance(message, tuple):
        for item in message:
            yield from addresses_in(item)
    elif hasattr(message, "__dataclass_fields__"):
        for name in message.__dataclass_fields__:
            yield from addresses_in(getattr(message, name))


def unsafe(packet: Packet) -> str | None:
    payload = packet.payload
    for secret in {socket.gethostname(), os.uname().release}:
        if secret.encode() in payload:
            return f"holds {secret!r}"
    for address in addresses_in(packet.message):
        if address not in LAB6 and address not in LINK_LOCAL and not address.is_unspecified:
            return f"holds {address}, outside the lab"
    for option in (packet.message.get(dhcp6.ClientId), packet.message.get(dhcp6.ServerId)):
        if option is None:
            continue
        if isinstance(option.duid, (dhcp6.DuidLL, dhcp6.DuidLLT)):
            if not option.duid.link_layer_address.startswith(b"\x52\x54\x00"):
                return "a DUID with a MAC outside 52:54:00"
        elif option.duid not in LAB_DUIDS and not _systemd_duid(option.duid):
            return f"a DUID the lab did not set: {option.duid}"
    return None


def classify(pcap: bytes, *, server: str) -> list[Packet]:
    packets = []
    asked: dict[bytes, str] = {}  # transaction id -> the client and its request's kind
    for src_mac, sport, payload in udp6_payloads(pcap):
        message = dhcp6.decode(payload)  # a capture the codec cannot read is a finding
        kind = MESSAGE_NAMES[payload[0]]
        if payload[0] == dhcp6.MessageType.RELAY_FORW:
            packets.append(Packet(f"{server}-relay", kind, payload, message))
        elif sport == 547:
            packets.append(Packet(server, kind, payload, message, asked.get(payload[1:4])))
        elif src_mac.startswith("52:54:00:") and int(src_mac[9:11], 16) in TOOLS:
            tool = TOOLS[int(src_mac[9:11], 16)]
            packets.append(Packet(tool, kind, payload, message))
            asked[payload[1:4]] = f"{tool} {kind}"
    return packets


def shape(message: object) -> tuple[object, ...]:
    """Option codes, nested ones included, and DUID types: what a parser sees."""
    if isinstance(message, tuple):
        return tuple(shape(item) for item in message)
    code = getattr(message, "code", None)
    inner = getattr(message, "options", None) or getattr(message, "message", None)
    duid = getattr(message, "duid", None)
    return (code, type(duid).__name__ if duid else None, shape(inner) if inner else ())


def select(packets: list[Packet], *, per_kind: int) -> list[Packet]:
    """Every new shape per source and kind (for a reply: per client and kind of
    request it answers too), then others up to ``per_kind`` more."""
    seen: set[bytes] = set()
    shapes: set[tuple[object, ...]] = set()
    chosen: list[Packet] = []
    for want_new_shape in (True, False):
        for packet in packets:
            digest = hashlib.sha256(packet.payload).digest()
            key = (packet.source, packet.kind, packet.answers, shape(packet.message.options))
            extra = sum(1 for c in chosen if (c.source, c.kind) == key[:2])
            if digest in seen or (want_new_shape and key in shapes):
                continue
            if not want_new_shape and extra >= per_kind:
                continue
            seen.add(digest)
            shapes.add(key)
            chosen.append(packet)
    return chosen


def write_corpus(
    packets: list[Packet], *, out: Path, per_kind: int, log: Callable[[str], None]
) -> None:
    safe = []
    for packet in packets:
        reason = unsafe(packet)
        if reason is None:
            safe.append(packet)
        else:
            log(f"skipped a {packet.source} {packet.kind}: {reason}")
    for source in {p.source for p in packets}:
        shutil.rmtree(out / source, ignore_errors=True)
    counts: dict[tuple[str, str], int] = {}
    for packet in select(safe, per_kind=per_kind):
        key = (packet.source, packet.kind)
        counts[key] = counts.get(key, 0) + 1
        (out / packet.source).mkdir(parents=True, exist_ok=True)
        path = out / packet.source / f"{packet.source}-{packet.kind}-{counts[key]}.bin"
        path.write_bytes(packet.payload)
        log(f"wrote {path.relative_to(out)}")
