"""What the DHCPv6 real-client tests share, against whichever server: the
clients' MACs and reserved addresses, the lifetimes that make them renew and
rebind within a test, a lab wire per client, and the checks of a lease, a
renewal, a rebinding and a release (tests/test_dhcp6_lab.py against the
reference servers, tests/test_dhcp6_real_clients.py against kvip)."""

from __future__ import annotations

import contextlib
import ipaddress
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from tests.lab import netlab
from tests.lab.dhcp6clients import CLIENTS6, Client6
from tests.lab.dhcp6lab import enable_ipv6
from tests.lab.dhcp6servers import Pool6, server_port6
from tests.lab.dhcp6watch import (
    REBIND,
    RELEASE,
    RENEW,
    Lease6,
    RequestWatch,
    global_addresses,
    wait_address,
)
from tests.lab.dhcpchecks import need
from tests.lab.objects import ippool
from tests.lab.poolrig import Reserved


class Pausable(Protocol):
    def paused(self) -> contextlib.AbstractContextManager[None]:
        """The server answers nothing for the block; requests wait, then are answered."""
        ...


MACS = {
    "dhclient": "52:54:00:06:00:11",
    "dhcpcd": "52:54:00:06:00:12",
    "dhcp6c": "52:54:00:06:00:13",
    "networkd": "52:54:00:06:00:14",
}
RESERVED = {mac: f"2001:db8:0:1::{0x100 + i:x}" for i, mac in enumerate(MACS.values())}

#: Short timers so renewing and rebinding happen within a test.
FAST = Pool6(preferred_lifetime=8, valid_lifetime=12, renew=2, rebind=4)
#: dhcp6c raises a T1 or T2 it finds too small to 18 and 30 s: its address
#: must outlive that.
SLOW = Pool6(preferred_lifetime=40, valid_lifetime=60, renew=2, rebind=4)
#: With T1 2 s networkd (252) goes from renew to rebind without sending RENEW.
NETWORKD_POOL = Pool6(preferred_lifetime=20, valid_lifetime=30, renew=5, rebind=12)
#: dnsmasq's one lease time is both lifetimes.
DNSMASQ_POOL = Pool6(preferred_lifetime=3600, valid_lifetime=3600)
POOLS = {"dhcp6c": SLOW, "networkd": NETWORKD_POOL}
#: When each client renews and rebinds under FAST and SLOW (T1, T2 as it uses them).
TIMERS = {"dhcp6c": (18, 30)}
#: What each client sends as its DUID (option 1) in this lab, as observed.
DUID_TYPES = {
    "dhclient": "DUID-LLT",
    "dhcpcd": "DUID-LLT",
    "dhcp6c": "DUID-LLT",
    "networkd": "DUID-EN",
}


@contextlib.contextmanager
def wire(prefix: str, name: str) -> Iterator[tuple[netlab.Lab, netlab.Client, RequestWatch]]:
    """A lab with the server port on IPv6 and one client namespace (IPv6, no DAD)."""
    with netlab.netlab(prefix) as lab:
        client = lab.add_client(MACS[name])
        server_port6(lab)
        enable_ipv6(client.netns, client.ifname)
        watch = RequestWatch(lab.server, "eth1")
        try:
            yield lab, client, watch
        finally:
            watch.close()


def need6(name: str) -> None:
    need("ip", "nsenter", "unshare")
    need({"networkd": "/lib/systemd/systemd-networkd"}.get(name, name))


def check_lease(lease: Lease6, client: netlab.Client, pool: Pool6) -> None:
    assert lease.address == ipaddress.IPv6Address(RESERVED[client.mac])
    assert lease.dns == tuple(ipaddress.IPv6Address(a) for a in pool.dns)
    assert lease.search == pool.search
    held = {a.address: a for a in global_addresses(client)}
    assert set(held) == {lease.address}  # exactly the reserved address, nothing made up
    on_link = held[lease.address]
    if lease.client == "dhcp6c":  # infinite on the interface, the real ones kept to itself
        assert (on_link.valid_left, on_link.preferred_left) == (None, None)
        assert (lease.preferred_lifetime, lease.valid_lifetime) == (
            pool.preferred_lifetime,
            pool.valid_lifetime,
        )
        return
    assert on_link.valid_left is not None and on_link.preferred_left is not None
    assert 0 < on_link.preferred_left <= pool.preferred_lifetime
    assert on_link.preferred_left <= on_link.valid_left <= pool.valid_lifetime
    assert on_link.valid_left >= pool.valid_lifetime - 3  # just granted
    if lease.valid_lifetime is not None and lease.client != "networkd":
        assert lease.valid_lifetime == pool.valid_lifetime
        assert lease.preferred_lifetime == pool.preferred_lifetime


def eui64_link_local(mac: str) -> ipaddress.IPv6Address:
    octets = bytearray.fromhex(mac.replace(":", ""))
    octets[0] ^= 0x02
    return ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + octets[:3] + b"\xff\xfe" + octets[3:])


def runner_for(name: str, client: netlab.Client, tmp_path: Path) -> Client6:
    return CLIENTS6[name](client, tmp_path / name)


def renew_rebind_release(
    runner: Client6, client: netlab.Client, watch: RequestWatch, server: Pausable, pool: Pool6
) -> None:
    t1, t2 = TIMERS.get(runner.name, (pool.renew or 0, pool.rebind or 0))
    bound = time.monotonic()
    watch.wait(client.mac, (RENEW,), since=bound, timeout=t1 + 4)
    wait_address(client, ipaddress.IPv6Address(RESERVED[client.mac]), timeout=3)
    with server.paused():
        paused = time.monotonic()
        # T2 runs from the last REPLY: the RENEW's, when it came just before the
        # pause, and else the lease's. Room for either, and for a loaded machine
        # (a run in CI waited t2 + 6 s in vain, once; the wait ends at the REBIND).
        watch.wait(client.mac, (REBIND,), since=paused, timeout=t1 + t2 + 10)
        replies = runner.replies()
    # The REBIND, queued while the server stood still, is answered and taken.
    deadline = time.monotonic() + 5
    while runner.replies() == replies:
        assert time.monotonic() < deadline, f"{runner.name} took no REPLY after its REBIND"
        time.sleep(0.1)
    held = global_addresses(client)
    assert [a.address for a in held] == [ipaddress.IPv6Address(RESERVED[client.mac])]
    if not runner.releases:
        runner.stop()
        assert not runner.alive()
        return
    released = time.monotonic()
    runner.release()
    watch.wait(client.mac, (RELEASE,), since=released, timeout=5)
    wait_address(client, None, timeout=5)


def dual_stack_pool(name: str, pool: Pool6, *, advertise: bool = False) -> dict[str, Any]:
    """A dual-stack IPPool body for kvip whose IPv6 half hands out what `pool`
    says (its range holds every lab reservation)."""
    ipv6config = {
        "subnet": str(pool.subnet),
        "pool": {"start": "2001:db8:0:1::100", "end": "2001:db8:0:1::1ff"},
        "dns": list(pool.dns),
        "domainsearch": list(pool.search),
        "preferredlifetime": pool.preferred_lifetime,
        "validlifetime": pool.valid_lifetime,
        "routeradvertisement": advertise,
    }
    return ippool(name, options="full", ipv6config=ipv6config)


def reservations() -> tuple[Reserved, ...]:
    """Every lab client's IPv4 and IPv6 reservation, as kvip's VM NICs."""
    return tuple(
        Reserved(mac, f"198.18.0.{10 + n}", f"vm-{name}", ip6=RESERVED[mac])
        for n, (name, mac) in enumerate(MACS.items())
    )
