"""More ways to talk DHCP inside a lab, beside the one-shot runners of dhcpclients.

- ``udhcpc_session``, ``dhclient_session``: a client kept running in the
  foreground, so that it renews and rebinds like a real VM's client;
- ``relay_exchange``: one hand-built relayed request from a socket at giaddr:67;
- ``broadcast_raw``: arbitrary bytes broadcast to port 67 from a client's wire.

Everything runs in lab namespaces; nothing here imports pytest.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from protocol import DecodeError, Message, decode, encode
from tests.lab.dhcpclients import (
    DHCLIENT_CONF,
    Lease,
    NoLeaseError,
    dhclient_lease,
    udhcpc_lease,
)
from tests.lab.leases import CLIENT_ENV, read_env_dumps
from tests.lab.netlab import Client, Lab, LabError, inside, run_in, stop_process

SERVER_PORT = 67
CLIENT_PORT = 68


# --- clients kept running -----------------------------------------------------------

_SESSION_HOOK = """#!/bin/sh
# Written by kvip's tests: record the event; set the address inside the client netns only.
event={event}
# Written aside, then renamed: the test reads the dumps while the client runs.
n=$(printf %03d "$(ls {dumps} | wc -l)")
env -0 > {dumps}/"$n".part && mv {dumps}/"$n".part {dumps}/"$n-$event".env
{configure}
exit 0
"""

_UDHCPC_CONFIGURE = """case "$event" in
  bound|renew) ip addr replace "$ip/$mask" dev "$interface" ;;
  deconfig) ip addr flush dev "$interface" ;;
esac"""

_DHCLIENT_CONFIGURE = """case "$event" in
  BOUND|RENEW|REBIND|REBOOT) ip addr replace "$new_ip_address/$new_subnet_mask" dev "$interface" ;;
esac"""


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
        dumps = work / "dumps"
        dumps.mkdir()
        hook = work / "hook.sh"
        hook.write_text(_SESSION_HOOK.format(event=event, dumps=dumps, configure=configure))
        hook.chmod(0o755)
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

    with _running(lab, client, argv, event='"$1"', configure=_UDHCPC_CONFIGURE) as running:
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

    with _running(lab, client, argv, event='"$reason"', configure=_DHCLIENT_CONFIGURE) as running:
        yield ClientSession(client, *running, dhclient_lease)


# --- hand-made packets -------------------------------------------------------------


def relay_exchange(
    client: Client, request: Message, *, server: str, timeout: float = 3.0
) -> Message | None:
    """Act as a relay agent on ``client``: send ``request`` (giaddr set, an address
    of ``client``) from giaddr:67 to ``server``:67 and return the first reply
    that arrives at giaddr:67 (RFC 2131 4.1), or None after ``timeout`` seconds."""
    with inside(client.netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        sock.bind((str(request.giaddr), SERVER_PORT))
        sock.settimeout(timeout)
        sock.sendto(encode(request), (server, SERVER_PORT))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = sock.recv(4096)
            except TimeoutError:
                return None
            with contextlib.suppress(DecodeError):
                reply = decode(data)
                if reply.xid == request.xid:
                    return reply
    return None


def broadcast_raw(client: Client, payloads: Iterable[bytes]) -> int:
    """Broadcast each payload to 255.255.255.255:67 from ``client``'s interface
    (as a client without an address does); returns how many were sent."""
    with inside(client.netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent = 0
    with sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, client.ifname.encode())
        sock.bind(("0.0.0.0", CLIENT_PORT))
        for payload in payloads:
            sock.sendto(payload, ("255.255.255.255", SERVER_PORT))
            sent += 1
    return sent


def wait_for_wire(lab: Lab, client: Client, *, timeout: float = 5.0) -> None:
    """Wait until ``client``'s veth is a forwarding port of its server bridge.

    The bridge enables a port when it learns of the carrier, which the kernel
    reports lazily (up to a second after the link comes up): real clients
    retransmit through that, a test's single hand-made packet would be lost.
    """
    shown = run_in(client.netns, ["ip", "-j", "link", "show", "dev", client.ifname]).stdout
    peer = json.loads(shown)[0]["link_index"]  # the server end's ifindex
    bridge = lab.ports[client.port].bridge if client.port in lab.ports else client.port
    deadline = time.monotonic() + timeout
    while True:
        listing = run_in(lab.server, ["ip", "-j", "-d", "link", "show", "master", bridge]).stdout
        for port in json.loads(listing):
            slave = port.get("linkinfo", {}).get("info_slave_data", {})
            if port["ifindex"] == peer and slave.get("state") == "forwarding":
                return
        if time.monotonic() > deadline:
            raise LabError(f"{client.netns}: its bridge port never started forwarding")
        time.sleep(0.02)
