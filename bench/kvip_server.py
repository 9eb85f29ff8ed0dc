"""kvip's pool actor as a standalone DHCP server process, for the load benchmark.

    python -m bench.kvip_server --config FILE

FILE is JSON: ``{"ippool": <IPPool object>, "reservations": [[mac, ip, hostname], ...]}``;
a row may carry a fourth field, the NIC's IPv6 address on a dual-stack pool.
The reservations are restored before the socket opens, exactly as the
controller restores them after a restart. Run it inside the namespace that
holds the pool's interface (``ip netns exec NS ...``). It prints ``ready``
once it serves, and on SIGTERM/SIGINT exits after printing its counters as
one JSON line. With ``--profile FILE`` every thread runs under cProfile and the
merged stats are written to FILE (pstats) on exit.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import signal
import sys
import threading
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any

import trio

from kvip.actors import PoolActor, RestoreReservation
from kvip.ipam import Owner
from kvip.serving import parse_ippool


def build_actor(spec: dict[str, Any]) -> PoolActor:
    actor = PoolActor(parse_ippool(spec["ippool"]))
    for mac, ip, hostname, *ip6 in spec["reservations"]:
        owner = Owner(f"bench/{hostname} [{mac}]")
        v6 = IPv6Address(ip6[0]) if ip6 else None
        actor.handle_now(RestoreReservation(owner, mac, IPv4Address(ip), hostname, ip6=v6))
    return actor


async def serve(actor: PoolActor) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(actor.run)
            print("ready", flush=True)
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break


def _counters(counters: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in counters.items() if k != "latency_buckets"}


def profile_threads(profiles: list[cProfile.Profile]) -> None:
    """Run every thread started from now on (the packet threads) under a
    profiler of its own: cProfile sees only the thread that enabled it."""
    run = threading.Thread.run

    def profiled(thread: threading.Thread) -> None:
        profile = cProfile.Profile()
        profiles.append(profile)
        profile.runcall(run, thread)

    threading.Thread.run = profiled  # type: ignore[method-assign,assignment]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument(
        "--profile", type=Path, help="write cProfile stats of every thread here on exit"
    )
    args = parser.parse_args(argv)
    actor = build_actor(json.loads(args.config.read_text()))
    profiles: list[cProfile.Profile] = []
    if args.profile:
        profile_threads(profiles)
        main_profile = cProfile.Profile()
        profiles.append(main_profile)
        main_profile.runcall(trio.run, serve, actor)
        stats = pstats.Stats(profiles[0])
        for profile in profiles[1:]:
            stats.add(profile)
        stats.dump_stats(args.profile)
    else:
        trio.run(serve, actor)
    counters = _counters(actor.responder.counters.as_dict())
    if actor.book.v6 is not None:
        counters["v6"] = _counters(actor.book.v6.responder.counters.as_dict())
    print(json.dumps(counters, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
