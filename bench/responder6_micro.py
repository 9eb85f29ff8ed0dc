"""Per-packet cost of the socket-free DHCPv6 responder, per message type, cold and warm.

    .venv/bin/python -m bench.responder6_micro [--clients 1000] [--repeat 5]

Each of `--clients` reserved clients sends, the way dhclient does (DUID-LLT
of its MAC, Elapsed Time, an ORO for DNS, search list and NTP, one IA_NA):
SOLICIT, SOLICIT with Rapid Commit, REQUEST, RENEW, REBIND, a SOLICIT
through one relay (Interface-Id, option 79) and INFORMATION-REQUEST. Cold:
the first packet of each client into a fresh responder; warm: the same
messages again as a client retransmits or renews them, with another
transaction id and elapsed time. `decode` of the same packets is the
same-run baseline.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from ipaddress import IPv6Address, IPv6Network

from kvip.serving import PoolOptions6, Reservation6, Responder6, pool_server_duid
from protocol.dhcp6 import (
    IANA,
    ClientId,
    ClientLinkLayerAddress,
    DuidLLT,
    ElapsedTime,
    IAAddress,
    InterfaceId,
    Message,
    MessageType,
    Option,
    OptionRequest,
    RapidCommit,
    RelayMessage,
    RelayMessageOption,
    ServerId,
    decode,
    encode,
)

SERVER = pool_server_duid("bench")
OPTIONS = PoolOptions6(
    subnet=IPv6Network("2001:db8:1::/64"),
    dns=(IPv6Address("2001:db8:1::53"),),
    domain_search=("lab.example", "vms.example"),
    ntp=(IPv6Address("2001:db8:1::123"),),
    preferred_lifetime=3600,
    valid_lifetime=7200,
)
SOURCE = ("fe80::5054:ff:fe00:1", 546, 0, 3)
ORO = OptionRequest((23, 24, 56))
FIRST = int(IPv6Address("2001:db8:1::1:0"))
KINDS = (
    "SOLICIT",
    "SOLICIT rapid commit",
    "REQUEST",
    "RENEW",
    "REBIND",
    "SOLICIT relayed",
    "INFORMATION-REQUEST",
)

Packet = tuple[bytes, bytes]  # the message, the frame's source MAC


def mac(i: int) -> bytes:
    return bytes.fromhex(f"525400{i:06x}")


def message(kind: str, i: int, xid: int, elapsed: int) -> bytes:
    """Client `i`'s message of `kind` (one of KINDS)."""
    ip = IPv6Address(FIRST + i)
    head: list[Option] = [ClientId(DuidLLT(1, 700000000, mac(i))), ElapsedTime(elapsed), ORO]
    held = IANA(
        iaid=i, options=(IAAddress(address=ip, preferred_lifetime=3600, valid_lifetime=7200),)
    )
    if kind in ("SOLICIT", "SOLICIT relayed"):
        body: tuple[Option, ...] = (IANA(iaid=i),)
        msg_type = MessageType.SOLICIT
    elif kind == "SOLICIT rapid commit":
        body, msg_type = (RapidCommit(), IANA(iaid=i)), MessageType.SOLICIT
    elif kind == "REBIND":
        body, msg_type = (held,), MessageType.REBIND
    elif kind == "INFORMATION-REQUEST":
        body, msg_type = (), MessageType.INFORMATION_REQUEST
    else:
        body, msg_type = (ServerId(SERVER), held), MessageType[kind]
    client = Message(msg_type=msg_type, transaction_id=xid, options=(*head, *body))
    if kind != "SOLICIT relayed":
        return encode(client)
    return encode(
        RelayMessage(
            msg_type=MessageType.RELAY_FORW,
            hop_count=0,
            link_address=IPv6Address("2001:db8:1::1"),
            peer_address=IPv6Address(f"fe80::{i:x}"),
            options=(
                InterfaceId(b"eth1"),
                RelayMessageOption(client),
                ClientLinkLayerAddress(1, mac(i)),
            ),
        )
    )


def packets(kind: str, count: int, *, again: bool) -> list[Packet]:
    """Every client's `kind`; `again`: as retransmitted (new xid, elapsed time)."""
    return [
        (message(kind, i, (0x1000 + i) ^ (0xA5A5 if again else 0), 150 if again else 0), mac(i))
        for i in range(count)
    ]


def responder(count: int, *, cache: bool = True) -> Responder6:
    r = Responder6(OPTIONS, SERVER, cache=cache)
    for i in range(count):
        r.set_reservation(mac(i).hex(":"), Reservation6(IPv6Address(FIRST + i), f"vm{i}"))
    return r


def per_packet(fn: Callable[[Packet], object], data: list[Packet], *, repeat: int) -> float:
    """Best of `repeat` passes, CPU seconds per packet (this process's CPU
    time: on a shared machine, time waiting for a core is not counted)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        for packet in data:
            fn(packet)
        best = min(best, time.process_time() - started)
    return best / len(data)


def measure(kind: str, count: int, *, repeat: int) -> tuple[float, float, float, float]:
    """Seconds per packet of `kind`: cold, warm, warm without the cache, decode."""
    first, again = packets(kind, count, again=False), packets(kind, count, again=True)

    def cold_pass() -> float:
        r = responder(count)
        return per_packet(lambda p: r.handle(p[0], 0.0, SOURCE, p[1]), first, repeat=1)

    cold = min(cold_pass() for _ in range(repeat))
    warm_responder = responder(count)
    for data, source_mac in first:
        assert warm_responder.handle(data, 0.0, SOURCE, source_mac) is not None, kind
    warm = per_packet(
        lambda p: warm_responder.handle(p[0], 0.0, SOURCE, p[1]), again, repeat=repeat
    )
    plain = responder(count, cache=False)
    uncached = per_packet(lambda p: plain.handle(p[0], 0.0, SOURCE, p[1]), again, repeat=repeat)
    return cold, warm, uncached, per_packet(lambda p: decode(p[0]), first, repeat=repeat)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    count = args.clients
    print(f"{count} clients, best of {args.repeat}, CPU us/packet")
    print(f"{'':22} {'decode':>7} {'cold':>7} {'warm':>7} {'uncached':>9}")
    for kind in KINDS:
        cold, warm, uncached, baseline = measure(kind, count, repeat=args.repeat)
        print(
            f"{kind:22} {1e6 * baseline:7.1f} {1e6 * cold:7.1f} {1e6 * warm:7.1f}"
            f" {1e6 * uncached:9.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
