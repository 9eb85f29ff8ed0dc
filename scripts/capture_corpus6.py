"""Capture real DHCPv6 packets from real clients and dnsmasq into fuzz/corpus6/.

Usage (root; Debian packages from scripts/install-system-deps.sh)::

    python -m scripts.capture_corpus6 [--out fuzz/corpus6] [--per-kind 2]

Like scripts/capture_corpus.py for DHCPv4: a private lab (tests/lab/netlab.py),
here with IPv6 switched back on inside its namespaces only, addresses from the
documentation prefix 2001:db8::/32 and link-local ones; dnsmasq serves a range
with a reservation per client MAC; tcpdump on the server's bridge records
every exchange each client can be driven through; requests are filed under the
client owning the frame's source MAC, replies under the server. Identical
payloads are kept once. Every packet must decode with protocol.dhcp6, carry
only lab addresses and MACs, and hold neither this machine's host name nor
its kernel release before it is written.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scripts.capture_corpus import package_version
from scripts.corpus6_packets import (
    DUID_EN,
    DUID_UUID,
    classify,
    mac,
    reservations,
    write_corpus,
)
from tests.lab import dhcp6lab as lab6
from tests.lab import netlab
from tests.lab.dhcp6lab import (
    SERVER6,
    SERVER_MAC,
    add_address6,
    dhclient6,
    dhcpcd6,
    enable_ipv6,
    networkd6,
)
from tests.lab.dhcpclients import NETWORKD
from tests.lab.leases import last_event

ROOT = Path(__file__).resolve().parent.parent


def lab6_client(lab: netlab.Lab, tool: int, n: int) -> netlab.Client:
    client = lab.add_client(mac(tool, n))
    enable_ipv6(client.netns, client.ifname)
    return client


# --- the scenarios -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    tool: str
    run: Callable[[netlab.Lab, Path], object]


def dhclient_scenarios() -> list[Scenario]:
    def lease_confirm_release(lab: netlab.Lab, work: Path) -> object:
        client = lab6_client(lab, 0x1B, 1)
        dhclient6(client, work, ["-1"])
        if last_event(work / "dumps", ("BOUND6",)) is None:
            raise netlab.LabError("dhclient -6 got no lease")
        dhclient6(client, work, ["-1"])  # restarted with its lease: CONFIRM
        return dhclient6(client, work, ["-r"])

    def information_request(lab: netlab.Lab, work: Path) -> object:
        return dhclient6(lab6_client(lab, 0x1B, 2), work, ["-1", "-S"])

    def temporary_address(lab: netlab.Lab, work: Path) -> object:
        return dhclient6(lab6_client(lab, 0x1B, 3), work, ["-1", "-T"], timeout=8)

    def prefix_delegation(lab: netlab.Lab, work: Path) -> object:
        return dhclient6(lab6_client(lab, 0x1B, 4), work, ["-1", "-P"], timeout=8)

    def relayed(lab: netlab.Lab, work: Path) -> object:
        client = lab.add_client(mac(0x1B, 7), port="eth2")
        enable_ipv6(client.netns, client.ifname)
        dhclient6(client, work, ["-1"])
        if last_event(work / "dumps", ("BOUND6",)) is None:
            raise netlab.LabError("dhclient -6 got no lease through the relay")
        return dhclient6(client, work, ["-r"])

    return [
        Scenario("lease, CONFIRM on restart, release", "dhclient", lease_confirm_release),
        Scenario("through a relay: lease, release", "dhclient", relayed),
        Scenario("INFORMATION-REQUEST (-S)", "dhclient", information_request),
        Scenario("temporary address, IA_TA (-T)", "dhclient", temporary_address),
        Scenario("prefix delegation, IA_PD (-P)", "dhclient", prefix_delegation),
    ]


def dhcpcd_scenarios() -> list[Scenario]:
    def lease_release(lab: netlab.Lab, work: Path) -> object:
        return dhcpcd6(lab6_client(lab, 0x1C, 1), work)

    def rebind_release(lab: netlab.Lab, work: Path) -> object:
        then = "sleep 1; dhcpcd -6 -n -f {conf} {ifname}; sleep 3"
        return dhcpcd6(lab6_client(lab, 0x1C, 2), work, then=then, timeout=20)

    def renew_release(lab: netlab.Lab, work: Path) -> object:
        then = "sleep 1; dhcpcd -6 -N -f {conf} {ifname}; sleep 3"
        return dhcpcd6(lab6_client(lab, 0x1C, 3), work, then=then, timeout=20)

    def duid(n: int, value: str) -> Callable[[netlab.Lab, Path], object]:
        return lambda lab, work: dhcpcd6(lab6_client(lab, 0x1C, n), work, duid=f"duid {value}")

    return [
        Scenario("lease, release", "dhcpcd", lease_release),
        Scenario("lease, rebind (-n), release", "dhcpcd", rebind_release),
        Scenario("lease, renew (-N), release", "dhcpcd", renew_release),
        Scenario("DUID-LL, lease, release", "dhcpcd", duid(4, "ll")),
        Scenario("DUID-UUID, lease, release", "dhcpcd", duid(5, DUID_UUID)),
        Scenario("DUID-EN, lease, release", "dhcpcd", duid(6, DUID_EN)),
    ]


def networkd_scenarios() -> list[Scenario]:
    def lease_release(lab: netlab.Lab, work: Path) -> object:
        return networkd6(lab6_client(lab, 0x1D, 1), work)

    return [Scenario("DHCPv6 without RA: SOLICIT with rapid commit", "networkd", lease_release)]


ALL_SCENARIOS = {
    "dhclient": dhclient_scenarios,
    "dhcpcd": dhcpcd_scenarios,
    "networkd": networkd_scenarios,
}
EXECUTABLES = {"dhclient": "dhclient", "dhcpcd": "dhcpcd", "networkd": NETWORKD}
PACKAGES = {
    "dhclient": "isc-dhcp-client",
    "dhcpcd": "dhcpcd-base",
    "networkd": "systemd",
    "dnsmasq": "dnsmasq-base",
    "dnsmasq-relay": "dnsmasq-base",
}
ROLES = {
    "dnsmasq": "replies of dnsmasq (a range, dhcp-host reservations by MAC, DNS, search,"
    " NTP), direct and through the relay",
    "dnsmasq-relay": "dnsmasq as a DHCPv6 relay (dhcp-relay): what it forwards, with option 79",
}


# --- capture and file ----------------------------------------------------------------


def capture(scenarios: list[Scenario], *, log: Callable[[str], None]) -> list[bytes]:
    """Run ``scenarios`` against dnsmasq in a fresh lab; return the pcaps of
    both wires (eth1: clients, relay and server; eth2: relayed clients)."""
    with netlab.netlab("kvcap6") as lab, tempfile.TemporaryDirectory() as tmp:
        netlab.run_in(
            lab.server, ["ip", "link", "set", "eth1", "type", "bridge", "mcast_snooping", "0"]
        )
        netlab.run_in(lab.server, ["ip", "link", "set", "eth1", "address", SERVER_MAC])
        enable_ipv6(lab.server, "eth1")
        add_address6(lab.server, "eth1", SERVER6)
        lab6.add_relay(lab, Path(tmp))
        dumps = []
        for port in ("eth1", "eth2"):
            dump = lab.popen(
                lab.server,
                ["tcpdump", "--immediate-mode", "-i", port, "-n", "-U", "-s", "0", "-Z", "root",
                 "-w", f"{tmp}/{port}.pcap", "ip6 and (udp port 546 or udp port 547)"],
                stderr=subprocess.PIPE,
            )  # fmt: skip
            assert dump.stderr is not None
            dump.stderr.readline()  # "listening on ...": the capture is live
            dumps.append(dump)
        with lab6.dnsmasq6(lab, Path(tmp), reservations()):
            for n, scenario in enumerate(scenarios):
                work = Path(tmp) / f"client{n}"
                work.mkdir()
                started = time.monotonic()
                try:
                    scenario.run(lab, work)
                    outcome = "ok"
                except (netlab.LabError, subprocess.SubprocessError, OSError) as exc:
                    outcome = f"FAILED: {exc}"
                took = time.monotonic() - started
                log(f"dnsmasq: {scenario.tool}: {scenario.name}: {outcome} ({took:.1f}s)")
        time.sleep(0.5)
        for dump in dumps:
            dump.send_signal(signal.SIGINT)
            dump.wait(timeout=10)
        if (Path(tmp) / "relay.log").exists():
            log("relay: " + (Path(tmp) / "relay.log").read_text()[-600:])
        return [Path(f"{tmp}/{port}.pcap").read_bytes() for port in ("eth1", "eth2")]


def readme(out: Path, scenarios: list[Scenario]) -> str:
    lines = [
        "# Real DHCPv6 packets",
        "",
        "UDP payloads (DHCPv6 messages, no IP or UDP header) captured from real clients",
        "and dnsmasq over a private lab wire (network namespaces with IPv6 switched on",
        "inside only, 2001:db8::/32 and link-local addresses, 52:54:00 MACs).",
        "Regenerate, as root, with:",
        "",
        "    python -m scripts.capture_corpus6",
        "",
        "Requests are filed under the client owning the frame's source MAC, replies",
        "under the server; one of each distinct payload is kept: every new option",
        "layout plus a couple of others per kind. Files are named",
        "`<source>-<message type>-<n>.bin`; `synthetic/` holds what fuzz/seeds6.py",
        "writes (relays, IA_PD, rapid commit, ...). Captured on Debian 12.",
        "",
        "| directory | package (version) | what |",
        "|---|---|---|",
    ]
    for source in sorted(p.name for p in out.iterdir() if p.is_dir() and p.name != "synthetic"):
        kinds: dict[str, int] = {}
        for path in (out / source).glob("*.bin"):
            kind = path.stem.removeprefix(f"{source}-").rsplit("-", 1)[0]
            kinds[kind] = kinds.get(kind, 0) + 1
        counts = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
        what = ROLES.get(source) or "; ".join(s.name for s in scenarios if s.tool == source)
        package = PACKAGES.get(source, source)
        lines.append(f"| `{source}/` | {package} {package_version(package)} | {what}: {counts} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "fuzz" / "corpus6")
    parser.add_argument(
        "--per-kind", type=int, default=2, help="extra payloads per source and type"
    )
    args = parser.parse_args(argv)
    if not netlab.is_root():
        print("capture_corpus6: needs root (network namespaces, tcpdump)", file=sys.stderr)
        return 2
    if shutil.which("dnsmasq") is None:
        print("capture_corpus6: dnsmasq is not installed", file=sys.stderr)
        return 2

    def log(line: str) -> None:
        print(line, flush=True)

    netlab.cleanup_stale("kvcap6")
    tools = [tool for tool in ALL_SCENARIOS if shutil.which(EXECUTABLES[tool])]
    for missing in set(ALL_SCENARIOS) - set(tools):
        log(f"{missing}: not installed, skipped")
    scenarios = [s for tool in tools for s in ALL_SCENARIOS[tool]()]
    packets = [
        packet
        for pcap in capture(scenarios, log=log)
        for packet in classify(pcap, server="dnsmasq")
    ]
    write_corpus(packets, out=args.out, per_kind=args.per_kind, log=log)
    (args.out / "README.md").write_text(readme(args.out, scenarios))
    return 0


if __name__ == "__main__":
    sys.exit(main())
