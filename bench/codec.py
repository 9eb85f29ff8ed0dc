"""Codec speed against a plain-`struct` baseline, on realistic packets.

Prints microseconds per decode and per encode for DISCOVER, REQUEST, OFFER
and ACK (and the fuzz corpus when present), the baseline's figures from the
same run, and the ratio (codec decode+encode over baseline decode+encode).
The target is a ratio of at most 2. Best of N repeats: on a shared machine
the minimum is the figure least disturbed by other work.

    .venv/bin/python -m bench.codec [--repeat 31] [--number 1000]
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
import timeit
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from protocol import (
    ClasslessRoute,
    DecodeError,
    Message,
    MessageType,
    Op,
    Options,
    decode,
    encode,
)

ROOT = Path(__file__).resolve().parent.parent
MAC = bytes.fromhex("525400123456")
CLIENT_ID = b"\x01" + MAC
REQUESTED = [1, 28, 2, 3, 15, 6, 119, 12, 44, 47, 26, 121, 42]
SERVER = IPv4Address("198.18.0.1")
LEASED = IPv4Address("198.18.0.42")


def realistic_packets() -> dict[str, bytes]:
    """What dhclient sends and what kvip answers, built with the codec."""
    request_options: dict[int, object] = {
        53: MessageType.DISCOVER,
        61: CLIENT_ID,
        57: 1500,
        12: "vm-0",
        55: REQUESTED,
        60: b"udhcp 1.36.1",
    }
    discover = Message(op=Op.BOOTREQUEST, xid=0x1234ABCD, chaddr=MAC, flags=0x8000,
                       options=Options(request_options))  # fmt: skip
    request = Message(
        op=Op.BOOTREQUEST, xid=0x1234ABCD, chaddr=MAC, secs=3,
        options=Options({**request_options, 53: MessageType.REQUEST, 50: LEASED, 54: SERVER}),
    )  # fmt: skip
    reply_options: dict[int, object] = {
        53: MessageType.OFFER,
        54: SERVER,
        51: 3600,
        58: 1800,
        59: 3150,
        1: IPv4Address("255.255.0.0"),
        3: (IPv4Address("198.18.0.1"),),
        6: (IPv4Address("198.18.0.2"), IPv4Address("198.18.0.3")),
        15: "vms.example.com",
        119: ("vms.example.com", "example.com"),
        121: (ClasslessRoute(IPv4Network("0.0.0.0/0"), SERVER),
              ClasslessRoute(IPv4Network("10.10.0.0/16"), IPv4Address("198.18.0.254"))),
        26: 1450,
        61: CLIENT_ID,
    }  # fmt: skip
    offer = Message(op=Op.BOOTREPLY, xid=0x1234ABCD, chaddr=MAC, flags=0x8000, yiaddr=LEASED,
                    siaddr=SERVER, options=Options(reply_options))  # fmt: skip
    ack = Message(
        op=Op.BOOTREPLY, xid=0x1234ABCD, chaddr=MAC, yiaddr=LEASED, siaddr=SERVER,
        options=Options({**reply_options, 53: MessageType.ACK, 12: "vm-0"}),
    )  # fmt: skip
    built = {"DISCOVER": discover, "REQUEST": request, "OFFER": offer, "ACK": ack}
    return {name: encode(message) for name, message in built.items()}


def corpus_packets() -> dict[str, bytes]:
    """Up to 8 decodable packets of the fuzz corpus (real captures), if any."""
    packets: dict[str, bytes] = {}
    corpus = ROOT / "fuzz" / "corpus"
    for path in sorted(corpus.rglob("*")) if corpus.is_dir() else []:
        if not path.is_file() or path.name.startswith("README") or path.suffix == ".md":
            continue
        data = path.read_bytes()
        try:
            decode(data)
        except DecodeError:
            continue
        packets[f"corpus:{path.relative_to(corpus)}"] = data
        if len(packets) == 8:
            break
    return packets


# The baseline: what a hand-written server does with struct and nothing else.
_BASELINE_HEADER = struct.Struct("!BBBBIHHIIII16s64s128s4s")


def baseline_decode(data: bytes) -> tuple[tuple[object, ...], dict[int, bytes]]:
    fields = _BASELINE_HEADER.unpack_from(data)
    options: dict[int, bytes] = {}
    pos, end = 240, len(data)
    while pos < end:
        code = data[pos]
        if code == 0:
            pos += 1
            continue
        if code == 255:
            break
        length = data[pos + 1]
        options[code] = data[pos + 2 : pos + 2 + length]
        pos += 2 + length
    return fields, options


def baseline_encode(fields: tuple[object, ...], options: dict[int, bytes]) -> bytes:
    body = b"".join([bytes((code, len(value))) + value for code, value in options.items()])
    packet = _BASELINE_HEADER.pack(*fields) + body + b"\xff"
    return packet + bytes(300 - len(packet)) if len(packet) < 300 else packet


def best_us(
    funcs: dict[str, Callable[[], object]], *, number: int, repeat: int
) -> dict[str, float]:
    """Best microseconds per call of each function.

    The functions take turns, round after round, so that codec and baseline
    see the same machine; CPU time, not wall time, so that waiting for a core
    shared with other work is not counted.
    """
    best = dict.fromkeys(funcs, float("inf"))
    for _ in range(repeat):
        for name, func in funcs.items():
            seconds = timeit.Timer(func, timer=time.process_time).timeit(number)
            best[name] = min(best[name], seconds / number * 1e6)
    return best


def measure(data: bytes, *, number: int, repeat: int) -> dict[str, float]:
    # encode is timed on one decoded message: what it costs to write a message
    # (the server writes each reply once), with a client's size limit.
    message = decode(data)
    fields, options = baseline_decode(data)
    return best_us(
        {
            "decode": lambda: decode(data),
            "encode": lambda: encode(message, max_size=1500),
            "base dec": lambda: baseline_decode(data),
            "base enc": lambda: baseline_encode(fields, options),
        },
        number=number,
        repeat=repeat,
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=1000, help="calls per timing")
    parser.add_argument("--repeat", type=int, default=31, help="timings; the best is shown")
    args = parser.parse_args(argv)
    print(f"python {sys.version.split()[0]}; best of {args.repeat} x {args.number} calls;"
          " CPU us/call")  # fmt: skip
    print(f"{'packet':<28}{'bytes':>6}{'decode':>9}{'encode':>9}{'base dec':>10}"
          f"{'base enc':>10}{'ratio':>7}")  # fmt: skip
    worst = 0.0
    realistic = realistic_packets()
    for name, data in (realistic | corpus_packets()).items():
        us = measure(data, number=args.number, repeat=args.repeat)
        ratio = (us["decode"] + us["encode"]) / (us["base dec"] + us["base enc"])
        if name in realistic:
            worst = max(worst, ratio)
        print(f"{name[:27]:<28}{len(data):>6}{us['decode']:>9.2f}{us['encode']:>9.2f}"
              f"{us['base dec']:>10.2f}{us['base enc']:>10.2f}{ratio:>7.2f}")  # fmt: skip
    print(f"worst ratio over DISCOVER/REQUEST/OFFER/ACK: {worst:.2f} (target <= 2.00)")
    print("corpus rows are for information: the baseline neither joins nor splits long"
          " options, nor overloads, nor checks option values")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
