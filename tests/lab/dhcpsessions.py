"""Real DHCP clients kept running in a lab, beside the one-shot runners of dhcpclients.

``udhcpc_session``, ``dhclient_session``: a client in the foreground that renews
and rebinds on its own like a real VM's client, its events recorded by the same
hook as the one-shot runners' (leases.write_hook) while it runs.

Everything runs in lab namespaces; nothing here imports pytest.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from tests.lab.dhcpclients import (
    DHCLIENT_CONF,
    DHCLIENT_CONFIGURE,
    UDHCPC_CONFIGURE,
    dhclient_lease,
    udhcpc_lease,
)
from tests.lab.leases import CLIENT_ENV, Lease, NoLeaseError, read_env_dumps, write_hook
from tests.lab.netlab import Client, Lab, stop_process


class ClientSession:
    """A DHCP client running in the foreground: it binds, then renews at T1 and
    rebinds at T2 on its own. Its hook configures the address in the client
    namespace (renewals go out from it) and records each event."""

    def __init__(
        self,
        client: Client,
        process: subprocess.Popen[bytes],
        dumps: Path,
        parse: Callable[[Mapping[str, str]], Lease],
    ) -> None:
        self.client = client
        self.process = process
        self._dumps = dumps
        self._parse = parse

    def events(self) -> list[tuple[str, dict[str, str]]]:
        return read_env_dumps(self._dumps)

    def wait_for(
        self, names: Iterable[str], *, after: int = 0, timeout: float = 10.0
    ) -> tuple[int, Lease]:
        """The first event among ``names`` at index >= ``after``: (index, lease).
        NoLeaseError when the client exits or none comes within ``timeout`` seconds."""
        wanted = set(names)
        deadline = time.monotonic() + timeout
        while True:
            for index, (event, env) in enumerate(self.events()):
                if index >= after and event in wanted:
                    return index, self._parse(env)
            if self.process.poll() is not None:
                raise NoLeaseError(f"client exited {self.process.returncode}: {self.events()}")
            if time.monotonic() > deadline:
                raise NoLeaseError(f"no {sorted(wanted)} in {timeout}s: {self.events()}")
            time.sleep(0.05)


class UdhcpcSession(ClientSession):
    """busybox udhcpc without -q. It renews at half the lease, and enforces a
    16 s minimum lease, so tests make it renew with a signal."""

    def renew(self) -> None:
        """SIGUSR1: renew now (RFC 2131 4.4.5 RENEWING: a unicast REQUEST)."""
        self.process.send_signal(signal.SIGUSR1)

    def release(self) -> None:
        """SIGUSR2: RELEASE the lease (RFC 2131 4.4.6) and wait, unconfigured;
        a later ``renew`` starts over with a DISCOVER.

        (busybox 1.35's ``-q -R`` exits without releasing: it quits before it
        counts itself bound. A running udhcpc releases.)"""
        self.process.send_signal(signal.SIGUSR2)


@contextlib.contextmanager
def _running(
    lab: Lab, client: Client, argv: Callable[[Path, Path], list[str]], *, event: str, configure: str
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    with tempfile.TemporaryDirectory(prefix="kvip-session-") as tmp:
        work = Path(tmp)
        hook = write_hook(work, event=event, configure=configure)
        dumps = work / "dumps"
        process = lab.popen(
            client.netns,
            argv(work, hook),
            env=CLIENT_ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield process, dumps
        finally:
            stop_process(process, grace=5)


@contextlib.contextmanager
def udhcpc_session(
    lab: Lab, client: Client, *, extra_args: Sequence[str] = ()
) -> Iterator[UdhcpcSession]:
    """Run udhcpc on ``client`` for the block; it is stopped (SIGTERM) after."""

    def argv(work: Path, hook: Path) -> list[str]:
        return [
            *("udhcpc", "-f", "-t", "5", "-T", "1", "-A", "1", "-i", client.ifname),
            *("-s", str(hook), "-O", "58", "-O", "59", *extra_args),
        ]

    with _running(lab, client, argv, event='"$1"', configure=UDHCPC_CONFIGURE) as running:
        yield UdhcpcSession(client, *running, udhcpc_lease)


@contextlib.contextmanager
def dhclient_session(lab: Lab, client: Client) -> Iterator[ClientSession]:
    """Run ISC dhclient in the foreground (-d) on ``client`` for the block; it
    renews at the server's T1 (option 58). Stopped with SIGTERM (no RELEASE)."""

    def argv(work: Path, hook: Path) -> list[str]:
        conf = work / "dhclient.conf"
        conf.write_text(DHCLIENT_CONF.format(timeout=20))
        files = ["-sf", str(hook), "-cf", str(conf), "-lf", str(work / "leases")]
        return ["dhclient", "-d", *files, "-pf", str(work / "pid"), client.ifname]

    with _running(lab, client, argv, event='"$reason"', configure=DHCLIENT_CONFIGURE) as running:
        yield ClientSession(client, *running, dhclient_lease)
