"""Per-packet cost of the socket-free responder, cold and warm, beside the codec's decode.

    .venv/bin/python -m bench.responder_micro [--clients 1000] [--repeat 5]

The packets are shaped like perfdhcp's (relayed, hops 1, giaddr set, a
parameter request list; REQUESTs in SELECTING state with options 50 and 54).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable
from ipaddress import IPv4Address, IPv4Network

from kvip.serving import PoolOptions, Reservation, Responder
from protocol import Message, MessageType, Op, OptionCode, Options, decode, encode

SERVER = IPv4Address("198.18.0.1")
RELAY = IPv4Address("198.18.255.1")
PRL = (1, 28, 2, 3, 15, 6, 12)
OPTIONS = PoolOptions(
    server_ip=SERVER,
    subnet=IPv4Network("198.18.0.0/16"),
    router=SERVER,
    dns=(IPv4Address("198.18.0.53"),),
    domain_name="lab.example",
    domain_search=("lab.example", "vms.example"),
    lease_time=3600,
    mtu=1450,
)


def clients(count: int) -> list[tuple[bytes, IPv4Address]]:
    first = int(IPv4Address("198.18.1.1"))
    return [(bytes.fromhex(f"525400{i:06x}"), IPv4Address(first + i)) for i in range(count)]


def packets(pairs: Iterable[tuple[bytes, IPv4Address]]) -> list[bytes]:
    out: list[bytes] = []
    for chaddr, ip in pairs:
        extras: tuple[tuple[MessageType, dict[int, object]], ...] = (
            (MessageType.DISCOVER, {}),
            (MessageType.REQUEST, {OptionCode.REQUESTED_IP: ip, OptionCode.SERVER_ID: SERVER}),
        )
        for kind, extra in extras:
            options: dict[int, object] = {
                OptionCode.MESSAGE_TYPE: kind,
                OptionCode.PARAMETER_REQUEST_LIST: PRL,
                **extra,
            }
            message = Message(
                op=Op.BOOTREQUEST,
                xid=0x1000 + len(out),
                chaddr=chaddr,
                hops=1,
                giaddr=RELAY,
                options=Options(options),
            )
            out.append(encode(message))
    return out


def responder(pairs: Iterable[tuple[bytes, IPv4Address]]) -> Responder:
    r = Responder(OPTIONS)
    for i, (chaddr, ip) in enumerate(pairs):
        r.set_reservation(chaddr.hex(":"), Reservation(ip, f"vm{i}"))
    return r


def per_packet(fn: Callable[[bytes], object], data: list[bytes], *, repeat: int) -> float:
    """Best of `repeat` passes, seconds per packet."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for packet in data:
            fn(packet)
        best = min(best, time.perf_counter() - started)
    return best / len(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    pairs = clients(args.clients)
    data = packets(pairs)
    cold = min(per_packet(responder(pairs).handle, data, repeat=1) for _ in range(args.repeat))
    warm_responder = responder(pairs)
    per_packet(warm_responder.handle, data, repeat=1)
    warm = per_packet(warm_responder.handle, data, repeat=args.repeat)
    baseline = per_packet(decode, data, repeat=args.repeat)
    print(f"{len(data)} packets ({args.clients} clients), best of {args.repeat}")
    print(f"protocol.decode (baseline)  {1e6 * baseline:7.1f} us/packet")
    for name, seconds in (("cold", cold), ("warm", warm)):
        print(
            f"Responder.handle, {name}      {1e6 * seconds:7.1f} us/packet"
            f"  {seconds / baseline:5.2f}x decode"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
