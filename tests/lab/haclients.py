"""Real DHCP clients kept running for the whole HA lab, and a watch on their addresses.

dhclient, dhcpcd and systemd-networkd run as daemons (foreground, started with
``Lab.popen`` so the lab stops them) in their client namespaces, renewing and
rebinding on their own. Each one puts the leased address on its interface
with the lease's lifetime, so an address that is not renewed in time leaves
the interface: ``AddressWatch`` samples the interfaces and says which client
was without its recorded address, and when. dhcpcd and networkd run in a
private mount namespace with tmpfs over what they write (as in dhcpclients);
dhclient's files live in a temp dir. Nothing here imports pytest.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path

from tests.lab.dhcpclients import DHCLIENT_CONF, DHCPCD_CONF, NETWORKD, networkd_unit
from tests.lab.leases import CLIENT_ENV, private_mounts, write_hook
from tests.lab.netlab import Client, Lab

# dhclient's own script would do the same: the address expires with the lease
# (valid_lft), and goes when the client says the lease is over.
DHCLIENT_CONFIGURE = """case "$reason" in
  BOUND|RENEW|REBIND|REBOOT)
    ip addr replace "$new_ip_address/$new_subnet_mask" dev "$interface" \\
      valid_lft "$new_dhcp_lease_time" preferred_lft "$new_dhcp_lease_time" ;;
  EXPIRE|FAIL|RELEASE|STOP)
    [ -z "$old_ip_address" ] || ip addr del "$old_ip_address/$old_subnet_mask" dev "$interface" ;;
esac"""


def available() -> dict[str, bool]:
    """Which of the lab's real clients this machine has (scripts/install-system-deps.sh)."""
    return {
        "dhclient": shutil.which("dhclient") is not None,
        "dhcpcd": shutil.which("dhcpcd") is not None,
        "systemd-networkd": Path(NETWORKD).exists(),
    }


def start_dhclient(lab: Lab, client: Client, work: Path) -> subprocess.Popen[bytes]:
    hook = write_hook(work, event='"$reason"', configure=DHCLIENT_CONFIGURE)
    conf = work / "dhclient.conf"
    # retry 1: after a failed INIT, try again a second later, not five minutes.
    conf.write_text(DHCLIENT_CONF.format(timeout=10) + "retry 1;\n")
    files = ["-sf", str(hook), "-cf", str(conf), "-lf", str(work / "leases")]
    argv = ["dhclient", "-d", *files, "-pf", str(work / "pid"), client.ifname]
    return _popen(lab, client, argv, work)


def start_dhcpcd(lab: Lab, client: Client, work: Path) -> subprocess.Popen[bytes]:
    hook = write_hook(work, event='"$reason"')
    conf = work / "dhcpcd.conf"
    conf.write_text(DHCPCD_CONF.format(arp="noarp"))
    argv = ["dhcpcd", "-4", "-B", "-f", str(conf), "-c", str(hook), client.ifname]
    return _popen(lab, client, private_mounts(argv, tmpfs=["/var/lib/dhcpcd", "/run"]), work)


def start_networkd(lab: Lab, client: Client, work: Path) -> subprocess.Popen[bytes]:
    net = work / "network"
    net.mkdir(exist_ok=True)
    (net / "50-lab.network").write_text(networkd_unit(client))
    machine_id = work / "machine-id"
    machine_id.write_text("4b7669704c61624d616368696e654964\n")
    # Container mode (read-only /sys): networkd does not wait for udev.
    script = (
        "mount -t tmpfs tmpfs /run/systemd && mount -t tmpfs tmpfs /etc/systemd/network"
        f" && mount --bind {shlex.quote(str(machine_id))} /etc/machine-id"
        f" && cp {shlex.quote(str(net))}/*.network /etc/systemd/network/"
        " && mount -o remount,bind,ro /sys && hostname vm-networkd"
        f" && exec {NETWORKD}"
    )
    argv = ["unshare", "-m", "-u", "--propagation", "private", "--", "sh", "-c", script]
    return _popen(lab, client, argv, work)


def _popen(lab: Lab, client: Client, argv: list[str], work: Path) -> subprocess.Popen[bytes]:
    log = (work / "client.log").open("wb")
    try:
        return lab.popen(client.netns, argv, env=CLIENT_ENV, stdout=log, stderr=log)
    finally:
        log.close()


STARTERS: dict[str, Callable[[Lab, Client, Path], subprocess.Popen[bytes]]] = {
    "dhclient": start_dhclient,
    "dhcpcd": start_dhcpcd,
    "systemd-networkd": start_networkd,
}


def addresses(client: Client) -> set[IPv4Address]:
    """The IPv4 addresses on ``client``'s interface now."""
    shown = subprocess.run(
        ["ip", "-n", client.netns, "-j", "-4", "addr", "show", "dev", client.ifname],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    found: set[IPv4Address] = set()
    for link in json.loads(shown.stdout or "[]"):
        for info in link.get("addr_info", []):
            found.add(IPv4Address(info["local"]))
    return found


@dataclass
class Watched:
    """One real client, its recorded address, and when it was seen without it."""

    name: str
    client: Client
    expected: IPv4Address
    process: subprocess.Popen[bytes]
    #: When the address was first seen on the interface (time.monotonic()).
    bound_at: float | None = None
    #: (time.monotonic(), present?) samples since it was first bound.
    samples: list[tuple[float, bool]] = field(default_factory=list)

    def lost_between(self, start: float, end: float) -> bool:
        return any(not ok for t, ok in self.samples if start <= t < end)

    def outages(self, start: float, end: float) -> list[tuple[float, float]]:
        """(from, to) spans between ``start`` and ``end`` (time.monotonic()) in
        which the samples found the address missing."""
        spans: list[tuple[float, float]] = []
        began: float | None = None
        for t, ok in self.samples:
            if not start <= t < end:
                continue
            if not ok and began is None:
                began = t
            elif ok and began is not None:
                spans.append((began, t))
                began = None
        if began is not None:
            spans.append((began, end))
        return spans

    def exited(self) -> int | None:
        return self.process.poll()


class AddressWatch:
    """Samples every watched client's interface every ``interval`` seconds in a
    thread, until ``stop()``."""

    def __init__(self, clients: list[Watched], *, interval: float = 0.5) -> None:
        self.clients = clients
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ha-addresses", daemon=True)

    def start(self) -> AddressWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            for watched in self.clients:
                try:
                    present = watched.expected in addresses(watched.client)
                except (subprocess.SubprocessError, ValueError):
                    continue
                now = time.monotonic()
                if present and watched.bound_at is None:
                    watched.bound_at = now
                if watched.bound_at is not None:
                    watched.samples.append((now, present))
            self._stop.wait(self.interval)

    def wait_bound(self, timeout: float, *, since: float | None = None) -> list[str]:
        """Wait until every client holds its address (in a sample taken after
        ``since``, a time.monotonic() value, if given); the names of those that do not."""

        def bound(w: Watched) -> bool:
            if since is None:
                return w.bound_at is not None
            last = w.samples[-1] if w.samples else None
            return last is not None and last[1] and last[0] >= since

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(bound(w) for w in self.clients):
                return []
            time.sleep(0.2)
        return [w.name for w in self.clients if not bound(w)]
