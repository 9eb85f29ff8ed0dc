"""Write the synthetic seed packets in fuzz/corpus/synthetic/.

Real captures (fuzz/corpus/ elsewhere) are the main corpus; these seeds add
what captures rarely hold: overload, long options, relay information, domain
search with pointers, classless routes. Rerun after changing them:

    .venv/bin/python fuzz/seeds.py
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from protocol import (
    ClasslessRoute,
    Message,
    MessageType,
    Op,
    Options,
    RelayAgentInformation,
    encode,
)

OUT = Path(__file__).resolve().parent / "corpus" / "synthetic"
MAC = bytes.fromhex("525400000001")
SERVER = IPv4Address("198.18.0.1")
CLIENT = IPv4Address("198.18.0.10")
RELAY = RelayAgentInformation(((1, b"vlan10"), (2, b"\x00\x11\x22\x33\x44\x55")))


def seeds() -> dict[str, bytes]:
    def request(kind: MessageType, **options: object) -> Message:
        values: dict[int, object] = {53: kind, 61: b"\x01" + MAC, 55: [1, 3, 6, 15, 119, 121]}
        values |= {int(code.removeprefix("o")): value for code, value in options.items()}
        return Message(op=Op.BOOTREQUEST, xid=0x5EED, chaddr=MAC, options=Options(values))

    reply_options: dict[int, object] = {
        53: MessageType.ACK,
        54: SERVER,
        51: 3600,
        1: IPv4Address("255.255.0.0"),
        3: [SERVER],
        6: [SERVER, IPv4Address("198.18.0.2")],
        15: "lab.example",
        119: ["lab.example", "svc.lab.example", "example"],
        121: [
            ClasslessRoute(IPv4Network("0.0.0.0/0"), SERVER),
            ClasslessRoute(IPv4Network("10.0.0.0/8"), IPv4Address("198.18.0.254")),
        ],
        12: "vm-1",
    }
    ack = Message(
        op=Op.BOOTREPLY, xid=0x5EED, chaddr=MAC, yiaddr=CLIENT, options=Options(reply_options)
    )
    relayed = Message(
        op=Op.BOOTREQUEST,
        xid=1,
        chaddr=MAC,
        hops=1,
        giaddr=SERVER,
        options=Options({53: 1, 82: RELAY}),
    )
    overloaded = Message(
        op=Op.BOOTREPLY,
        xid=2,
        chaddr=MAC,
        yiaddr=CLIENT,
        options=Options({**reply_options, 43: bytes(range(256)), 60: b"x" * 90}),
    )
    return {
        "discover": encode(request(MessageType.DISCOVER, o57=1500, o12="vm-1")),
        "request-selecting": encode(request(MessageType.REQUEST, o50=CLIENT, o54=SERVER)),
        "request-renewing": encode(request(MessageType.REQUEST)),
        "inform": encode(request(MessageType.INFORM)),
        "release": encode(request(MessageType.RELEASE, o54=SERVER)),
        "decline": encode(request(MessageType.DECLINE, o50=CLIENT, o54=SERVER)),
        "rapid-commit": encode(request(MessageType.DISCOVER, o80=b"")),
        "relayed-discover": encode(relayed),
        "ack": encode(ack),
        "ack-overloaded": encode(overloaded, max_size=576),
        "long-option": encode(request(MessageType.DISCOVER, o43=bytes(600))),
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, packet in seeds().items():
        (OUT / name).write_bytes(packet)
    print(f"wrote {len(seeds())} seeds to {OUT}")


if __name__ == "__main__":
    main()
