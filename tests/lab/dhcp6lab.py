"""DHCPv6 on the lab wire of tests/lab/netlab.py: IPv6 switched back on inside
the lab's namespaces only (netlab turns it off), addresses from the
documentation prefix 2001:db8::/32 only, dnsmasq as a DHCPv6 server and as a
relay, and the real clients (dhclient -6, dhcpcd -6, systemd-networkd) run so
that nothing they write reaches the host. Used by scripts/capture_corpus6.py.

    server netns: bridge eth1 (2001:db8:0:1::1/64, dnsmasq) ---- clients
                  bridge eth2 ---- relay netns eth1 (2001:db8:0:2::1/64)
    relay netns:  eth0 (2001:db8:0:1::2/64) on eth1's wire, dnsmasq dhcp-relay
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from tests.lab import netlab
from tests.lab.dhcpclients import NETWORKD
from tests.lab.leases import last_event, private_mounts, run_client, write_hook

__all__ = [
    "LAB6",
    "LINK_LOCAL",
    "RELAY_DOWN",
    "RELAY_UP",
    "SERVER6",
    "SERVER_MAC",
    "add_address6",
    "add_relay",
    "dhclient6",
    "dhcpcd6",
    "dnsmasq6",
    "enable_ipv6",
    "networkd6",
]

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


SERVER_MAC = "52:54:00:00:00:fe"  # the bridge's: dnsmasq makes its DUID-LL of it


def enable_ipv6(netns: str, ifname: str) -> None:
    """Switch IPv6 on in ``netns`` (netlab turns it off), without DAD: addresses
    are usable at once and no neighbour solicitations ride along."""
    for knob in ("all", "default", ifname):
        netlab.run_in(netns, ["sysctl", "-qw", f"net.ipv6.conf.{knob}.accept_dad=0"])
    for knob in ("all", "default", ifname):
        netlab.run_in(netns, ["sysctl", "-qw", f"net.ipv6.conf.{knob}.disable_ipv6=0"])
    netlab.run_in(netns, ["sysctl", "-qw", f"net.ipv6.conf.{ifname}.accept_ra=0"])


def stable_privacy_link_local(netns: str, ifname: str) -> None:
    """Give ``ifname`` a stable-privacy link-local address (RFC 7217) in place
    of its EUI-64 one, as a guest configured so does from boot: a secret, the
    generation mode, and the link down and up (the kernel makes link-locals
    when a link comes up)."""
    for knob in ("stable_secret=2001:db8::4b76:6970", "addr_gen_mode=2"):
        netlab.run_in(netns, ["sysctl", "-qw", f"net.ipv6.conf.{ifname}.{knob}"])
    for state in ("down", "up"):
        netlab.run_in(netns, ["ip", "link", "set", ifname, state])


def add_address6(netns: str, ifname: str, address: ipaddress.IPv6Interface) -> None:
    if address.ip not in LAB6:
        raise netlab.LabError(f"{address} is outside {LAB6}")
    netlab.run_in(netns, ["ip", "addr", "add", str(address), "dev", ifname, "nodad"])


def dnsmasq_config(ifname: str, workdir: Path, reservations: Mapping[str, str]) -> str:
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
    lines += [f"dhcp-host={hw},[{ip}]" for hw, ip in reservations.items()]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def dnsmasq6(
    lab: netlab.Lab, workdir: Path, reservations: Mapping[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    """dnsmasq serving DHCPv6 on the server's eth1 (and, behind the relay, the
    eth2 subnet), ``reservations`` mapping MACs to addresses; stopped on exit."""
    conf = workdir / "dnsmasq.conf"
    conf.write_text(dnsmasq_config("eth1", workdir, reservations))
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


DHCLIENT6_CONF = """# kvip lab: DHCPv6, ask for what a kvip pool sends; never send the host name.
option dhcp6.ntp-server code 56 = string;
request dhcp6.name-servers, dhcp6.domain-search, dhcp6.sntp-servers, dhcp6.ntp-server;
timeout {timeout};
initial-interval 1;
backoff-cutoff 2;
"""


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
