"""Reference DHCPv6 servers (kea-dhcp6, dnsmasq) serving static reservations,
and radvd sending the Router Advertisements that start DHCPv6 in hosts, in a
lab's server namespace (tests/lab/netlab.py).

Reservations map a NIC's MAC to its IPv6 address, as kvip's do. Kea finds the
MAC in a DUID-LL(T) or the EUI-64 link-local address; dnsmasq in the DUID or
its neighbour table. Everything they write (leases, server DUID, pid, lock,
config, log) stays in a private temp dir. Used by tests/test_dhcp6_lab.py and
by the DHCPv6 load bench.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.lab.dhcp6lab import add_address6, enable_ipv6
from tests.lab.netlab import Lab, LabError, run_in, stop_process

__all__ = [
    "SERVER6",
    "Pool6",
    "Server6",
    "dnsmasq6",
    "kea6",
    "radvd",
    "server_port6",
]

SERVER6 = ipaddress.IPv6Interface("2001:db8:0:1::1/64")


@dataclass(frozen=True, slots=True)
class Pool6:
    """What the reference servers hand out besides the address."""

    subnet: ipaddress.IPv6Network = SERVER6.network
    dns: tuple[str, ...] = ("2001:db8:0:1::53",)
    search: tuple[str, ...] = ("lab.example", "vms.example")
    preferred_lifetime: int = 3600
    valid_lifetime: int = 7200
    #: T1 and T2 (None: the server's default, about 0.5 and 0.8 of preferred).
    renew: int | None = None
    rebind: int | None = None


@dataclass(frozen=True, slots=True)
class Server6:
    name: str
    proc: subprocess.Popen[bytes]
    workdir: Path

    def log(self) -> str:
        path = self.workdir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """The server stopped (SIGSTOP) for the block: requests queue up unanswered."""
        self.proc.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self.proc.send_signal(signal.SIGCONT)


def server_port6(
    lab: Lab, ifname: str = "eth1", address: ipaddress.IPv6Interface = SERVER6
) -> None:
    """IPv6 on the server port ``ifname`` (no DAD) with ``address``."""
    enable_ipv6(lab.server, ifname)
    add_address6(lab.server, ifname, address)


def _check(reservations: Mapping[str, str], pool: Pool6) -> None:
    for mac, ip in reservations.items():
        if ipaddress.IPv6Address(ip) not in pool.subnet:
            raise LabError(f"reservation {mac} -> {ip} is outside {pool.subnet}")


def _wait_bound(lab: Lab, proc: subprocess.Popen[bytes], *, name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabError(f"{name} exited with {proc.returncode}")
        if run_in(lab.server, ["ss", "-Hlun", "sport = :547"], check=False).stdout.strip():
            return
        time.sleep(0.05)
    raise LabError(f"{name} did not bind port 547 in {timeout}s")


def kea6_config(
    ifname: str, reservations: Mapping[str, str], pool: Pool6, workdir: Path, *, persist: bool
) -> dict[str, object]:
    data = [{"name": "dns-servers", "data": ", ".join(pool.dns)}] if pool.dns else []
    if pool.search:
        data.append({"name": "domain-search", "data": ", ".join(pool.search)})
    timers = {"preferred-lifetime": pool.preferred_lifetime, "valid-lifetime": pool.valid_lifetime}
    if pool.renew is not None:
        timers["renew-timer"] = pool.renew
    if pool.rebind is not None:
        timers["rebind-timer"] = pool.rebind
    leases: dict[str, object] = {"type": "memfile", "persist": persist, "lfc-interval": 0}
    if persist:
        leases["name"] = str(workdir / "leases6.csv")
    config = {
        "interfaces-config": {"interfaces": [ifname]},
        "data-directory": str(workdir),
        "server-id": {
            "type": "EN",
            "enterprise-id": 32473,
            "identifier": "6b766970",
            "persist": False,
        },
        "lease-database": leases,
        "host-reservation-identifiers": ["hw-address", "duid"],
        "mac-sources": ["ipv6-link-local", "duid"],
        "multi-threading": {"enable-multi-threading": False},
        **timers,
        "subnet6": [
            {
                "id": 1,
                "subnet": str(pool.subnet),
                "interface": ifname,
                "option-data": data,
                "reservations": [
                    {"hw-address": mac, "ip-addresses": [ip]} for mac, ip in reservations.items()
                ],
            }
        ],
        "loggers": [
            {
                "name": "kea-dhcp6",
                "output_options": [{"output": str(workdir / "server.log")}],
                "severity": "INFO",
            }
        ],
    }
    return {"Dhcp6": config}


@contextlib.contextmanager
def kea6(
    lab: Lab,
    reservations: Mapping[str, str],
    *,
    port: str = "eth1",
    pool: Pool6 | None = None,
    persist: bool = True,
    timeout: float = 15,
) -> Iterator[Server6]:
    """kea-dhcp6 on ``port`` of the server namespace, memfile leases (kept in its
    temp dir as leases6.csv when ``persist``, for the DUIDs clients sent);
    stopped on exit."""
    exe = shutil.which("kea-dhcp6")
    if exe is None:
        raise LabError("kea-dhcp6 is not installed (kea-dhcp6-server)")
    pool = pool or Pool6()
    _check(reservations, pool)
    with tempfile.TemporaryDirectory(prefix="kvip-kea6-") as tmp:
        workdir = Path(tmp)
        conf = workdir / "kea-dhcp6.json"
        body = kea6_config(port, reservations, pool, workdir, persist=persist)
        conf.write_text(json.dumps(body, indent=2))
        env = dict(os.environ, KEA_PIDFILE_DIR=tmp, KEA_LOCKFILE_DIR=tmp)
        check = run_in(lab.server, [exe, "-t", str(conf)], check=False, env=env)
        if check.returncode != 0:
            raise LabError(f"kea-dhcp6 -t rejected the config: {check.stdout}{check.stderr}")
        with open(workdir / "stdout.log", "wb") as out:
            proc = lab.popen(
                lab.server, [exe, "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT, env=env
            )
        try:
            _wait_bound(lab, proc, name="kea-dhcp6", timeout=timeout)
            yield Server6(name="kea-dhcp6", proc=proc, workdir=workdir)
        finally:
            stop_process(proc)


def kea6_leases(server: Server6) -> list[dict[str, str]]:
    """Kea's memfile lease file: one dict per line (address, duid, hwaddr, state...)."""
    path = server.workdir / "leases6.csv"
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    header = lines[0].split(",") if lines else []
    return [dict(zip(header, line.split(","), strict=False)) for line in lines[1:]]


def dnsmasq6_config(
    ifname: str, reservations: Mapping[str, str], pool: Pool6, workdir: Path
) -> str:
    # dnsmasq has one lease time (at least two minutes): it sends it as both
    # lifetimes, and T1 and T2 follow from it.
    if pool.preferred_lifetime != pool.valid_lifetime or pool.valid_lifetime < 120:
        raise LabError("dnsmasq needs preferred == valid lifetime, at least 120 s")
    lease = pool.valid_lifetime
    lines = [
        "port=0",
        f"interface={ifname}",
        "bind-interfaces",
        "dhcp-authoritative",
        "no-resolv",
        "no-hosts",
        f"dhcp-range={pool.subnet.network_address},static,{pool.subnet.prefixlen},{lease}",
        "leasefile-ro",
        f"dhcp-leasefile={workdir / 'dnsmasq.leases'}",
        f"pid-file={workdir / 'dnsmasq.pid'}",
        "log-dhcp",
    ]
    if pool.dns:
        lines.append("dhcp-option=option6:dns-server," + ",".join(f"[{a}]" for a in pool.dns))
    if pool.search:
        lines.append("dhcp-option=option6:domain-search," + ",".join(pool.search))
    lines += [f"dhcp-host={mac},[{ip}]" for mac, ip in reservations.items()]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def dnsmasq6(
    lab: Lab,
    reservations: Mapping[str, str],
    *,
    port: str = "eth1",
    pool: Pool6 | None = None,
    timeout: float = 10,
) -> Iterator[Server6]:
    """dnsmasq serving DHCPv6 (static reservations only) on ``port``; stopped on exit."""
    pool = pool or Pool6()
    _check(reservations, pool)
    with tempfile.TemporaryDirectory(prefix="kvip-dnsmasq6-") as tmp:
        workdir = Path(tmp)
        conf = workdir / "dnsmasq.conf"
        conf.write_text(dnsmasq6_config(port, reservations, pool, workdir))
        with open(workdir / "server.log", "wb") as log:
            proc = lab.popen(
                lab.server,
                ["dnsmasq", "--keep-in-foreground", "--log-facility=-", f"--conf-file={conf}"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_bound(lab, proc, name="dnsmasq", timeout=timeout)
            yield Server6(name="dnsmasq", proc=proc, workdir=workdir)
        finally:
            stop_process(proc)


RADVD_CONF = """# kvip lab: tell hosts to use DHCPv6 (M and O), the prefix on-link, no SLAAC.
interface {ifname} {{
    AdvSendAdvert on;
    AdvManagedFlag on;
    AdvOtherConfigFlag on;
    MinRtrAdvInterval 3;
    MaxRtrAdvInterval 10;
    AdvDefaultLifetime 0;
    prefix {prefix} {{
        AdvOnLink on;
        AdvAutonomous off;
    }};
}};
"""


@contextlib.contextmanager
def radvd(
    lab: Lab, *, port: str = "eth1", prefix: ipaddress.IPv6Network = SERVER6.network
) -> Iterator[Server6]:
    """radvd advertising ``prefix`` with the M and O flags on ``port``; stopped on exit."""
    exe = shutil.which("radvd")
    if exe is None:
        raise LabError("radvd is not installed")
    # radvd only advertises for a router: forwarding on, in the lab namespace only.
    run_in(lab.server, ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])
    with tempfile.TemporaryDirectory(prefix="kvip-radvd-") as tmp:
        workdir = Path(tmp)
        conf = workdir / "radvd.conf"
        conf.write_text(RADVD_CONF.format(ifname=port, prefix=prefix))
        argv = [exe, "-n", "-m", "stderr", "-d", "1", "-C", str(conf), "-p", str(workdir / "pid")]
        with open(workdir / "server.log", "wb") as log:
            proc = lab.popen(lab.server, argv, stdout=log, stderr=subprocess.STDOUT)
        time.sleep(0.3)
        if proc.poll() is not None:
            raise LabError(f"radvd exited: {(workdir / 'server.log').read_text()}")
        try:
            yield Server6(name="radvd", proc=proc, workdir=workdir)
        finally:
            stop_process(proc)
