"""DHCP under abuse: the valid clients' served rate with and without a flood.

In a lab (network namespaces, 198.18.0.0/15), a PoolActor with N reservations
serves perfdhcp (a relay, DORA at --rate from the reserved MACs) for
--seconds alone, then again while another namespace floods it with garbage
and random-MAC DISCOVERs at --flood-factor times the valid packet rate.
Prints both served rates, the flood's accounting and the server's memory and
CPU. Needs root, perfdhcp (kea-admin) and tcpdump. The same rig is asserted
on by tests/test_dhcp_abuse.py.

    .venv/bin/python -m bench.abuse --reservations 1000 --rate 100 --seconds 10
"""

from __future__ import annotations

import argparse
import sys

from protocol import decode
from tests.lab.abuse_rig import (
    SERVER_IP,
    Capture,
    Flood,
    ServerProcess,
    flood_client,
    mac_file,
    perfdhcp_client,
    reserved_mac,
)
from tests.lab.netlab import netlab
from tests.lab.perfdhcp import Report, run_perfdhcp


def line(name: str, result: Report) -> str:
    return (
        f"{name:<12} offered {result.discover.sent / result.seconds:7.1f}/s  "
        f"served {result.served_rate:7.1f}/s  answered {100 * result.answered:5.1f}%  "
        f"(DISCOVER {result.discover.sent}, OFFER {result.discover.received}, "
        f"REQUEST {result.request.sent}, ACK {result.request.received})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reservations", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=100, help="valid DORA exchanges per second")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--flood-factor", type=int, default=10)
    args = parser.parse_args()
    flood_rate = args.flood_factor * args.rate * 2  # two valid packets per exchange
    reserved = {reserved_mac(n) for n in range(args.reservations)}
    with netlab("kvabb") as lab, mac_file(args.reservations) as macs:
        server = ServerProcess(lab, reservations=args.reservations)
        valid, attacker = perfdhcp_client(lab), flood_client(lab)
        capture = Capture(lab)
        try:
            start = server.stats()
            quiet = run_perfdhcp(
                valid, server=SERVER_IP, macs=macs, rate=args.rate, seconds=args.seconds
            )
            before = server.stats()
            flood = Flood(lab, attacker, rate=flood_rate, seconds=args.seconds + 1, seed=1)
            loud = run_perfdhcp(
                valid, server=SERVER_IP, macs=macs, rate=args.rate, seconds=args.seconds
            )
            flooded = flood.result()
            after = server.stats()
        finally:
            replies = capture.replies()
            server.stop()
    strangers = sum(decode(payload).mac not in reserved for payload in replies)
    was, now = before["counters"], after["counters"]
    print(f"kvip PoolActor, {args.reservations} reservations; perfdhcp {args.rate}/s, "
          f"{args.seconds} s per phase; flood {flood_rate} packets/s")  # fmt: skip
    print(line("no flood", quiet))
    print(line("flood", loud))
    ratio = loud.served_rate / quiet.served_rate if quiet.served_rate else 0.0
    print(f"served rate with flood / without: {ratio:.3f}")
    print(
        f"flood: {flooded.garbage} garbage + {flooded.discovers} random-MAC DISCOVERs "
        f"in {flooded.seconds:.1f} s; counted malformed +{now['malformed'] - was['malformed']}, "
        f"unknown MAC +{now['unknown_mac'] - was['unknown_mac']}"
    )
    print(f"replies captured: {len(replies)}, to unreserved MACs: {strangers}")
    print(
        f"server RSS {start['rss_kb'] / 1024:.1f} MB at start, {before['rss_kb'] / 1024:.1f} MB "
        f"before the flood, {after['rss_kb'] / 1024:.1f} MB after; fds {before['fds']} -> "
        f"{after['fds']}; CPU {before['cpu_seconds'] - start['cpu_seconds']:.2f} s without, "
        f"{after['cpu_seconds'] - before['cpu_seconds']:.2f} s with the flood"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
