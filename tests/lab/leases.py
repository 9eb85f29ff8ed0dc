"""What the lab's DHCP client runners share: the ``Lease`` every runner returns,
parsers for the clients' ways of reporting it, the env-dumping hook script, and
running a client with a hard timeout in its namespace (``dhcpclients``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shlex
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.lab.netlab import Client, LabError, ns_argv

# Clients get a clean environment so the dumped env holds only what they set.
CLIENT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}
IPv4 = ipaddress.IPv4Address


class NoLeaseError(LabError):
    """The client finished or timed out without a lease."""


@dataclass(frozen=True, slots=True)
class Route:
    destination: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address


@dataclass(frozen=True, slots=True)
class Lease:
    """What a client reported it got, in one shape for every client."""

    client: str
    ip: ipaddress.IPv4Address
    mask: ipaddress.IPv4Address | None = None
    router: tuple[ipaddress.IPv4Address, ...] = ()
    dns: tuple[ipaddress.IPv4Address, ...] = ()
    domain: str | None = None
    search: tuple[str, ...] = ()
    lease_time: int | None = None
    t1: int | None = None
    t2: int | None = None
    mtu: int | None = None
    routes: tuple[Route, ...] = ()
    server_id: ipaddress.IPv4Address | None = None
    raw: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def prefixlen(self) -> int | None:
        if self.mask is None:
            return None
        return ipaddress.IPv4Network(f"0.0.0.0/{self.mask}").prefixlen


# --- parsing helpers -----------------------------------------------------------------


def addrs(value: str | None) -> tuple[ipaddress.IPv4Address, ...]:
    return tuple(IPv4(v) for v in (value or "").replace(",", " ").split())


def addr(value: str | None) -> ipaddress.IPv4Address | None:
    return IPv4(value) if value else None


def int_or_none(value: str | None, *, base: int = 10) -> int | None:
    return int(value, base) if value else None


def names(value: str | None) -> tuple[str, ...]:
    return tuple(n.rstrip(".") for n in (value or "").strip("'\"").split())


def pair_routes(value: str | None) -> tuple[Route, ...]:
    """``"net/len gw net/len gw"`` (udhcpc, dhcpcd) to routes."""
    words = (value or "").split()
    return tuple(
        Route(ipaddress.IPv4Network(words[i]), IPv4(words[i + 1])) for i in range(0, len(words), 2)
    )


def rfc3442_routes(value: str | None) -> tuple[Route, ...]:
    """dhclient's decimal byte dump of option 121 (RFC 3442 encoding) to routes."""
    data = [int(b) for b in (value or "").replace(",", " ").split()]
    routes, i = [], 0
    while i < len(data):
        width = data[i]
        octets = (width + 7) // 8
        dest = bytes(data[i + 1 : i + 1 + octets]).ljust(4, b"\0")
        gateway = bytes(data[i + 1 + octets : i + 5 + octets])
        net = ipaddress.IPv4Network((int.from_bytes(dest, "big"), width))
        routes.append(Route(net, IPv4(gateway)))
        i += 5 + octets
    return tuple(routes)


def read_env_dumps(directory: Path) -> list[tuple[str, dict[str, str]]]:
    """The hook's dumps, oldest first: (event, environment)."""
    dumps = []
    for path in sorted(directory.glob("*.env")):
        event = path.stem.split("-", 1)[1]
        env = {}
        for item in path.read_bytes().split(b"\0"):
            key, sep, value = item.decode(errors="replace").partition("=")
            if sep:
                env[key] = value
        dumps.append((event, env))
    return dumps


def last_event(directory: Path, events: Sequence[str]) -> dict[str, str] | None:
    found = [env for event, env in read_env_dumps(directory) if event in events]
    return found[-1] if found else None


def write_hook(directory: Path, *, event: str, configure: str = "") -> Path:
    """A hook script that dumps its env (NUL-separated) to ``directory`` per call."""
    dumps = directory / "dumps"
    dumps.mkdir(exist_ok=True)
    script = directory / "hook.sh"
    script.write_text(
        "#!/bin/sh\n"
        "# Written by kvip's tests: record the event, touch nothing outside the netns.\n"
        f"event={event}\n"
        # Written aside, then renamed: sessions read the dumps while the client runs.
        f'n=$(printf %03d "$(ls {shlex.quote(str(dumps))} | wc -l)")\n'
        f'env -0 > {shlex.quote(str(dumps))}/"$n".part'
        f' && mv {shlex.quote(str(dumps))}/"$n".part {shlex.quote(str(dumps))}/"$n-$event".env\n'
        f"{configure}\n"
        "exit 0\n"
    )
    script.chmod(0o755)
    return script


def run_client(
    client: Client, argv: Sequence[str], *, timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run a client to completion; on timeout kill its whole process group
    (hooks, forked helpers) and raise ``NoLeaseError``."""
    proc = subprocess.Popen(
        ns_argv(client.netns, argv),
        env=CLIENT_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        kill_group(proc)
        raise NoLeaseError(f"{argv[0]} in {client.netns}: no lease in {timeout}s") from exc
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def kill_group(proc: subprocess.Popen[Any]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def wait_event(
    work: Path, events: Sequence[str], *, proc: subprocess.Popen[Any], deadline: float
) -> dict[str, str] | None:
    """Poll the hook's dumps for one of ``events`` until ``deadline`` or the client exits."""
    seen = len(read_env_dumps(work / "dumps"))
    while time.monotonic() < deadline and proc.poll() is None:
        dumps = read_env_dumps(work / "dumps")[seen:]
        found = [env for event, env in dumps if event in events]
        if found:
            return found[-1]
        time.sleep(0.05)
    return None


@contextlib.contextmanager
def workdir_for(workdir: Path | None, prefix: str) -> Iterator[Path]:
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        yield workdir
    else:
        with tempfile.TemporaryDirectory(prefix=prefix, ignore_cleanup_errors=True) as tmp:
            yield Path(tmp)


def private_mounts(
    argv: Sequence[str], *, tmpfs: Sequence[str], hostname: str | None = None, ro_sys: bool = False
) -> list[str]:
    """Wrap ``argv`` to run in a private mount namespace (and a UTS namespace when
    ``hostname`` is given) with empty tmpfs over ``tmpfs`` dirs: what the client
    writes there vanishes with it and never reaches the host."""
    steps = [f"mount -t tmpfs tmpfs {shlex.quote(d)}" for d in tmpfs]
    if ro_sys:
        steps.append("mount -o remount,bind,ro /sys")
    if hostname:
        steps.append(f"hostname {shlex.quote(hostname)}")
    steps.append("exec " + shlex.join(argv))
    flags = ["-m", "--propagation", "private"] + (["-u"] if hostname else [])
    return ["unshare", *flags, "--", "sh", "-ec", " && ".join(steps)]
