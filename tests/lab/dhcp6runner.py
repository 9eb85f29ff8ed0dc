"""The shape every lab DHCPv6 client runner shares (dhcp6clients.py): a
daemon in a client namespace that reports a ``Lease6``, counts the REPLYs it
took, releases or stops on request, and is killed with its process group."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.lab.dhcp6watch import Lease6, wait_address
from tests.lab.leases import CLIENT_ENV, NoLeaseError, last_event, read_env_dumps
from tests.lab.netlab import Client, LabError, ns_argv

IPv6 = ipaddress.IPv6Address


def addresses(value: str | None) -> tuple[ipaddress.IPv6Address, ...]:
    return tuple(IPv6(v) for v in (value or "").replace(",", " ").split())


def names(value: str | None) -> tuple[str, ...]:
    return tuple(n.rstrip(".") for n in (value or "").strip("'\"").split())


def int_or_none(value: str | None) -> int | None:
    return int(value) if value else None


class Client6:
    """One DHCPv6 client daemon in ``client``'s namespace (a context manager)."""

    name = ""
    bound_events: tuple[str, ...] = ()
    #: Whether ``release()`` can make the client send RELEASE.
    releases = True

    def __init__(self, client: Client, workdir: Path) -> None:
        self.client = client
        self.work = workdir
        self.work.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.work / f"{self.name}.log"

    def argv(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                ns_argv(self.client.netns, self.argv()),
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def env(self) -> dict[str, str]:
        return dict(CLIENT_ENV)

    def __enter__(self) -> Client6:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def events(self) -> list[str]:
        return [event for event, _ in read_env_dumps(self.work / "dumps")]

    def lease(self, *, timeout: float = 20) -> Lease6:
        """Wait for the client to report a lease and hold its address."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.reported()
            if found is not None:
                wait_address(self.client, found.address, timeout=deadline - time.monotonic())
                return found
            if not self.alive():
                break
            time.sleep(0.1)
        raise NoLeaseError(f"{self.name} in {self.client.netns}: no lease\n{self.output()[-3000:]}")

    def reported(self) -> Lease6 | None:
        """The lease the client last reported, None before it has one."""
        env = last_event(self.work / "dumps", self.bound_events)
        return None if env is None else self.parse(env)

    def parse(self, env: Mapping[str, str]) -> Lease6:
        raise NotImplementedError

    def replies(self) -> int:
        """How many REPLYs carrying its lease the client has acted on so far."""
        return sum(1 for event in self.events() if event in self.bound_events)

    def release(self, *, timeout: float = 10) -> None:
        """Have the client send RELEASE; it ends (and drops the address)."""
        raise NotImplementedError

    def stop(self, *, timeout: float = 5) -> None:
        """End the client without releasing (SIGTERM where that does not release)."""
        self._signal(signal.SIGTERM, timeout=timeout)

    def _signal(self, sig: signal.Signals, *, timeout: float) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise LabError(f"{self.name} did not end on {sig.name}") from None

    def kill(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(5)

    def in_mounts(self, argv: Sequence[str], *, timeout: float = 10) -> str:
        """Run ``argv`` in the client's namespaces (its private /run), as root."""
        if self.proc is None:
            raise LabError(f"{self.name} is not running")
        pid = str(self.proc.pid)
        result = subprocess.run(
            ["nsenter", "-t", pid, "-m", "-n", "-u", "--", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=CLIENT_ENV,
        )
        if result.returncode != 0:
            raise LabError(f"{shlex.join(argv)}: {result.stdout}{result.stderr}")
        return result.stdout

    def read_private(self, path: str) -> bytes:
        """A file the client wrote in its private mounts (/proc/PID/root)."""
        if self.proc is None:
            raise LabError(f"{self.name} is not running")
        return Path(f"/proc/{self.proc.pid}/root{path}").read_bytes()


def private_daemon(argv: Sequence[str], *, tmpfs: Sequence[str], hostname: str) -> list[str]:
    """``argv`` exec'd in fresh mount and UTS namespaces with tmpfs over
    ``tmpfs``: the daemon keeps the pid, so nsenter finds its /run."""
    steps = [f"mount -t tmpfs tmpfs {shlex.quote(d)}" for d in tmpfs]
    steps += [f"hostname {shlex.quote(hostname)}", "exec " + shlex.join(argv)]
    return [
        "unshare",
        "-m",
        "--propagation",
        "private",
        "-u",
        "--",
        "sh",
        "-ec",
        " && ".join(steps),
    ]
