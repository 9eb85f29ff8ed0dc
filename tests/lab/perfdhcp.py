"""Kea's perfdhcp in a lab: one runner for tests and the abuse rig, load steps
for the benchmarks, and one reader of its report.

perfdhcp acts as a relay (it sends from its own address, port 67, with giaddr
set, and expects replies at giaddr:67), so it can load a static-reservation
server from one namespace with many MACs (``-M``). We always run it with
``-g single`` on a core of its own: in its default two-thread mode on one
core its own socket overflows long before a good server does. perfdhcp -6
(``perfdhcp6_argv``) is a client instead, on the link: its report has the same
shape, SOLICIT-ADVERTISE and REQUEST-REPLY in the places of the two DHCPv4
exchanges.

Latency: perfdhcp's summary has only min/avg/max/stddev, but ``-x t`` prints,
for every successful exchange, the send and receive timestamps of both
requests. Percentiles here are computed from those: one sample per request
(DISCOVER->OFFER and REQUEST->ACK pooled), measured by the generator, so they
include its own receive delay and the wire, and they cover only answered
requests (the unanswered ones are the drops).
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.lab.netlab import Client, Lab, run_in, stop_process

_EXCHANGES = r"(DISCOVER-OFFER|REQUEST-ACK|SOLICIT-ADVERTISE|REQUEST-REPLY)"
_STATS = re.compile(rf"\*\*\*Statistics for: {_EXCHANGES}\*\*\*")
_TIMES = re.compile(rf"\*\*\*Timestamps for packets: {_EXCHANGES}\*\*\*")
#: perfdhcp -6 names its two exchanges SOLICIT-ADVERTISE and REQUEST-REPLY:
#: the report keeps them in the places of DISCOVER-OFFER and REQUEST-ACK.
_SECTION = {"SOLICIT-ADVERTISE": "DISCOVER-OFFER", "REQUEST-REPLY": "REQUEST-ACK"}
_FIELD = re.compile(r"^(sent packets|received packets|drops): (\d+)$")
_STAMP = re.compile(r"^sent / received: ([\d.]+) / ([\d.]+)$")
#: Beyond the step itself: start-up, the drop timer (-d 1) and printing the timers.
GRACE_SECONDS = 20.0


class PerfdhcpError(Exception):
    """perfdhcp failed, hung, or printed a report we cannot read."""


@dataclass(frozen=True, slots=True)
class Exchange:
    """perfdhcp's counters for one request type (DISCOVER-OFFER or REQUEST-ACK)."""

    sent: int
    received: int
    drops: int


@dataclass(frozen=True, slots=True)
class Report:
    discover: Exchange
    request: Exchange
    #: Round-trip times in seconds of every answered request (with ``-x t``), sorted.
    delays: tuple[float, ...] = ()
    returncode: int = 0
    #: How long perfdhcp was asked to send (``-p``), 0 when it was a count (``-n``).
    seconds: float = 0.0
    output: str = ""

    @property
    def completed(self) -> int:
        """Full DORA exchanges: every ACK ends one."""
        return self.request.received

    @property
    def answered(self) -> float:
        """Exchanges completed (ACKed) per exchange started."""
        return self.completed / self.discover.sent if self.discover.sent else 0.0

    @property
    def served_rate(self) -> float:
        """Completed exchanges per second of the run (``seconds`` must be set)."""
        return self.completed / self.seconds

    @property
    def drop_ratio(self) -> float:
        """Exchanges started but lost at either step (perfdhcp's -d timer ran out)."""
        if not self.discover.sent:
            return 0.0
        return (self.discover.drops + self.request.drops) / self.discover.sent

    def percentile(self, q: float) -> float:
        """Nearest-rank q-quantile of the delays, in seconds (0.0 without samples)."""
        if not self.delays:
            return 0.0
        rank = max(1, min(len(self.delays), round(q * len(self.delays) + 0.5)))
        return self.delays[rank - 1]


def parse_report(text: str, *, returncode: int = 0, seconds: float = 0.0) -> Report:
    """perfdhcp's statistics (and ``-x t`` timestamps). A run without offers may
    print no REQUEST-ACK section: its counts are then zero."""
    stats: dict[str, dict[str, int]] = {}
    delays: list[float] = []
    section: str | None = None
    timing = False
    for line in text.splitlines():
        line = line.strip()
        if match := _STATS.match(line):
            section, timing = _SECTION.get(match.group(1), match.group(1)), False
            stats[section] = {}
            continue
        if match := _TIMES.match(line):
            section, timing = _SECTION.get(match.group(1), match.group(1)), True
            continue
        if line.startswith("***"):
            section = None
            continue
        if section is None:
            continue
        if timing:
            if match := _STAMP.match(line):
                delays.append(float(match.group(2)) - float(match.group(1)))
        elif match := _FIELD.match(line):
            stats[section][match.group(1)] = int(match.group(2))
    if "DISCOVER-OFFER" not in stats:
        raise PerfdhcpError(f"no statistics in perfdhcp's report:\n{text[-2000:]}")
    stats.setdefault("REQUEST-ACK", {"sent packets": 0, "received packets": 0, "drops": 0})
    try:
        discover, request = (
            Exchange(
                sent=stats[name]["sent packets"],
                received=stats[name]["received packets"],
                drops=stats[name]["drops"],
            )
            for name in ("DISCOVER-OFFER", "REQUEST-ACK")
        )
    except KeyError as exc:
        raise PerfdhcpError(f"no {exc} in perfdhcp's report:\n{text[-2000:]}") from exc
    return Report(
        discover=discover,
        request=request,
        delays=tuple(sorted(delays)),
        returncode=returncode,
        seconds=seconds,
        output=text,
    )


def run_perfdhcp(
    client: Client,
    *,
    server: str,
    macs: Sequence[str] | Path,
    local: str | None = None,
    rate: int = 20,
    exchanges: int | None = None,
    seconds: int | None = None,
) -> Report:
    """perfdhcp in ``client``'s namespace as a relay (giaddr: ``local``, an address
    on ``client``, or the address of its interface) to ``server``, one DORA per
    request at ``rate``, MACs from ``macs`` (a list, or a file of one a line):
    ``exchanges`` of them (20 unless ``seconds`` is given) or for ``seconds``.
    It waits a second after the last request so that late replies are counted,
    not dropped."""
    if exchanges is None and seconds is None:
        exchanges = 20
    with tempfile.NamedTemporaryFile("w", prefix="kvip-perfdhcp-", suffix=".macs") as f:
        if isinstance(macs, Path):
            mac_file = macs
        else:
            f.write("".join(f"{mac}\n" for mac in macs))
            f.flush()
            mac_file = Path(f.name)
        argv = ["perfdhcp", "-4", "-g", "single", "-l", local or client.ifname]
        argv += ["-M", str(mac_file), "-r", str(rate)]
        if exchanges is not None:
            argv += ["-n", str(exchanges)]
        if seconds is not None:
            argv += ["-p", str(seconds)]
        if not isinstance(macs, Path):
            argv += ["-R", str(len(macs))]
        argv += ["-W", "1000000", server]
        result = run_in(client.netns, argv, timeout=(seconds or 0) + 30, check=False)
    if result.returncode not in (0, 3):  # 3: some exchanges were not completed
        raise PerfdhcpError(f"perfdhcp exited {result.returncode}: {result.stderr[-2000:]}")
    return parse_report(result.stdout, returncode=result.returncode, seconds=seconds or 0.0)


def perfdhcp_argv(
    *,
    interface: str,
    mac_file: Path,
    rate: int,
    seconds: float,
    server: str,
    prefix: Sequence[str],
) -> list[str]:
    return [
        *prefix,
        "perfdhcp", "-4", "-l", interface, "-M", str(mac_file),
        "-r", str(rate), "-p", f"{seconds:g}", "-d", "1",
        "-x", "t", "-g", "single", server,
    ]  # fmt: skip


def perfdhcp6_argv(
    *,
    interface: str,
    mac_file: Path,
    rate: int,
    seconds: float,
    prefix: Sequence[str],
) -> list[str]:
    """perfdhcp -6 as a client on ``interface``: SOLICIT/ADVERTISE then
    REQUEST/REPLY to ff02::1:2 from its link-local address, one DUID-LL a
    client built from a MAC of ``mac_file`` picked at random each exchange."""
    return [
        *prefix,
        "perfdhcp", "-6", "-l", interface, "-M", str(mac_file),
        "-r", str(rate), "-p", f"{seconds:g}", "-d", "1",
        "-x", "t", "-g", "single", "all",
    ]  # fmt: skip


def run_step(
    lab: Lab, netns: str, argv: Sequence[str], *, seconds: float, output: Path
) -> tuple[Report, float]:
    """Run one perfdhcp step in ``netns``; it is killed if it overruns its time box.

    Returns the report and the seconds perfdhcp spent runnable but waiting for
    its core (schedstat, sampled until it exits): when the generator waits,
    every server's latency looks worse.
    """
    queued = 0.0
    with output.open("w") as out:
        proc = lab.popen(netns, argv, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + seconds + GRACE_SECONDS
        try:
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    raise PerfdhcpError(f"perfdhcp overran {seconds + GRACE_SECONDS:g}s")
                # ip netns exec, nice and taskset all exec: the pid is perfdhcp's.
                with contextlib.suppress(OSError, IndexError, ValueError):
                    stat = Path(f"/proc/{proc.pid}/schedstat").read_text()
                    queued = int(stat.split()[1]) / 1e9
                time.sleep(0.1)
        finally:
            stop_process(proc)
    text = output.read_text(errors="replace")
    if proc.returncode not in (0, 3):  # 3: the test ended with drops
        raise PerfdhcpError(f"perfdhcp exited {proc.returncode}:\n{text[-2000:]}")
    return parse_report(text), queued
