"""DHCP under abuse, in a lab: a pool server, valid load (perfdhcp) and a flood.

Three processes, each in its own namespace of one `netlab`:
- the server: this file's `serve` command, a PoolActor with N reservations on
  eth1 (198.18.0.1/16); it answers `stats` on stdin with a JSON line (counters,
  RSS, open fds) and exits at end of input;
- the valid clients: perfdhcp as a relay from 198.18.1.2, MACs from the
  reservations (`tests.lab.perfdhcp.run_perfdhcp`);
- the attacker: this file's `flood` command from 198.18.2.2, bounded in count
  and time: DISCOVERs from random unreserved MACs (a starvation attempt) and
  packets that cannot decode, in equal parts, paced to a rate.

tests/test_dhcp_abuse.py asserts on it; bench/abuse.py prints the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import IO, Any

from tests.lab.netlab import Client, Lab

REPO = Path(__file__).resolve().parents[2]

SERVER_IP = "198.18.0.1"
PERFDHCP_ADDRESS = "198.18.1.2/16"
FLOOD_ADDRESS = "198.18.2.2/16"
FIRST_IP = int(IPv4Address("198.18.4.1"))
RESERVED_PREFIX = "52:54:00:ab"


def reserved_mac(n: int) -> str:
    return f"{RESERVED_PREFIX}:{n >> 8 & 0xFF:02x}:{n & 0xFF:02x}"


def reserved_ip(n: int) -> IPv4Address:
    return IPv4Address(FIRST_IP + n)


# --- the server process ------------------------------------------------------------


def _proc_status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


async def _serve(reservations: int, interface: str) -> None:
    import trio

    from kvip.actors import PoolActor, RestoreReservation
    from kvip.ipam import Owner, PoolSpec
    from kvip.serving import PoolConfig, PoolOptions

    subnet = IPv4Network("198.18.0.0/16")
    server = IPv4Address(SERVER_IP)
    config = PoolConfig(
        name="abuse",
        network="bench/net1",
        interface=interface,
        spec=PoolSpec(
            subnet=subnet,
            start=reserved_ip(0),
            end=reserved_ip(max(reservations, 1) + 100),
            server_ip=server,
        ),
        options=PoolOptions(server_ip=server, subnet=subnet, router=server, lease_time=600),
    )
    actor = PoolActor(config)
    for n in range(reservations):
        mac = reserved_mac(n)
        owner = Owner(f"bench/vm{n} [{mac}]")
        actor.handle_now(RestoreReservation(owner, mac, reserved_ip(n), f"vm{n}"))
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        print("ready", flush=True)
        commands = trio.lowlevel.FdStream(os.dup(0))
        pending = b""
        while chunk := await commands.receive_some():
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                if line.strip() == b"stats":
                    counters = actor.responder.counters.as_dict()
                    for key in ("latency_buckets", "latency_sum", "latency_count"):
                        counters.pop(key, None)
                    stats = {
                        "rss_kb": _proc_status("VmRSS"),
                        "threads": _proc_status("Threads"),
                        "fds": len(os.listdir("/proc/self/fd")),
                        "cpu_seconds": sum(os.times()[:2]),
                        "counters": counters,
                    }
                    print(json.dumps(stats), flush=True)
        nursery.cancel_scope.cancel()


class ServerProcess:
    """The `serve` command in the lab's server namespace, stopped by the lab."""

    def __init__(self, lab: Lab, *, reservations: int, interface: str = "eth1") -> None:
        argv = [sys.executable, "-m", "tests.lab.abuse_rig", "serve", str(reservations), interface]
        self.proc = lab.popen(
            lab.server, argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, cwd=REPO
        )
        self._out: IO[bytes] = self._pipe(self.proc.stdout)
        self._in: IO[bytes] = self._pipe(self.proc.stdin)
        line = self._out.readline()
        if line.strip() != b"ready":
            raise RuntimeError(f"the pool server did not start: {line!r}")

    @staticmethod
    def _pipe(pipe: IO[bytes] | None) -> IO[bytes]:
        assert pipe is not None
        return pipe

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stats(self) -> dict[str, Any]:
        self._in.write(b"stats\n")
        self._in.flush()
        stats: dict[str, Any] = json.loads(self._out.readline())
        return stats

    def stop(self) -> None:
        with contextlib.suppress(BrokenPipeError):
            self._in.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


# --- the flood ------------------------------------------------------------------------


def garbage_packets(count: int, *, rng: random.Random) -> list[bytes]:
    """Packets that cannot decode, of the kinds a broken or hostile sender makes."""
    from protocol import DecodeError, decode

    base = discover_from(bytes([0x52, 0x54, 0x00, 0xAB, 0xFF, 0xFF]), xid=1)
    makers = [
        lambda: rng.randbytes(rng.randrange(0, 600)),  # noise
        lambda: base[: rng.randrange(0, 240)],  # cut inside the header
        lambda: base[:236] + b"\x63\x82\x53\x00" + base[240:],  # wrong magic cookie
        lambda: base[:2] + bytes((rng.randrange(17, 256),)) + base[3:],  # hlen > 16
        lambda: base[:240] + bytes((53, 1, 1, 61, 200)) + rng.randbytes(20),  # option overruns
        lambda: base[:240] + bytes((53, 3, 1, 1, 1, 255)),  # message type of length 3
    ]
    packets: list[bytes] = []
    while len(packets) < count:
        packet = rng.choice(makers)()
        try:
            decode(packet)
        except DecodeError:
            packets.append(packet)
    return packets


def discover_from(mac: bytes, *, xid: int) -> bytes:
    from protocol import Message, MessageType, Op, Options, encode

    options = Options({53: MessageType.DISCOVER, 55: (1, 3, 6, 15, 51)})
    return encode(Message(op=Op.BOOTREQUEST, xid=xid, chaddr=mac, flags=0x8000, options=options))


def starvation_packets(count: int, *, rng: random.Random) -> list[bytes]:
    """DISCOVERs from random locally administered MACs: none is reserved."""
    packets = []
    for _ in range(count):
        mac = bytes((0x02 | (rng.randrange(256) & 0xFC),)) + rng.randbytes(5)
        packets.append(discover_from(mac, xid=rng.getrandbits(32)))
    return packets


@dataclass(frozen=True, slots=True)
class FloodReport:
    garbage: int
    discovers: int
    seconds: float


def _flood(target: str, rate: int, seconds: float, seed: int) -> FloodReport:
    rng = random.Random(seed)
    total = int(rate * seconds)
    garbage = garbage_packets(total // 2, rng=rng)
    starving = starvation_packets(total - len(garbage), rng=rng)
    packets = [p for pair in zip(garbage, starving, strict=False) for p in pair]
    packets += starving[len(garbage) :]
    tick = 0.01
    per_tick = max(1, round(rate * tick))
    sent = {"garbage": 0, "discovers": 0}
    garbage_ids = {id(p) for p in garbage}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        started = time.monotonic()
        deadline = started + seconds * 2  # bounded even when the machine is slow
        for index in range(0, len(packets), per_tick):
            for packet in packets[index : index + per_tick]:
                with contextlib.suppress(BlockingIOError, ConnectionRefusedError):
                    sock.sendto(packet, (target, 67))
                    sent["garbage" if id(packet) in garbage_ids else "discovers"] += 1
            next_tick = started + (index // per_tick + 1) * tick
            now = time.monotonic()
            if now > deadline:
                break
            if next_tick > now:
                time.sleep(next_tick - now)
        return FloodReport(sent["garbage"], sent["discovers"], time.monotonic() - started)


class Flood:
    """The `flood` command in `client`'s namespace; `result()` waits for it."""

    def __init__(self, lab: Lab, client: Client, *, rate: int, seconds: float, seed: int) -> None:
        argv = [sys.executable, "-m", "tests.lab.abuse_rig", "flood"]
        argv += [SERVER_IP, str(rate), str(seconds), str(seed)]
        self.proc = lab.popen(client.netns, argv, stdout=subprocess.PIPE, cwd=REPO)
        self.seconds = seconds

    def result(self) -> FloodReport:
        out, _ = self.proc.communicate(timeout=self.seconds * 3 + 30)
        return FloodReport(**json.loads(out.decode().strip().splitlines()[-1]))


# --- perfdhcp ----------------------------------------------------------------------------


def perfdhcp_client(lab: Lab) -> Client:
    client = lab.add_client("52:54:00:ab:ff:01")
    lab.add_address(client.netns, client.ifname, PERFDHCP_ADDRESS)
    return client


def flood_client(lab: Lab) -> Client:
    client = lab.add_client("52:54:00:ab:ff:02")
    lab.add_address(client.netns, client.ifname, FLOOD_ADDRESS)
    return client


@contextlib.contextmanager
def mac_file(reservations: int) -> Iterator[Path]:
    with tempfile.NamedTemporaryFile("w", prefix="kvip-abuse-", suffix=".macs") as macs:
        macs.write("".join(reserved_mac(n) + "\n" for n in range(reservations)))
        macs.flush()
        yield Path(macs.name)


# --- seeing what the server sent -----------------------------------------------------------


class Capture:
    """tcpdump of everything the server sends from port 67 on eth1."""

    def __init__(self, lab: Lab, *, interface: str = "eth1") -> None:
        self.path = Path(tempfile.mkstemp(prefix="kvip-abuse-", suffix=".pcap")[1])
        argv = ["tcpdump", "-i", interface, "-n", "-U", "-w", str(self.path)]
        argv += ["udp", "and", "src", "port", "67", "and", "src", "host", SERVER_IP]
        self.proc = lab.popen(lab.server, argv, stderr=subprocess.PIPE)
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()  # "listening on eth1 ..." once it captures
        if b"listening" not in line:
            raise RuntimeError(f"tcpdump did not start: {line!r}")

    def replies(self) -> list[bytes]:
        from tests.lab.pcapfile import read_udp

        self.proc.terminate()
        self.proc.wait(10)
        try:
            return [datagram.payload for datagram in read_udp(self.path)]
        finally:
            self.path.unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve")
    serve.add_argument("reservations", type=int)
    serve.add_argument("interface")
    flood = commands.add_parser("flood")
    flood.add_argument("target")
    flood.add_argument("rate", type=int)
    flood.add_argument("seconds", type=float)
    flood.add_argument("seed", type=int)
    args = parser.parse_args(argv)
    if args.command == "serve":
        import trio

        trio.run(_serve, args.reservations, args.interface)
    else:
        report = _flood(args.target, args.rate, args.seconds, args.seed)
        print(json.dumps({"garbage": report.garbage, "discovers": report.discovers,
                          "seconds": report.seconds}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
