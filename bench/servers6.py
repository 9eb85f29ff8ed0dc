"""The DHCPv6 servers under test, each alone on one CPU in the lab's server namespace.

Like bench/servers.py for DHCPv4: kvip as its own process (a dual-stack pool,
``python -m bench.kvip_server``), kea-dhcp6 single-threaded with its leases in
memory, dnsmasq; per-packet logging off for all of them. Every server hands out
the same reserved address a MAC with the same options (Options6), and all of
them identify a client by the MAC in its DUID-LL/DUID-LLT, which is what
perfdhcp -6 sends.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from ipaddress import IPv6Interface
from pathlib import Path
from typing import Any

from bench.servers import REPO, START_TIMEOUT, Server, _wait_ready, ippool_body, pinned
from tests.lab.dhcpservers import PoolOptions
from tests.lab.netlab import Lab, LabError, run_in, stop_process

#: The servers' address on the wire: every server's, 2001:db8::/32 only.
SERVER6 = IPv6Interface("2001:db8:0:1::1/64")


@dataclass(frozen=True, slots=True)
class Options6:
    """What every DHCPv6 server hands out besides the address."""

    subnet: IPv6Interface = SERVER6
    dns: tuple[str, ...] = ("2001:db8:0:1::53",)
    search: tuple[str, ...] = ("lab.example", "vms.example")
    #: dnsmasq gives one lease time for both lifetimes: so do the others.
    lifetime: int = 3600


def ipv6config(options: Options6, reservations: Mapping[str, str]) -> dict[str, Any]:
    """The IPPool's ipv6config: a range holding every reserved address."""
    ordered = sorted(reservations.values(), key=lambda a: int(IPv6Interface(a).ip))
    return {
        "subnet": str(options.subnet.network),
        "pool": {"start": ordered[0], "end": ordered[-1]},
        "dns": list(options.dns),
        "domainsearch": list(options.search),
        "preferredlifetime": options.lifetime,
        "validlifetime": options.lifetime,
    }


def _wait_bound6(lab: Lab, server: Server, *, expect_comm: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        server.check_alive()
        out = run_in(lab.server, ["ss", "-Hlun", "sport = :547"], check=False).stdout
        if out.strip():
            comm = Path(f"/proc/{server.proc.pid}/comm").read_text().strip()
            if not comm.startswith(expect_comm):
                raise LabError(f"pid {server.proc.pid} is {comm!r}, not {expect_comm}")
            return
        time.sleep(0.05)
    raise LabError(f"{server.name} did not bind port 547 in {START_TIMEOUT}s")


@contextlib.contextmanager
def kvip6(
    lab: Lab,
    reservations: Mapping[str, tuple[str, str]],
    *,
    options: PoolOptions,
    options6: Options6,
    cpu: int,
    nice: int,
    profile: Path | None = None,
) -> Iterator[Server]:
    """A dual-stack pool: ``reservations`` maps a MAC to (IPv4, IPv6) address.
    With ``profile``, its threads run under cProfile (slower) and the stats land there."""
    port = next(iter(lab.ports.values()))
    with tempfile.TemporaryDirectory(prefix="kvip-bench6-") as tmp:
        workdir = Path(tmp)
        body = ippool_body(port, options=options)
        body["spec"]["ipv6config"] = ipv6config(
            options6, {mac: ip6 for mac, (_, ip6) in reservations.items()}
        )
        rows = [[mac, ip, f"vm{i}", ip6] for i, (mac, (ip, ip6)) in enumerate(reservations.items())]
        config = workdir / "kvip.json"
        config.write_text(json.dumps({"ippool": body, "reservations": rows}))
        argv = [*pinned(cpu, nice=nice), sys.executable, "-m", "bench.kvip_server",
                "--config", str(config)]  # fmt: skip
        if profile is not None:
            argv += ["--profile", str(profile)]
        with open(workdir / "server.log", "wb") as log:
            proc = lab.popen(lab.server, argv, stdout=subprocess.PIPE, stderr=log, cwd=REPO)
        server = Server("kvip", proc, workdir)
        try:
            _wait_ready(server)
            _wait_bound6(lab, server, expect_comm="python")
            yield server
        finally:
            stop_process(proc)
            if proc.stdout is not None:
                tail = proc.stdout.read().decode(errors="replace").strip()
                print(f"    kvip counters: {tail[-900:]}", flush=True)


def kea6_config(
    ifname: str, reservations: Mapping[str, str], *, options6: Options6, workdir: Path
) -> dict[str, object]:
    """kea-dhcp6: leases in memory only, reservations by hardware address taken
    from the client's DUID (DUID-LL or DUID-LLT), reservations outside any pool
    (Kea then skips its in-pool checks: its fastest path), INFO logs off."""
    lifetime = options6.lifetime
    config: dict[str, object] = {
        "interfaces-config": {"interfaces": [ifname]},
        "data-directory": str(workdir),
        "server-id": {"type": "LL", "persist": False},
        "lease-database": {
            "type": "memfile",
            "persist": False,
            "name": str(workdir / "leases6.csv"),
        },
        "host-reservation-identifiers": ["hw-address"],
        "mac-sources": ["duid"],
        "multi-threading": {"enable-multi-threading": False},
        "preferred-lifetime": lifetime,
        "valid-lifetime": lifetime,
        "calculate-tee-times": True,
        "option-data": [
            {"name": "dns-servers", "data": ", ".join(options6.dns)},
            {"name": "domain-search", "data": ", ".join(options6.search)},
        ],
        "subnet6": [
            {
                "id": 1,
                "subnet": str(options6.subnet.network),
                "interface": ifname,
                "reservations-in-subnet": True,
                "reservations-out-of-pool": True,
                "reservations": [
                    {"hw-address": mac, "ip-addresses": [ip6]} for mac, ip6 in reservations.items()
                ],
            }
        ],
        "loggers": [
            {
                "name": "kea-dhcp6",
                "output_options": [{"output": str(workdir / "server.log")}],
                "severity": "WARN",
            }
        ],
    }
    return {"Dhcp6": config}


@contextlib.contextmanager
def kea6(
    lab: Lab, reservations: Mapping[str, str], *, options6: Options6, cpu: int, nice: int
) -> Iterator[Server]:
    exe = shutil.which("kea-dhcp6")
    if exe is None:
        raise LabError("kea-dhcp6 is not installed (kea-dhcp6-server)")
    port = next(iter(lab.ports.values()))
    with tempfile.TemporaryDirectory(prefix="kvip-bench-kea6-") as tmp:
        workdir = Path(tmp)
        body = kea6_config(port.ifname, reservations, options6=options6, workdir=workdir)
        conf = workdir / "kea-dhcp6.json"
        conf.write_text(json.dumps(body, indent=2))
        env = dict(os.environ, KEA_PIDFILE_DIR=tmp, KEA_LOCKFILE_DIR=tmp)
        check = run_in(lab.server, [exe, "-t", str(conf)], check=False, env=env)
        if check.returncode != 0:
            raise LabError(f"kea-dhcp6 -t rejected the config: {check.stdout}{check.stderr}")
        with open(workdir / "stdout.log", "wb") as out:
            proc = lab.popen(
                lab.server,
                [*pinned(cpu, nice=nice), exe, "-c", str(conf)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        server = Server("kea6", proc, workdir)
        try:
            _wait_bound6(lab, server, expect_comm="kea-dhcp6")
            yield server
        finally:
            stop_process(proc)


def dnsmasq6_config(
    ifname: str, reservations: Mapping[str, str], *, options6: Options6, workdir: Path
) -> str:
    """dnsmasq answering only reserved clients (a ``static`` range), no DNS, no
    log line a packet (``log-dhcp`` would measure its logger).

    dnsmasq matches a ``dhcp-host`` MAC against the frame's link-layer source
    only, never the MAC inside a DUID: every perfdhcp client would come from
    the generator's one MAC and get NoAddrsAvail. So each reservation is keyed
    by the client's DUID instead (``id:`` + the DUID-LL perfdhcp builds of the
    MAC: type 3, hardware type 1, the MAC), the same client, still a static
    address."""
    lines = [
        "port=0",
        f"interface={ifname}",
        "bind-interfaces",
        "no-resolv",
        "no-hosts",
        f"dhcp-range={options6.subnet.network.network_address},static,"
        f"{options6.subnet.network.prefixlen},{options6.lifetime}",
        f"dhcp-option=option6:dns-server,{','.join(f'[{a}]' for a in options6.dns)}",
        f"dhcp-option=option6:domain-search,{','.join(options6.search)}",
        "leasefile-ro",
        f"dhcp-leasefile={workdir / 'dnsmasq.leases'}",
        f"pid-file={workdir / 'dnsmasq.pid'}",
    ]
    lines += [f"dhcp-host=id:{duid_ll(mac)},[{ip6}]" for mac, ip6 in reservations.items()]
    return "\n".join(lines) + "\n"


def duid_ll(mac: str) -> str:
    """RFC 8415 11.4: DUID-LL of an Ethernet MAC, colon-separated hex."""
    return f"00:03:00:01:{mac.lower()}"


@contextlib.contextmanager
def dnsmasq6(
    lab: Lab, reservations: Mapping[str, str], *, options6: Options6, cpu: int, nice: int
) -> Iterator[Server]:
    exe = shutil.which("dnsmasq")
    if exe is None:
        raise LabError("dnsmasq is not installed (dnsmasq-base)")
    port = next(iter(lab.ports.values()))
    with tempfile.TemporaryDirectory(prefix="kvip-bench-dnsmasq6-") as tmp:
        workdir = Path(tmp)
        conf = workdir / "dnsmasq.conf"
        conf.write_text(
            dnsmasq6_config(port.ifname, reservations, options6=options6, workdir=workdir)
        )
        with open(workdir / "server.log", "wb") as log:
            argv = [*pinned(cpu, nice=nice), exe, "--keep-in-foreground", "--log-facility=-",
                    f"--conf-file={conf}"]  # fmt: skip
            proc = lab.popen(lab.server, argv, stdout=log, stderr=subprocess.STDOUT)
        server = Server("dnsmasq", proc, workdir)
        try:
            _wait_bound6(lab, server, expect_comm="dnsmasq")
            yield server
        finally:
            stop_process(proc)
