"""Reference DHCP servers (dnsmasq, kea-dhcp4) serving static reservations in a lab.

Both run in the lab's server namespace, bound to one port, with every file
they write (leases, pid, lock, config) in a private temp dir. Used by the lab's
own tests, the corpus capture and the comparison benchmarks.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.lab.netlab import Lab, LabError, Port, run_in, stop_process


@dataclass(frozen=True, slots=True)
class PoolOptions:
    """What the reference servers hand out besides the address."""

    router: str | None = "198.18.0.1"
    dns: tuple[str, ...] = ("198.18.0.53",)
    domain: str | None = "lab.example"
    search: tuple[str, ...] = ("lab.example", "vms.example")
    mtu: int | None = 1450
    lease_time: int = 3600
    routes: tuple[tuple[str, str], ...] = ()  # (destination network, gateway)


@dataclass(frozen=True, slots=True)
class RunningServer:
    name: str
    proc: subprocess.Popen[bytes]
    workdir: Path

    def log(self) -> str:
        path = self.workdir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _wait_bound(lab: Lab, proc: subprocess.Popen[bytes], *, name: str, timeout: float) -> None:
    """Wait until something in the server namespace listens on UDP port 67."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabError(f"{name} exited with {proc.returncode}")
        out = run_in(lab.server, ["ss", "-Hlun", "sport = :67"], check=False).stdout
        if out.strip():
            return
        time.sleep(0.05)
    raise LabError(f"{name} did not bind port 67 in {timeout}s")


def dnsmasq_config(
    port: Port, reservations: Mapping[str, str], *, options: PoolOptions, workdir: Path
) -> str:
    lines = [
        "port=0",
        f"interface={port.ifname}",
        "bind-interfaces",
        "dhcp-authoritative",
        "no-ping",
        "no-resolv",
        "no-hosts",
        f"dhcp-range={port.address.network.network_address},static,"
        f"{port.address.netmask},{options.lease_time}",
        "leasefile-ro",
        f"dhcp-leasefile={workdir / 'dnsmasq.leases'}",
        f"pid-file={workdir / 'dnsmasq.pid'}",
        "log-dhcp",
    ]
    if options.router:
        lines.append(f"dhcp-option=option:router,{options.router}")
    if options.dns:
        lines.append(f"dhcp-option=option:dns-server,{','.join(options.dns)}")
    if options.domain:
        lines.append(f"dhcp-option=option:domain-name,{options.domain}")
    if options.search:
        lines.append(f"dhcp-option=option:domain-search,{','.join(options.search)}")
    if options.mtu:
        lines.append(f"dhcp-option=option:mtu,{options.mtu}")
    if options.routes:
        pairs = ",".join(f"{dst},{gw}" for dst, gw in options.routes)
        lines.append(f"dhcp-option=option:classless-static-route,{pairs}")
    lines += [f"dhcp-host={mac},{ip}" for mac, ip in reservations.items()]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def dnsmasq(
    lab: Lab,
    reservations: Mapping[str, str],
    *,
    port: str | None = None,
    options: PoolOptions | None = None,
    timeout: float = 10,
) -> Iterator[RunningServer]:
    """dnsmasq in the foreground in the server namespace, serving ``reservations``
    (MAC -> IP) on ``port``; stopped on exit."""
    exe = shutil.which("dnsmasq")
    if exe is None:
        raise LabError("dnsmasq is not installed (dnsmasq-base)")
    the_port = lab.ports[port or next(iter(lab.ports))]
    with tempfile.TemporaryDirectory(prefix="kvip-dnsmasq-") as tmp:
        workdir = Path(tmp)
        conf = workdir / "dnsmasq.conf"
        conf.write_text(
            dnsmasq_config(
                the_port, reservations, options=options or PoolOptions(), workdir=workdir
            )
        )
        with open(workdir / "server.log", "wb") as log:
            proc = lab.popen(
                lab.server,
                [exe, "--keep-in-foreground", "--log-facility=-", f"--conf-file={conf}"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_bound(lab, proc, name="dnsmasq", timeout=timeout)
            yield RunningServer(name="dnsmasq", proc=proc, workdir=workdir)
        finally:
            stop_process(proc)


def rfc3442_routes(routes: tuple[tuple[str, str], ...]) -> bytes:
    """Option 121's value: per route the prefix length, the significant octets of
    the destination, then the gateway (RFC 3442 section 3)."""
    out = bytearray()
    for dst, gw in routes:
        net = ipaddress.IPv4Network(dst)
        out.append(net.prefixlen)
        out += net.network_address.packed[: (net.prefixlen + 7) // 8]
        out += ipaddress.IPv4Address(gw).packed
    return bytes(out)


def kea_config(
    port: Port,
    reservations: Mapping[str, str],
    *,
    options: PoolOptions,
    workdir: Path,
    threads: int = 0,
) -> dict[str, object]:
    data: list[dict[str, object]] = []
    if options.router:
        data.append({"name": "routers", "data": options.router})
    if options.dns:
        data.append({"name": "domain-name-servers", "data": ", ".join(options.dns)})
    if options.domain:
        data.append({"name": "domain-name", "data": options.domain})
    if options.search:
        data.append({"name": "domain-search", "data": ", ".join(options.search)})
    if options.mtu:
        data.append({"name": "interface-mtu", "data": str(options.mtu)})
    if options.routes:
        # Kea 2.2 has no definition for option 121: send it as raw RFC 3442 bytes.
        data.append(
            {"code": 121, "csv-format": False, "data": rfc3442_routes(options.routes).hex()}
        )
    network = port.address.network
    config: dict[str, object] = {
        "interfaces-config": {"interfaces": [port.ifname], "dhcp-socket-type": "raw"},
        "lease-database": {"type": "memfile", "persist": False},
        "host-reservation-identifiers": ["hw-address"],
        "authoritative": True,
        "calculate-tee-times": True,
        "valid-lifetime": options.lease_time,
        "subnet4": [
            {
                "id": 1,
                "subnet": str(network),
                "option-data": data,
                "reservations": [
                    {"hw-address": mac, "ip-address": ip} for mac, ip in reservations.items()
                ],
            }
        ],
        "loggers": [
            {
                "name": "kea-dhcp4",
                "output_options": [{"output": str(workdir / "server.log")}],
                "severity": "INFO",
            }
        ],
    }
    if threads:
        config["multi-threading"] = {
            "enable-multi-threading": True,
            "thread-pool-size": threads,
            "packet-queue-size": 64,
        }
    else:
        config["multi-threading"] = {"enable-multi-threading": False}
    return {"Dhcp4": config}


@contextlib.contextmanager
def kea(
    lab: Lab,
    reservations: Mapping[str, str],
    *,
    port: str | None = None,
    options: PoolOptions | None = None,
    threads: int = 0,
    timeout: float = 15,
) -> Iterator[RunningServer]:
    """kea-dhcp4 in the server namespace (memfile, not persisted); stopped on exit."""
    exe = shutil.which("kea-dhcp4")
    if exe is None:
        raise LabError("kea-dhcp4 is not installed (kea-dhcp4-server)")
    the_port = lab.ports[port or next(iter(lab.ports))]
    for mac, ip in reservations.items():
        if ipaddress.IPv4Address(ip) not in the_port.address.network:
            raise LabError(f"reservation {mac} -> {ip} is outside {the_port.address.network}")
    with tempfile.TemporaryDirectory(prefix="kvip-kea-") as tmp:
        workdir = Path(tmp)
        conf = workdir / "kea-dhcp4.json"
        body = kea_config(
            the_port,
            reservations,
            options=options or PoolOptions(),
            workdir=workdir,
            threads=threads,
        )
        conf.write_text(json.dumps(body, indent=2))
        env = dict(os.environ, KEA_PIDFILE_DIR=tmp, KEA_LOCKFILE_DIR=tmp)
        check = run_in(lab.server, [exe, "-t", str(conf)], check=False, env=env)
        if check.returncode != 0:
            raise LabError(f"kea-dhcp4 -t rejected the config: {check.stdout}{check.stderr}")
        with open(workdir / "stdout.log", "wb") as out:
            proc = lab.popen(
                lab.server, [exe, "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT, env=env
            )
        try:
            _wait_bound(lab, proc, name="kea-dhcp4", timeout=timeout)
            yield RunningServer(name="kea", proc=proc, workdir=workdir)
        finally:
            stop_process(proc)
