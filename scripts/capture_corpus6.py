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
import contextlib
import hashlib
import ipaddress
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from protocol import dhcp6
from scripts.capture_corpus import package_version
from tests.lab import netlab, pcapfile
from tests.lab.dhcpclients import NETWORKD
from tests.lab.leases import last_event, private_mounts, run_client, write_hook

ROOT = Path(__file__).resolve().parent.parent
LAB6 = ipaddress.IPv6Network("2001:db8::/32")  # RFC 3849, documentation only
LINK_LOCAL = ipaddress.IPv6Network("fe80::/10")
SERVER6 = ipaddress.IPv6Interface("2001:db8:0:1::1/64")
POOL = ("2001:db8:0:1::100", "2001:db8:0:1::1ff")
# A second wire behind a relay (dnsmasq in relay mode, in its own namespace):
# clients on eth2 reach the server on eth1 as RELAY-FORW from RELAY_UP.
RELAY_UP = ipaddress.IPv6Interface("2001:db8:0:1::2/64")
RELAY_DOWN = ipaddress.IPv6Interface("2001:db8:0:2::1/64")
RELAYED_POOL = ("2001:db8:0:2::100", "2001:db8:0:2::1ff")
RELAY_MACS = ("52:54:00:00:01:fe", "52:54:00:00:02:fe")  # upstream, downstream
# Each client tool owns MACs 52:54:00:<tool>:00:<n>; the frame's MAC says who sent it.
TOOLS = {0x1B: "dhclient", 0x1C: "dhcpcd", 0x1D: "networkd"}
SERVER_MAC = "52:54:00:00:00:fe"  # the bridge's: dnsmasq makes its DUID-LL of it
# DUIDs given to dhcpcd by value: a DUID-UUID of a made-up UUID (dhcpcd's own
# would be this machine's DMI UUID) and a DUID-EN like systemd-networkd's.
DUID_UUID = "00:04:" + ":".join(
    f"{b:02x}" for b in bytes.fromhex("6f1b5bd21f2e4b8c9a3e0123456789ab")
)
DUID_EN = "00:02:00:00:ab:11:" + ":".join(f"{b:02x}" for b in b"kvip-lab")


def _duid(value: str) -> dhcp6.Duid | None:
    """The DUID in dhcpcd's colon-hex notation, read the way the codec reads one."""
    data = bytes.fromhex(value.replace(":", ""))
    message = dhcp6.decode(b"\x01\x00\x00\x00\x00\x01" + len(data).to_bytes(2, "big") + data)
    assert isinstance(message, dhcp6.Message)
    return message.client_duid


LAB_DUIDS = {_duid(DUID_UUID), _duid(DUID_EN)}
SYSTEMD_ENTERPRISE = 43793


def _systemd_duid(duid: dhcp6.Duid) -> bool:
    """networkd's DUID-EN: derived from the made-up machine id `networkd6` mounts
    over /etc/machine-id (networkd does not start when that mount fails)."""
    return isinstance(duid, dhcp6.DuidEN) and duid.enterprise == SYSTEMD_ENTERPRISE


MESSAGE_NAMES = {int(kind): kind.name.lower().replace("_", "-") for kind in dhcp6.MessageType}
DHCPV6_PORTS = (546, 547)


def mac(tool: int, n: int) -> str:
    return f"52:54:00:{tool:02x}:00:{n:02x}"


def reservations() -> dict[str, str]:
    return {mac(tool, n): f"2001:db8:0:1::{tool:x}:{n:x}" for tool in TOOLS for n in range(1, 9)}


# --- IPv6 in the lab's namespaces ----------------------------------------------------


def enable_ipv6(netns: str, ifname: str) -> None:
    """Switch IPv6 on in ``netns`` (netlab turns it off), without DAD: addresses
    are usable at once and no neighbour solicitations ride along."""
    for knob in ("all", "default", ifname):
        netlab.run_in(netns, ["sysctl", "-qw", f"net.ipv6.conf.{knob}.accept_dad=0"])
    for knob in ("all", "default", ifname):
        netlab.run_in(netns, ["sysctl", "-qw", f"net.ipv6.conf.{knob}.disable_ipv6=0"])
    netlab.run_in(netns, ["sysctl", "-qw", f"net.ipv6.conf.{ifname}.accept_ra=0"])


def add_address6(netns: str, ifname: str, address: ipaddress.IPv6Interface) -> None:
    if address.ip not in LAB6:
        raise netlab.LabError(f"{address} is outside {LAB6}")
    netlab.run_in(netns, ["ip", "addr", "add", str(address), "dev", ifname, "nodad"])


def lab6_client(lab: netlab.Lab, tool: int, n: int) -> netlab.Client:
    client = lab.add_client(mac(tool, n))
    enable_ipv6(client.netns, client.ifname)
    return client


# --- the server ----------------------------------------------------------------------


def dnsmasq_config(ifname: str, workdir: Path) -> str:
    lines = [
        "port=0",
        f"interface={ifname}",
        "bind-interfaces",
        "dhcp-authoritative",
        "no-resolv",
        "no-hosts",
        f"dhcp-range={POOL[0]},{POOL[1]},64,3600",
        f"dhcp-range={RELAYED_POOL[0]},{RELAYED_POOL[1]},64,3600",
        f"dhcp-option=option6:dns-server,[{SERVER6.ip}]",
        "dhcp-option=option6:domain-search,lab.example,svc.lab.example",
        f"dhcp-option=option6:ntp-server,[{SERVER6.ip}]",
        "leasefile-ro",
        f"dhcp-leasefile={workdir / 'dnsmasq.leases'}",
        f"pid-file={workdir / 'dnsmasq.pid'}",
        "log-dhcp",
    ]
    lines += [f"dhcp-host={hw},[{ip}]" for hw, ip in reservations().items()]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def dnsmasq6(lab: netlab.Lab, workdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    conf = workdir / "dnsmasq.conf"
    conf.write_text(dnsmasq_config("eth1", workdir))
    with open(workdir / "dnsmasq.log", "wb") as log:
        proc = lab.popen(
            lab.server,
            ["dnsmasq", "--keep-in-foreground", "--log-facility=-", f"--conf-file={conf}"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 10
    while b"DHCPv6" not in (workdir / "dnsmasq.log").read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise netlab.LabError(f"dnsmasq did not start: {(workdir / 'dnsmasq.log').read_text()}")
        time.sleep(0.05)
    try:
        yield proc
    finally:
        netlab.stop_process(proc)


def relay_config(workdir: Path) -> str:
    return (
        f"port=0\ndhcp-relay={RELAY_DOWN.ip},{SERVER6.ip}\nlog-dhcp\n"
        f"pid-file={workdir / 'relay.pid'}\n"
    )


def add_relay(lab: netlab.Lab, workdir: Path) -> None:
    """Wire eth2 and a relay namespace (eth0 up on eth1's wire, eth1 down on
    eth2's) running dnsmasq as a DHCPv6 relay; the lab stops it on close."""
    lab.add_server_port("eth2", "198.19.0.1/16")
    netlab.run_in(
        lab.server, ["ip", "link", "set", "eth2", "type", "bridge", "mcast_snooping", "0"]
    )
    relay = lab.add_client(RELAY_MACS[0])
    enable_ipv6(relay.netns, "eth0")
    add_address6(relay.netns, "eth0", RELAY_UP)
    netlab.run_in(relay.netns, ["ip", "link", "add", "eth1", "address", RELAY_MACS[1], "type",
                                "veth", "peer", "name", "vrelay", "netns", lab.server])  # fmt: skip
    netlab.run_in(lab.server, ["ip", "link", "set", "vrelay", "master", "eth2", "up"])
    netlab.run_in(relay.netns, ["ip", "link", "set", "eth1", "up"])
    enable_ipv6(relay.netns, "eth1")
    add_address6(relay.netns, "eth1", RELAY_DOWN)
    conf = workdir / "relay.conf"
    conf.write_text(relay_config(workdir))
    with open(workdir / "relay.log", "wb") as log:
        lab.popen(
            relay.netns,
            ["dnsmasq", "--keep-in-foreground", "--log-facility=-", f"--conf-file={conf}"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    time.sleep(0.5)


# --- the clients ---------------------------------------------------------------------

DHCLIENT6_CONF = """# kvip lab: DHCPv6, ask for what a kvip pool sends; never send the host name.
option dhcp6.ntp-server code 56 = string;
request dhcp6.name-servers, dhcp6.domain-search, dhcp6.sntp-servers, dhcp6.ntp-server;
timeout {timeout};
initial-interval 1;
backoff-cutoff 2;
"""


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    tool: str
    run: Callable[[netlab.Lab, Path], object]


def dhclient6(client: netlab.Client, work: Path, flags: list[str], *, timeout: float = 12) -> str:
    """One dhclient -6 run with ``flags``; the daemon it leaves is stopped after."""
    hook = write_hook(work, event='"$reason"')
    conf, leases, pid = work / "dhclient6.conf", work / "dhclient6.leases", work / "dhclient6.pid"
    conf.write_text(DHCLIENT6_CONF.format(timeout=max(1, int(timeout) - 2)))
    files = ["-sf", str(hook), "-cf", str(conf), "-lf", str(leases), "-pf", str(pid)]
    argv = ["dhclient", "-6", "-v", *flags, *files, client.ifname]
    try:
        result = run_client(client, argv, timeout=timeout)
    finally:
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            os.kill(int(pid.read_text().strip()), signal.SIGTERM)
            time.sleep(0.2)
    return result.stderr


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


DHCPCD6_CONF = """# kvip lab: DHCPv6 only, no router solicitation, no hooks that touch the host.
ipv6only
noipv6rs
nodelay
{duid}
ia_na 1
nohook resolv.conf, hostname, ntp.conf, timesyncd.conf
# The default vendor class names the host's kernel build; captures need not carry it.
vendclass 40712 dhcpcd-9.4.1:Linux:x86_64
option dhcp6_name_servers, dhcp6_domain_search, dhcp6_sntp_servers, ntp_server
"""


def dhcpcd6(
    client: netlab.Client, work: Path, *, duid: str = "", then: str = "", timeout: float = 15
) -> str:
    """dhcpcd -6 until bound, then ``then`` (a shell command against the daemon)."""
    hook = write_hook(work, event='"$reason"')
    conf = work / "dhcpcd6.conf"
    conf.write_text(DHCPCD6_CONF.format(duid=duid))
    argv = ["dhcpcd", "-6", "-B", "-t", str(int(timeout) - 3), "-f", str(conf), "-c", str(hook)]
    dumps = shlex.quote(str(work / "dumps"))
    script = (
        f"{shlex.join([*argv, client.ifname])} & pid=$!; "
        f"until ls {dumps} | grep -q BOUND6; do kill -0 $pid || exit 3; sleep 0.1; done; "
        f"{then.format(conf=shlex.quote(str(conf)), ifname=client.ifname) or ':'}; "
        f"dhcpcd -6 -k -f {shlex.quote(str(conf))} {client.ifname}; wait $pid"
    )
    wrapped = private_mounts(
        ["sh", "-c", script], tmpfs=["/var/lib/dhcpcd", "/run"], hostname="guest-dhcpcd6"
    )
    result = run_client(client, wrapped, timeout=timeout)
    if result.returncode != 0 or last_event(work / "dumps", ("BOUND6",)) is None:
        raise netlab.LabError(f"dhcpcd -6 exited {result.returncode}: {result.stderr[-1500:]}")
    return result.stderr


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


NETWORKD_UNIT = """[Match]
Name={ifname}

[Network]
DHCP=ipv6
IPv6AcceptRA=no

[DHCPv6]
WithoutRA=solicit
UseDomains=yes
"""


def networkd6(client: netlab.Client, work: Path, *, timeout: float = 20) -> str:
    """systemd-networkd as in tests/lab/dhcpclients.run_networkd (container mode,
    a made-up machine id: its DUID-EN is derived from it), with DHCPv6 started
    without an RA; stopped (SIGTERM) once it holds a global address."""
    net = work / "network"
    net.mkdir()
    (net / "50-lab.network").write_text(NETWORKD_UNIT.format(ifname=client.ifname))
    machine_id = work / "machine-id"
    machine_id.write_text("4b7669704c61624d616368696e654964\n")
    script = (
        "mount -t tmpfs tmpfs /run/systemd && mount -t tmpfs tmpfs /etc/systemd/network"
        f" && mount --bind {shlex.quote(str(machine_id))} /etc/machine-id"
        f" && cp {shlex.quote(str(net))}/*.network /etc/systemd/network/"
        " && mount -o remount,bind,ro /sys && hostname guest-networkd6"
        f" && {{ {NETWORKD} & pid=$!; "
        f"until ip -6 addr show dev {client.ifname} scope global | grep -q inet6; do"
        " kill -0 $pid || exit 3; sleep 0.1; done; "
        "sleep 0.5; kill -TERM $pid; wait $pid; }"
    )
    argv = ["unshare", "-m", "--propagation", "private", "-u", "--", "sh", "-c", script]
    result = run_client(client, argv, timeout=timeout)
    if result.returncode != 0:
        raise netlab.LabError(
            f"systemd-networkd exited {result.returncode}: {result.stderr[-1500:]}"
        )
    return result.stderr


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
        add_relay(lab, Path(tmp))
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
        with dnsmasq6(lab, Path(tmp)):
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


@dataclass(frozen=True, slots=True)
class Packet:
    source: str
    kind: str
    payload: bytes
    message: dhcp6.Message | dhcp6.RelayMessage


def udp6_payloads(pcap: bytes) -> Iterator[tuple[str, int, bytes]]:
    """(source MAC, source port, UDP payload) of each IPv6 DHCP datagram (Ethernet,
    no extension headers: what the lab's clients and dnsmasq send)."""
    for linktype, _, frame in pcapfile.read_records(pcap):
        if linktype != pcapfile.LINKTYPE_ETHERNET or frame[12:14] != b"\x86\xdd":
            continue
        ip = frame[14:]
        if len(ip) < 48 or ip[6] != 17:
            continue
        sport, dport, length = (
            int.from_bytes(ip[40:42]),
            int.from_bytes(ip[42:44]),
            int.from_bytes(ip[44:46]),
        )
        if sport in DHCPV6_PORTS or dport in DHCPV6_PORTS:
            yield frame[6:12].hex(":"), sport, ip[48 : 40 + length]


def addresses_in(message: object) -> Iterator[ipaddress.IPv6Address]:
    """Every IPv6 address a decoded message carries, nested ones included."""
    if isinstance(message, ipaddress.IPv6Address):
        yield message
    elif isinstance(message, tuple):
        for item in message:
            yield from addresses_in(item)
    elif hasattr(message, "__dataclass_fields__"):
        for name in message.__dataclass_fields__:
            yield from addresses_in(getattr(message, name))


def unsafe(packet: Packet) -> str | None:
    payload = packet.payload
    for secret in {socket.gethostname(), os.uname().release}:
        if secret.encode() in payload:
            return f"holds {secret!r}"
    for address in addresses_in(packet.message):
        if address not in LAB6 and address not in LINK_LOCAL and not address.is_unspecified:
            return f"holds {address}, outside the lab"
    for option in (packet.message.get(dhcp6.ClientId), packet.message.get(dhcp6.ServerId)):
        if option is None:
            continue
        if isinstance(option.duid, (dhcp6.DuidLL, dhcp6.DuidLLT)):
            if not option.duid.link_layer_address.startswith(b"\x52\x54\x00"):
                return "a DUID with a MAC outside 52:54:00"
        elif option.duid not in LAB_DUIDS and not _systemd_duid(option.duid):
            return f"a DUID the lab did not set: {option.duid}"
    return None


def classify(pcap: bytes, *, server: str) -> list[Packet]:
    packets = []
    for src_mac, sport, payload in udp6_payloads(pcap):
        message = dhcp6.decode(payload)  # a capture the codec cannot read is a finding
        kind = MESSAGE_NAMES[payload[0]]
        if payload[0] == dhcp6.MessageType.RELAY_FORW:
            packets.append(Packet(f"{server}-relay", kind, payload, message))
        elif sport == 547:
            packets.append(Packet(server, kind, payload, message))
        elif src_mac.startswith("52:54:00:") and int(src_mac[9:11], 16) in TOOLS:
            packets.append(Packet(TOOLS[int(src_mac[9:11], 16)], kind, payload, message))
    return packets


def shape(message: object) -> tuple[object, ...]:
    """Option codes, nested ones included, and DUID types: what a parser sees."""
    if isinstance(message, tuple):
        return tuple(shape(item) for item in message)
    code = getattr(message, "code", None)
    inner = getattr(message, "options", None) or getattr(message, "message", None)
    duid = getattr(message, "duid", None)
    return (code, type(duid).__name__ if duid else None, shape(inner) if inner else ())


def select(packets: list[Packet], *, per_kind: int) -> list[Packet]:
    """Every new shape per source and kind, then others up to ``per_kind`` more."""
    seen: set[bytes] = set()
    shapes: set[tuple[object, ...]] = set()
    chosen: list[Packet] = []
    for want_new_shape in (True, False):
        for packet in packets:
            digest = hashlib.sha256(packet.payload).digest()
            key = (packet.source, packet.kind, shape(packet.message.options))
            extra = sum(1 for c in chosen if (c.source, c.kind) == key[:2])
            if digest in seen or (want_new_shape and key in shapes):
                continue
            if not want_new_shape and extra >= per_kind:
                continue
            seen.add(digest)
            shapes.add(key)
            chosen.append(packet)
    return chosen


def write_corpus(
    packets: list[Packet], *, out: Path, per_kind: int, log: Callable[[str], None]
) -> None:
    safe = []
    for packet in packets:
        reason = unsafe(packet)
        if reason is None:
            safe.append(packet)
        else:
            log(f"skipped a {packet.source} {packet.kind}: {reason}")
    for source in {p.source for p in packets}:
        shutil.rmtree(out / source, ignore_errors=True)
    counts: dict[tuple[str, str], int] = {}
    for packet in select(safe, per_kind=per_kind):
        key = (packet.source, packet.kind)
        counts[key] = counts.get(key, 0) + 1
        (out / packet.source).mkdir(parents=True, exist_ok=True)
        path = out / packet.source / f"{packet.source}-{packet.kind}-{counts[key]}.bin"
        path.write_bytes(packet.payload)
        log(f"wrote {path.relative_to(out)}")


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
