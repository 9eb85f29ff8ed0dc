"""The servers under test, each started alone on one CPU in the lab's server namespace.

kvip runs as its own process (``python -m bench.kvip_server``). Kea and
dnsmasq get the same configuration builders as the lab's reference servers
(tests/lab/dhcpservers.py), with per-packet logging turned down: a benchmark of
how fast a server writes its log would say nothing about DHCP. Each process
is started through ``taskset -c CPU`` (``ip netns exec`` and ``taskset`` both
exec, so the pid we hold is the server's own) and its threads inherit the pin.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.lab import objects
from tests.lab.dhcpservers import PoolOptions, dnsmasq_config, kea_config
from tests.lab.netlab import Lab, LabError, Port, run_in, stop_process

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 20.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    workdir: Path

    def cpu_seconds(self) -> float:
        """utime + stime of the whole process (all its threads, live and exited)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        # After the ")" closing comm: state is field 3, so utime (14) and stime (15)
        # are at offsets 11 and 12.
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def runqueue_seconds(self) -> float:
        """Time the server's threads spent runnable but waiting for a CPU
        (/proc/PID/task/*/schedstat, second field): what other jobs on its core cost it."""
        total = 0
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            with contextlib.suppress(OSError, IndexError, ValueError):
                total += int((task / "schedstat").read_text().split()[1])
        return total / 1e9

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise LabError(f"{self.name} exited with {self.proc.returncode}")


def pinned(cpu: int, *, nice: int) -> list[str]:
    """The argv prefix that runs a command on one core at a raised priority.

    This machine is shared: without a raised priority the other jobs on the
    core would set every latency figure. ``nice`` and ``taskset`` both exec.
    """
    return ["nice", "-n", str(nice), "taskset", "-c", str(cpu)]


def _wait_bound(lab: Lab, server: Server, *, expect_comm: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        server.check_alive()
        out = run_in(lab.server, ["ss", "-Hlun", "sport = :67"], check=False).stdout
        if out.strip():
            comm = Path(f"/proc/{server.proc.pid}/comm").read_text().strip()
            if not comm.startswith(expect_comm):
                raise LabError(f"pid {server.proc.pid} is {comm!r}, not {expect_comm}")
            return
        time.sleep(0.05)
    raise LabError(f"{server.name} did not bind port 67 in {START_TIMEOUT}s")


def ippool_body(port: Port, *, options: PoolOptions) -> dict[str, Any]:
    """The IPPool object that makes kvip hand out what the reference servers do."""
    net = port.address.network
    return objects.ippool(
        "bench",
        "bench/net",
        options="bare",
        interface=port.ifname,
        server=str(port.address.ip),
        subnet=str(net),
        start=str(net.network_address + 1),
        end=str(net.broadcast_address - 1),
        leasetime=options.lease_time,
        router=options.router or None,
        dns=list(options.dns) or None,
        domainname=options.domain or None,
        domainsearch=list(options.search) or None,
        mtu=options.mtu or None,
        routes=[{"destination": d, "gateway": g} for d, g in options.routes] or None,
    )


@contextlib.contextmanager
def kvip(
    lab: Lab, reservations: Mapping[str, str], *, options: PoolOptions, cpu: int, nice: int
) -> Iterator[Server]:
    port = next(iter(lab.ports.values()))
    with tempfile.TemporaryDirectory(prefix="kvip-bench-") as tmp:
        workdir = Path(tmp)
        config = workdir / "kvip.json"
        rows = [[mac, ip, f"vm{i}"] for i, (mac, ip) in enumerate(reservations.items())]
        config.write_text(
            json.dumps({"ippool": ippool_body(port, options=options), "reservations": rows})
        )
        argv = [*pinned(cpu, nice=nice), sys.executable, "-m", "bench.kvip_server",
                "--config", str(config)]  # fmt: skip
        with open(workdir / "server.log", "wb") as log:
            proc = lab.popen(lab.server, argv, stdout=subprocess.PIPE, stderr=log, cwd=REPO)
        server = Server("kvip", proc, workdir)
        try:
            _wait_ready(server)
            yield server
        finally:
            stop_process(proc)
            if proc.stdout is not None:
                tail = proc.stdout.read().decode(errors="replace").strip()
                (workdir / "counters.json").write_text(tail)
                print(f"    kvip counters: {tail[-600:]}", flush=True)


def _wait_ready(server: Server) -> None:
    """kvip prints 'ready' once its socket is open."""
    assert server.proc.stdout is not None
    ready, _, _ = select.select([server.proc.stdout], [], [], START_TIMEOUT)
    line = server.proc.stdout.readline().decode().strip() if ready else ""
    if line != "ready":
        server.check_alive()
        raise LabError(f"kvip did not start in {START_TIMEOUT}s (printed {line!r})")


@contextlib.contextmanager
def kea(
    lab: Lab,
    reservations: Mapping[str, str],
    *,
    options: PoolOptions,
    cpu: int,
    nice: int,
    threads: int,
) -> Iterator[Server]:
    exe = shutil.which("kea-dhcp4")
    if exe is None:
        raise LabError("kea-dhcp4 is not installed (kea-dhcp4-server)")
    port = next(iter(lab.ports.values()))
    with tempfile.TemporaryDirectory(prefix="kvip-bench-kea-") as tmp:
        workdir = Path(tmp)
        body = kea_config(port, reservations, options=options, workdir=workdir, threads=threads)
        for logger in body["Dhcp4"]["loggers"]:  # type: ignore[index]
            logger["severity"] = "WARN"  # INFO logs every lease handed out
        conf = workdir / "kea-dhcp4.json"
        conf.write_text(json.dumps(body, indent=2))
        env = dict(os.environ, KEA_PIDFILE_DIR=tmp, KEA_LOCKFILE_DIR=tmp)
        check = run_in(lab.server, [exe, "-t", str(conf)], check=False, env=env)
        if check.returncode != 0:
            raise LabError(f"kea-dhcp4 -t rejected the config: {check.stdout}{check.stderr}")
        with open(workdir / "stdout.log", "wb") as out:
            proc = lab.popen(
                lab.server,
                [*pinned(cpu, nice=nice), exe, "-c", str(conf)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        name = f"kea-mt{threads}" if threads else "kea-st"
        server = Server(name, proc, workdir)
        try:
            _wait_bound(lab, server, expect_comm="kea-dhcp4")
            yield server
        finally:
            stop_process(proc)


@contextlib.contextmanager
def dnsmasq(
    lab: Lab, reservations: Mapping[str, str], *, options: PoolOptions, cpu: int, nice: int
) -> Iterator[Server]:
    exe = shutil.which("dnsmasq")
    if exe is None:
        raise LabError("dnsmasq is not installed (dnsmasq-base)")
    port = next(iter(lab.ports.values()))
    with tempfile.TemporaryDirectory(prefix="kvip-bench-dnsmasq-") as tmp:
        workdir = Path(tmp)
        text = dnsmasq_config(port, reservations, options=options, workdir=workdir)
        # log-dhcp writes several lines per packet: that would measure the logger.
        lines = [line for line in text.splitlines() if line != "log-dhcp"]
        conf = workdir / "dnsmasq.conf"
        conf.write_text("\n".join(lines) + "\n")
        with open(workdir / "server.log", "wb") as log:
            proc = lab.popen(
                lab.server,
                [
                    *pinned(cpu, nice=nice),
                    exe,
                    "--keep-in-foreground",
                    "--log-facility=-",
                    f"--conf-file={conf}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = Server("dnsmasq", proc, workdir)
        try:
            _wait_bound(lab, server, expect_comm="dnsmasq")
            yield server
        finally:
            stop_process(proc)
