"""Capture real DHCPv6 packets from real clients and servers into fuzz/corpus6/.

Usage (root; Debian packages from scripts/install-system-deps.sh)::

    python -m scripts.capture_corpus6 [--out fuzz/corpus6] [--per-kind 2]

Like scripts/capture_corpus.py for DHCPv4: a private lab (tests/lab/netlab.py),
here with IPv6 switched back on inside its namespaces only, addresses from the
documentation prefix 2001:db8::/32 and link-local ones. Each server in turn
(dnsmasq with a range and a relay, kea-dhcp6, a dual-stack kvip pool) gets a
fresh lab and serves a reservation per client MAC; tcpdump on the server's
bridge records every exchange each client (dhclient -6, dhcpcd -6, dhcp6c,
systemd-networkd) can be driven through; requests are filed under the client
owning the frame's source MAC, replies under the server. Identical payloads
are kept once. Every packet must decode with protocol.dhcp6, carry only lab
addresses and MACs, and hold neither this machine's host name nor its kernel
release before it is written.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.capture_corpus import package_version
from scripts.corpus6_packets import (
    DUID_EN,
    DUID_UUID,
    KVIP_POOL,
    classify,
    mac,
    reservations,
    write_corpus,
)
from tests.lab import dhcp6lab as lab6
from tests.lab import netlab
from tests.lab.dhcp6clients import Dhcp6c, Networkd6
from tests.lab.dhcp6lab import (
    SERVER6,
    SERVER_MAC,
    add_address6,
    dhclient6,
    dhcpcd6,
    enable_ipv6,
    networkd6,
)
from tests.lab.dhcp6servers import Pool6, kea6, radvd
from tests.lab.dhcpclients import NETWORKD
from tests.lab.leases import last_event
from tests.lab.objects import ippool
from tests.lab.poolrig import PoolSetup, Reserved, serve_pools

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


def dhclient_lease(n: int) -> Callable[[netlab.Lab, Path], object]:
    """dhclient -6 -1 until bound, restarted with its lease (CONFIRM), then -r."""

    def run(lab: netlab.Lab, work: Path) -> object:
        client = lab6_client(lab, 0x1B, n)
        dhclient6(client, work, ["-1"])
        if last_event(work / "dumps", ("BOUND6",)) is None:
            raise netlab.LabError("dhclient -6 got no lease")
        dhclient6(client, work, ["-1"])
        return dhclient6(client, work, ["-r"])

    return run


def dhclient_flags(n: int, flags: list[str]) -> Callable[[netlab.Lab, Path], object]:
    return lambda lab, work: dhclient6(lab6_client(lab, 0x1B, n), work, ["-1", *flags], timeout=8)


def dhclient_relayed(lab: netlab.Lab, work: Path) -> object:
    client = lab.add_client(mac(0x1B, 7), port="eth2")
    enable_ipv6(client.netns, client.ifname)
    dhclient6(client, work, ["-1"])
    if last_event(work / "dumps", ("BOUND6",)) is None:
        raise netlab.LabError("dhclient -6 got no lease through the relay")
    return dhclient6(client, work, ["-r"])


def dhcpcd_then(n: int, then: str = "") -> Callable[[netlab.Lab, Path], object]:
    """dhcpcd -6 until bound, ``then`` (a command to the daemon), then release."""
    command = f"sleep 1; dhcpcd -6 {then} -f {{conf}} {{ifname}}; sleep 3" if then else ""
    return lambda lab, work: dhcpcd6(lab6_client(lab, 0x1C, n), work, then=command, timeout=20)


def dhcpcd_duid(n: int, value: str) -> Callable[[netlab.Lab, Path], object]:
    return lambda lab, work: dhcpcd6(lab6_client(lab, 0x1C, n), work, duid=f"duid {value}")


def dhcp6c_lease(n: int, *, renew: bool = False) -> Callable[[netlab.Lab, Path], object]:
    """dhcp6c until it holds its address, then (``renew``) until it renewed it
    on the server's T1, which it raises to 18 s at least, then SIGTERM: it
    releases."""

    def run(lab: netlab.Lab, work: Path) -> object:
        with Dhcp6c(lab6_client(lab, 0x1E, n), work / "dhcp6c") as runner:
            lease = runner.lease(timeout=20)
            deadline, bound = time.monotonic() + DHCP6C_T1 + 6, runner.replies()
            while renew and runner.replies() == bound:
                if time.monotonic() > deadline:
                    raise netlab.LabError("dhcp6c did not renew")
                time.sleep(0.2)
            runner.release()
        return lease

    return run


DHCP6C_T1 = 18  # dhcp6c's least T1


def networkd_without_ra(lab: netlab.Lab, work: Path) -> object:
    return networkd6(lab6_client(lab, 0x1D, 1), work)


def networkd_on_ra(n: int, duid_type: str | None) -> Callable[[netlab.Lab, Path], object]:
    """networkd starts DHCPv6 on radvd's RA (M flag): SOLICIT, ADVERTISE,
    REQUEST, REPLY; stopped once bound (networkd 252 never releases)."""

    def run(lab: netlab.Lab, work: Path) -> object:
        client = lab6_client(lab, 0x1D, n)
        with radvd(lab), Networkd6(client, work / "networkd", duid_type=duid_type) as runner:
            lease = runner.lease(timeout=25)
            runner.stop()
        return lease

    return run


def dnsmasq_scenarios() -> list[Scenario]:
    return [
        Scenario("lease, CONFIRM on restart, release", "dhclient", dhclient_lease(1)),
        Scenario("through a relay: lease, release", "dhclient", dhclient_relayed),
        Scenario("INFORMATION-REQUEST (-S)", "dhclient", dhclient_flags(2, ["-S"])),
        Scenario("temporary address, IA_TA (-T)", "dhclient", dhclient_flags(3, ["-T"])),
        Scenario("prefix delegation, IA_PD (-P)", "dhclient", dhclient_flags(4, ["-P"])),
        Scenario("lease, release", "dhcpcd", dhcpcd_then(1)),
        Scenario("lease, rebind (-n), release", "dhcpcd", dhcpcd_then(2, "-n")),
        Scenario("lease, renew (-N), release", "dhcpcd", dhcpcd_then(3, "-N")),
        Scenario("DUID-LL, lease, release", "dhcpcd", dhcpcd_duid(4, "ll")),
        Scenario("DUID-UUID, lease, release", "dhcpcd", dhcpcd_duid(5, DUID_UUID)),
        Scenario("DUID-EN, lease, release", "dhcpcd", dhcpcd_duid(6, DUID_EN)),
        Scenario("without RA: SOLICIT with rapid commit", "networkd", networkd_without_ra),
    ]


def kea_scenarios() -> list[Scenario]:
    return [
        Scenario("lease, CONFIRM on restart, release", "dhclient", dhclient_lease(1)),
        Scenario("lease, renew (-N), release", "dhcpcd", dhcpcd_then(3, "-N")),
        Scenario("lease, renew on T1, release", "dhcp6c", dhcp6c_lease(1, renew=True)),
        # DUID-LL: Kea finds a reservation by the MAC in it (networkd's default
        # DUID-EN holds none, and its link-local address is not EUI-64 based).
        Scenario(
            "started by radvd's RA, DUID-LL: lease", "networkd", networkd_on_ra(2, "link-layer")
        ),
    ]


def kvip_scenarios() -> list[Scenario]:
    return [
        Scenario("lease, CONFIRM on restart, release", "dhclient", dhclient_lease(1)),
        Scenario("INFORMATION-REQUEST (-S)", "dhclient", dhclient_flags(2, ["-S"])),
        Scenario("lease, rebind (-n), release", "dhcpcd", dhcpcd_then(2, "-n")),
        Scenario("lease, renew (-N), release", "dhcpcd", dhcpcd_then(3, "-N")),
        Scenario("lease, release", "dhcp6c", dhcp6c_lease(1)),
        # kvip knows a DUID-EN client by the frame's source MAC.
        Scenario("started by radvd's RA: lease", "networkd", networkd_on_ra(3, None)),
    ]


# --- the servers ---------------------------------------------------------------------


def kvip_pool() -> PoolSetup:
    """A dual-stack pool on the server's eth1, each lab MAC a VM NIC with both
    its reservations."""
    reserved = reservations()
    # kvip serves a NIC only the IPv6 reservation its range holds.
    span = sorted(ipaddress.IPv6Address(ip) for ip in reserved.values())
    ipv6config = {
        "subnet": str(SERVER6.network),
        "pool": {"start": str(span[0]), "end": str(span[-1])},
        "dns": [str(SERVER6.ip)],
        "domainsearch": ["lab.example", "svc.lab.example"],
        "preferredlifetime": 1800,
        "validlifetime": 3600,
        "routeradvertisement": False,
    }
    nics = tuple(
        Reserved(hw, f"198.18.0.{10 + n}", f"guest-{n}", ip6=ip)
        for n, (hw, ip) in enumerate(reserved.items())
    )
    return PoolSetup(ippool(KVIP_POOL, options="full", ipv6config=ipv6config), nics)


#: What Kea hands out besides the address (a search list free of short words
#: such as a host name the safety check looks for).
#: T1 short enough for dhcp6c to renew on its least T1.
KEA_POOL = Pool6(
    dns=("2001:db8:0:1::53",),
    search=("lab.example", "svc.lab.example"),
    renew=DHCP6C_T1 - 8,
    rebind=DHCP6C_T1 + 20,
)
Serve = Callable[[netlab.Lab, Path], contextlib.AbstractContextManager[Any]]


@dataclass(frozen=True, slots=True)
class ServerRun:
    """One server in a fresh lab, and what its clients are driven through."""

    server: str  # the directory its replies go to
    program: str | None  # what must be installed (None: kvip, this tree)
    serve: Serve
    scenarios: Callable[[], list[Scenario]]
    relay: bool = False


RUNS = (
    ServerRun(
        "dnsmasq",
        "dnsmasq",
        lambda lab, tmp: lab6.dnsmasq6(lab, tmp, reservations()),
        dnsmasq_scenarios,
        relay=True,
    ),
    ServerRun(
        "kea", "kea-dhcp6", lambda lab, _: kea6(lab, reservations(), pool=KEA_POOL), kea_scenarios
    ),
    ServerRun("kvip", None, lambda lab, _: serve_pools(lab, kvip_pool()), kvip_scenarios),
)
EXECUTABLES = {"dhclient": "dhclient", "dhcpcd": "dhcpcd", "dhcp6c": "dhcp6c",
               "networkd": NETWORKD}  # fmt: skip
PACKAGES = {
    "dhclient": "isc-dhcp-client",
    "dhcpcd": "dhcpcd-base",
    "dhcp6c": "wide-dhcpv6-client",
    "networkd": "systemd",
    "dnsmasq": "dnsmasq-base",
    "dnsmasq-relay": "dnsmasq-base",
    "kea": "kea-dhcp6-server",
}
ROLES = {
    "dnsmasq": "replies of dnsmasq (a range, dhcp-host reservations by MAC, DNS, search,"
    " NTP), direct and through the relay",
    "dnsmasq-relay": "dnsmasq as a DHCPv6 relay (dhcp-relay): what it forwards, with option 79",
    "kea": "replies of kea-dhcp6 (reservations by MAC from the DUID or the link-local"
    " address, DNS, search, DUID-EN server id) to dhclient, dhcpcd, dhcp6c, networkd",
    "kvip": "replies of a dual-stack kvip pool (reservations per VM NIC, DNS, search,"
    " DUID-UUID server id) to dhclient, dhcpcd, dhcp6c, networkd",
}


# --- capture and file ----------------------------------------------------------------


def capture(
    run: ServerRun, scenarios: list[Scenario], *, log: Callable[[str], None]
) -> list[bytes]:
    """Run ``scenarios`` against ``run``'s server in a fresh lab; return the
    pcaps of its wires (eth1: clients, relay and server; eth2: relayed clients)."""
    ports = ("eth1", "eth2") if run.relay else ("eth1",)
    with netlab.netlab("kvcap6") as lab, tempfile.TemporaryDirectory() as tmp:
        netlab.run_in(
            lab.server, ["ip", "link", "set", "eth1", "type", "bridge", "mcast_snooping", "0"]
        )
        netlab.run_in(lab.server, ["ip", "link", "set", "eth1", "address", SERVER_MAC])
        enable_ipv6(lab.server, "eth1")
        add_address6(lab.server, "eth1", SERVER6)
        if run.relay:
            lab6.add_relay(lab, Path(tmp))
        else:
            # A bridge without a port has no carrier, so no link-local address,
            # and Kea and kvip open no DHCPv6 socket on it: give it one at once.
            enable_ipv6(lab.add_client(BYSTANDER_MAC).netns, "eth0")
        wait_link_local(lab.server, "eth1")
        dumps = []
        for port in ports:
            dump = lab.popen(
                lab.server,
                ["tcpdump", "--immediate-mode", "-i", port, "-n", "-U", "-s", "0", "-Z", "root",
                 "-w", f"{tmp}/{port}.pcap", "ip6 and (udp port 546 or udp port 547)"],
                stderr=subprocess.PIPE,
            )  # fmt: skip
            assert dump.stderr is not None
            dump.stderr.readline()  # "listening on ...": the capture is live
            dumps.append(dump)
        with run.serve(lab, Path(tmp)):
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
                log(f"{run.server}: {scenario.tool}: {scenario.name}: {outcome} ({took:.1f}s)")
        time.sleep(0.5)
        for dump in dumps:
            dump.send_signal(signal.SIGINT)
            dump.wait(timeout=10)
        if (Path(tmp) / "relay.log").exists():
            log("relay: " + (Path(tmp) / "relay.log").read_text()[-600:])
        return [Path(f"{tmp}/{port}.pcap").read_bytes() for port in ports]


BYSTANDER_MAC = "52:54:00:00:01:fd"  # a silent namespace on the clients' wire


def wait_link_local(netns: str, ifname: str, *, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    argv = ["ip", "-6", "-o", "addr", "show", "dev", ifname, "scope", "link"]
    while "inet6 fe80" not in netlab.run_in(netns, argv).stdout:
        if time.monotonic() > deadline:
            raise netlab.LabError(f"{ifname} got no link-local address in {timeout}s")
        time.sleep(0.05)


def kvip_version() -> str:
    result = subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%h"],
        capture_output=True,
        text=True,
        check=False,
    )
    return f"this tree at {result.stdout.strip() or 'an unknown commit'}"


def readme(out: Path, done: list[tuple[str, Scenario]]) -> str:
    """The corpus README; ``done``: (server, scenario) as they were run."""
    lines = [
        "# Real DHCPv6 packets",
        "",
        "UDP payloads (DHCPv6 messages, no IP or UDP header) captured from real clients",
        "and servers over a private lab wire (network namespaces with IPv6 switched on",
        "inside only, 2001:db8::/32 and link-local addresses, 52:54:00 MACs).",
        "Each server (dnsmasq, kea-dhcp6, a dual-stack kvip pool) runs in a fresh lab.",
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
        what = ROLES.get(source) or "; ".join(
            f"{s.name} ({server})" for server, s in done if s.tool == source
        )
        if source == "kvip":
            version = f"kvip {kvip_version()}"
        else:
            package = PACKAGES.get(source, source)
            version = f"{package} {package_version(package)}"
        lines.append(f"| `{source}/` | {version} | {what}: {counts} |")
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
    missing = sorted(tool for tool, exe in EXECUTABLES.items() if not shutil.which(exe))
    for tool in missing:
        log(f"{tool}: not installed, its scenarios skipped")
    packets = []
    done: list[tuple[str, Scenario]] = []
    for run in RUNS:
        if run.program and not shutil.which(run.program):
            log(f"{run.server}: {run.program} is not installed, skipped")
            continue
        scenarios = [s for s in run.scenarios() if s.tool not in missing]
        for pcap in capture(run, scenarios, log=log):
            packets += classify(pcap, server=run.server)
        done += [(run.server, s) for s in scenarios]
    write_corpus(packets, out=args.out, per_kind=args.per_kind, log=log)
    (args.out / "README.md").write_text(readme(args.out, done))
    return 0


if __name__ == "__main__":
    sys.exit(main())
