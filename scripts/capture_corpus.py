"""Capture real DHCP packets from real clients and servers into fuzz/corpus/.

Usage (root; Debian packages from scripts/install-system-deps.sh)::

    python -m scripts.capture_corpus [--out fuzz/corpus] [--per-kind 4]

For each reference server (dnsmasq, kea-dhcp4) it builds a private lab
(tests/lab/netlab.py: namespaces, 198.18.0.0/15 only), runs tcpdump on the server
port, drives every client through the exchanges it can produce (DISCOVER,
REQUEST in SELECTING/RENEWING/INIT-REBOOT, RELEASE, DECLINE, INFORM; the
servers answer with OFFER, ACK and NAK), then cuts the DHCP payloads out of
the capture. Requests are filed under the client that sent them (each client
has its own MACs), replies under the server. Identical payloads are kept once.
Every packet is checked before it is written: 52:54:00 MACs, lab addresses,
no host name of this machine.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.lab import dhcpclients as dc
from tests.lab import dhcpservers, netlab, pcapfile
from tests.lab.dhcpwire import message_kind, options, unsafe

ROOT = Path(__file__).resolve().parent.parent

SERVER_IP = "198.18.0.1"
OPTIONS = dhcpservers.PoolOptions(
    routes=(("198.19.5.0/24", SERVER_IP), ("0.0.0.0/0", SERVER_IP)),
)
# Each client tool owns MACs 52:54:00:<tool>:00:<n>; the MAC says who sent a request.
TOOLS = {
    0x0A: "udhcpc",
    0x0B: "dhclient",
    0x0C: "dhcpcd",
    0x0D: "networkd",
    0x0E: "perfdhcp",
    0x0F: "nmap",
}
# Addresses some other host already holds: reserved to clients that ARP-check
# their lease, so that they DECLINE it (RFC 2131 3.1 step 5).
TAKEN = {0x0A: "198.18.0.98", 0x0C: "198.18.0.99"}


def mac(tool: int, n: int) -> str:
    return f"52:54:00:{tool:02x}:00:{n:02x}"


def reservations() -> dict[str, str]:
    table = {mac(tool, n): f"198.18.{tool}.{n}" for tool in TOOLS for n in range(1, 9)}
    for tool, address in TAKEN.items():
        table[mac(tool, 8)] = address
    return table


# --- driving the clients -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    tool: str
    run: Callable[[netlab.Lab], object]


def _client(lab: netlab.Lab, tool: int, n: int) -> netlab.Client:
    return lab.add_client(mac(tool, n))


def _expect_no_lease(run: Callable[[], object]) -> None:
    """For scenarios whose point is a DECLINE or NAK: no lease is the normal end."""
    with contextlib.suppress(dc.NoLeaseError):
        run()


def udhcpc_scenarios() -> list[Scenario]:
    def lease_renew_release(lab: netlab.Lab) -> object:
        return dc.run_udhcpc(_client(lab, 0x0A, 1), renew=True, release=True)

    def requested_ip_and_hostname(lab: netlab.Lab) -> object:
        extra = ["-x", "hostname:vm-udhcpc", "-V", "kvip-lab", "-F", "vm-udhcpc.lab.example"]
        return dc.run_udhcpc(_client(lab, 0x0A, 2), requested_ip="198.18.10.2", extra_args=extra)

    def decline(lab: netlab.Lab) -> object:
        client = _client(lab, 0x0A, 8)
        _expect_no_lease(lambda: dc.run_udhcpc(client, arp_check=True, timeout=6))
        return None

    return [
        Scenario("lease, renew, release", "udhcpc", lease_renew_release),
        Scenario(
            "requested address, hostname, vendor class, FQDN", "udhcpc", requested_ip_and_hostname
        ),
        Scenario("ARP conflict: decline", "udhcpc", decline),
    ]


def dhclient_scenarios() -> list[Scenario]:
    def lease_release(lab: netlab.Lab) -> object:
        return dc.run_dhclient(_client(lab, 0x0B, 1), configure=True, release=True)

    def init_reboot(lab: netlab.Lab, n: int, address: str) -> object:
        client = _client(lab, 0x0B, n)
        seed = dc.dhclient_lease_file(client, ip=address, server_id=SERVER_IP)
        return dc.run_dhclient(client, lease_file=seed, timeout=15)

    return [
        Scenario("lease, release", "dhclient", lease_release),
        Scenario(
            "INIT-REBOOT with its address: ACK",
            "dhclient",
            lambda lab: init_reboot(lab, 2, "198.18.11.2"),
        ),
        Scenario(
            "INIT-REBOOT with a wrong address: NAK",
            "dhclient",
            lambda lab: init_reboot(lab, 3, "198.18.200.200"),
        ),
    ]


def dhcpcd_scenarios() -> list[Scenario]:
    def lease_release(lab: netlab.Lab) -> object:
        return dc.run_dhcpcd(_client(lab, 0x0C, 1), release=True, hostname="vm-dhcpcd")

    def inform(lab: netlab.Lab) -> object:
        return dc.run_dhcpcd(_client(lab, 0x0C, 2), inform="198.18.12.2/16", timeout=10)

    def decline(lab: netlab.Lab) -> object:
        client = _client(lab, 0x0C, 8)
        _expect_no_lease(lambda: dc.run_dhcpcd(client, arp=True, timeout=10))
        return None

    return [
        Scenario("lease, release", "dhcpcd", lease_release),
        Scenario("INFORM", "dhcpcd", inform),
        Scenario("ARP conflict: decline", "dhcpcd", decline),
    ]


def networkd_scenarios() -> list[Scenario]:
    def lease_release(lab: netlab.Lab) -> object:
        return dc.run_networkd(_client(lab, 0x0D, 1), hostname="vm-networkd")

    return [Scenario("lease, release on stop", "networkd", lease_release)]


def perfdhcp_scenarios() -> list[Scenario]:
    def relayed_dora(lab: netlab.Lab) -> object:
        client = _client(lab, 0x0E, 1)
        # perfdhcp acts as a relay: giaddr is its own address, replies come to it on :67.
        lab.add_address(client.netns, client.ifname, "198.18.14.250/16")
        with tempfile.NamedTemporaryFile("w", suffix=".macs") as macs:
            macs.write("".join(mac(0x0E, n) + "\n" for n in range(1, 5)))
            macs.flush()
            argv = ["perfdhcp", "-4", "-l", client.ifname, "-M", macs.name, "-R", "4"]
            argv += ["-r", "4", "-n", "4", "-p", "3", "-W", "500000", SERVER_IP]
            return netlab.run_in(client.netns, argv, timeout=20, check=False).stdout

    return [Scenario("relayed DORA", "perfdhcp", relayed_dora)]


def nmap_scenarios() -> list[Scenario]:
    def broadcast_discover(lab: netlab.Lab) -> object:
        client = _client(lab, 0x0F, 1)
        lab.add_address(client.netns, client.ifname, "198.18.15.250/16")
        args = f"broadcast-dhcp-discover.mac={client.mac},broadcast-dhcp-discover.timeout=3"
        argv = ["nmap", "-n", "-e", client.ifname, "--script", "broadcast-dhcp-discover"]
        return netlab.run_in(client.netns, [*argv, "--script-args", args], timeout=30).stdout

    def inform(lab: netlab.Lab) -> object:
        client = _client(lab, 0x0F, 2)
        lab.add_address(client.netns, client.ifname, "198.18.15.251/16")
        argv = ["nmap", "-n", "-Pn", "-sU", "-p67", "-e", client.ifname]
        argv += ["--script", "dhcp-discover", "--script-args", "dhcptype=DHCPINFORM", SERVER_IP]
        output = ""
        # nmap runs the script only if its UDP probe found the port open; once in a
        # while the probe goes unanswered, so give it a second try.
        for _ in range(3):
            output = netlab.run_in(client.netns, argv, timeout=60).stdout
            if "DHCP Message Type" in output:
                return output
        raise netlab.LabError(f"nmap sent no INFORM: {output[-1000:]}")

    return [
        Scenario("broadcast DISCOVER", "nmap", broadcast_discover),
        Scenario("INFORM to the server", "nmap", inform),
    ]


ALL_SCENARIOS: dict[str, Callable[[], list[Scenario]]] = {
    "udhcpc": udhcpc_scenarios,
    "dhclient": dhclient_scenarios,
    "dhcpcd": dhcpcd_scenarios,
    "networkd": networkd_scenarios,
    "perfdhcp": perfdhcp_scenarios,
    "nmap": nmap_scenarios,
}
EXECUTABLES = {
    "udhcpc": "udhcpc",
    "dhclient": "dhclient",
    "dhcpcd": "dhcpcd",
    "networkd": dc.NETWORKD,
    "perfdhcp": "perfdhcp",
    "nmap": "nmap",
}
SERVERS = {"dnsmasq": (dhcpservers.dnsmasq, "dnsmasq"), "kea": (dhcpservers.kea, "kea-dhcp4")}


def _installed(exe: str) -> bool:
    return shutil.which(exe) is not None or Path(exe).exists()


def capture_with(server: str, scenarios: list[Scenario], *, log: Callable[[str], None]) -> bytes:
    """Run ``scenarios`` against ``server`` in a fresh lab; return the pcap bytes."""
    serve = SERVERS[server][0]
    with netlab.netlab("kvcap") as lab, tempfile.TemporaryDirectory() as tmp:
        for address in TAKEN.values():
            lab.add_address(lab.server, "eth1", f"{address}/16")
        pcap = Path(tmp) / "capture.pcap"
        dump = lab.popen(
            lab.server,
            [
                "tcpdump",
                "--immediate-mode",
                "-i",
                "eth1",
                "-n",
                "-U",
                "-s",
                "0",
                "-Z",
                "root",
                "-w",
                str(pcap),
                "udp port 67 or udp port 68",
            ],
            stderr=subprocess.PIPE,
        )
        assert dump.stderr is not None
        dump.stderr.readline()  # "listening on eth1 ...": the capture is live
        with serve(lab, reservations(), options=OPTIONS):
            for scenario in scenarios:
                started = time.monotonic()
                try:
                    scenario.run(lab)
                    outcome = "ok"
                except (netlab.LabError, subprocess.SubprocessError) as exc:
                    outcome = f"FAILED: {exc}"
                took = time.monotonic() - started
                log(f"{server}: {scenario.tool}: {scenario.name}: {outcome} ({took:.1f}s)")
        time.sleep(0.5)  # late replies (a RELEASE has none, an INFORM's ACK may trail)
        dump.send_signal(signal.SIGINT)
        dump.wait(timeout=10)
        return pcap.read_bytes()


@dataclass(frozen=True, slots=True)
class Packet:
    source: str
    kind: str
    payload: bytes


def classify(datagrams: list[pcapfile.UdpDatagram], *, server: str) -> list[Packet]:
    """Requests belong to the tool owning their chaddr, replies to the server."""
    packets = []
    for datagram in datagrams:
        kind = message_kind(datagram.payload)
        if kind is None:
            continue
        if datagram.payload[0] == 2:
            packets.append(Packet(server, kind, datagram.payload))
        elif datagram.payload[28:31] == b"\x52\x54\x00" and datagram.payload[31] in TOOLS:
            packets.append(Packet(TOOLS[datagram.payload[31]], kind, datagram.payload))
    return packets


def shape(payload: bytes) -> tuple[object, ...]:
    """What makes two packets of one kind differ for a parser: which options, in
    which order, which header addresses are set, the broadcast flag; and the
    chaddr, since each scenario has its own MAC (a NAK-provoking INIT-REBOOT
    looks like a good one, yet both belong in the corpus)."""
    codes = tuple(code for code, _ in options(payload))
    addresses = tuple(payload[start : start + 4] != bytes(4) for start in (12, 16, 20, 24))
    return codes, addresses, payload[10] & 0x80, len(payload) >= 300, payload[28:34]


def select(packets: list[Packet], *, per_kind: int) -> list[Packet]:
    """Distinct payloads: every new shape, then others up to ``per_kind`` per
    source and kind, in capture order."""
    seen: set[bytes] = set()
    shapes: set[tuple[object, ...]] = set()
    chosen: list[Packet] = []
    for want_new_shape in (True, False):
        for packet in packets:
            digest = hashlib.sha256(packet.payload).digest()
            key = (packet.source, packet.kind, *shape(packet.payload))
            count = sum(1 for c in chosen if (c.source, c.kind) == key[:2])
            if digest in seen or (want_new_shape and key in shapes):
                continue
            if not want_new_shape and count >= per_kind:
                continue
            seen.add(digest)
            shapes.add(key)
            chosen.append(packet)
    return chosen


def write_corpus(
    packets: list[Packet], *, out: Path, per_kind: int, log: Callable[[str], None]
) -> dict[str, list[str]]:
    """Write ``<source>/<source>-<kind>-<n>.bin`` for the packets ``select`` keeps."""
    hostname = socket.gethostname().encode()
    safe = []
    for packet in packets:
        reason = unsafe(packet.payload, hostname=hostname)
        if reason is None:
            safe.append(packet)
        else:
            log(f"skipped a {packet.source} {packet.kind}: {reason}")
    for source in {p.source for p in packets}:
        shutil.rmtree(out / source, ignore_errors=True)
    written: dict[str, list[str]] = {}
    counts: dict[tuple[str, str], int] = {}
    for packet in select(safe, per_kind=per_kind):
        key = (packet.source, packet.kind)
        counts[key] = counts.get(key, 0) + 1
        name = f"{packet.source}-{packet.kind}-{counts[key]}.bin"
        (out / packet.source).mkdir(parents=True, exist_ok=True)
        (out / packet.source / name).write_bytes(packet.payload)
        written.setdefault(packet.source, []).append(name)
    return written


PACKAGES = {
    "udhcpc": "udhcpc",
    "dhclient": "isc-dhcp-client",
    "dhcpcd": "dhcpcd-base",
    "networkd": "systemd",
    "perfdhcp": "kea-admin",
    "nmap": "nmap",
    "dnsmasq": "dnsmasq-base",
    "kea": "kea-dhcp4-server",
}
ROLES = {
    "dnsmasq": "replies of dnsmasq (static dhcp-host reservations, authoritative)",
    "kea": "replies of kea-dhcp4 (hw-address reservations, memfile, authoritative)",
}


def package_version(package: str) -> str:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", package],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or "not installed"


def readme(out: Path, scenarios: list[Scenario]) -> str:
    """The corpus README: how it was made and one line per directory."""
    lines = [
        "# Real DHCP packets",
        "",
        "UDP payloads (BOOTP/DHCP messages, no IP or UDP header) captured from real",
        "clients and servers talking over a private lab wire (network namespaces,",
        "198.18.0.0/15 addresses, 52:54:00 MACs). Regenerate, as root, with:",
        "",
        "    python -m scripts.capture_corpus",
        "",
        "It runs each client scenario against dnsmasq and then kea-dhcp4, captures",
        "with tcpdump on the server's bridge, files requests under the client owning",
        "the chaddr and replies under the server, and keeps one of each distinct",
        "payload: every new option layout plus a couple of others per kind.",
        "Files are named `<source>-<message type>-<n>.bin`. Captured on Debian 12.",
        "",
        "| directory | package (version) | what |",
        "|---|---|---|",
    ]
    for source in sorted(p.name for p in out.iterdir() if p.is_dir()):
        kinds: dict[str, int] = {}
        for path in (out / source).glob("*.bin"):
            kind = path.stem.split("-")[-2]
            kinds[kind] = kinds.get(kind, 0) + 1
        counts = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
        what = ROLES.get(source) or "; ".join(s.name for s in scenarios if s.tool == source)
        package = PACKAGES.get(source, source)
        lines.append(f"| `{source}/` | {package} {package_version(package)} | {what}: {counts} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "fuzz" / "corpus")
    parser.add_argument(
        "--per-kind",
        type=int,
        default=2,
        help="extra payloads per source and type",
    )
    args = parser.parse_args(argv)
    if not netlab.is_root():
        print("capture_corpus: needs root (network namespaces, tcpdump)", file=sys.stderr)
        return 2

    def log(line: str) -> None:
        print(line, flush=True)

    netlab.cleanup_stale("kvcap")
    tools = [t for t in ALL_SCENARIOS if _installed(EXECUTABLES[t])]
    for missing in set(ALL_SCENARIOS) - set(tools):
        log(f"{missing}: not installed, skipped")
    scenarios = [s for t in tools for s in ALL_SCENARIOS[t]()]
    packets: list[Packet] = []
    for server, (_, exe) in SERVERS.items():
        if not _installed(exe):
            log(f"{server}: not installed, skipped")
            continue
        capture = capture_with(server, scenarios, log=log)
        packets += classify(list(pcapfile.udp_datagrams(capture)), server=server)
    written = write_corpus(packets, out=args.out, per_kind=args.per_kind, log=log)
    for source, names in sorted(written.items()):
        log(f"{source}: {' '.join(sorted(names))}")
    (args.out / "README.md").write_text(readme(args.out, scenarios))
    return 0


if __name__ == "__main__":
    sys.exit(main())
