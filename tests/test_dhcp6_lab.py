"""The lab's real DHCPv6 clients against the reference servers: each gets
exactly its reserved address with the DNS servers and search list, renews,
rebinds when its server is silent, and releases (tests/lab/dhcp6clients.py).
The DUID each client sends is pinned here: kvip finds reservations by it."""

from __future__ import annotations

import contextlib
import ipaddress
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab import netlab
from tests.lab.dhcp6clients import CLIENTS6, Client6, Networkd6
from tests.lab.dhcp6lab import enable_ipv6
from tests.lab.dhcp6servers import Pool6, Server6, dnsmasq6, kea6, kea6_leases, radvd, server_port6
from tests.lab.dhcp6watch import (
    REBIND,
    RELEASE,
    RENEW,
    REQUEST,
    SOLICIT,
    Lease6,
    RequestWatch,
    global_addresses,
    wait_address,
)
from tests.lab.dhcpchecks import need
from tests.lab.router_adv import advertising

pytestmark = pytest.mark.netns

PREFIX = "kv6l"
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


@pytest.fixture(autouse=True, scope="module")
def _clear_crashed_runs() -> None:
    if netlab.is_root():
        netlab.cleanup_stale(PREFIX)


@contextlib.contextmanager
def wire(name: str) -> Iterator[tuple[netlab.Lab, netlab.Client, RequestWatch]]:
    """A lab with the server port on IPv6 and one client namespace (IPv6, no DAD)."""
    with netlab.netlab(PREFIX) as lab:
        client = lab.add_client(MACS[name])
        server_port6(lab)
        enable_ipv6(client.netns, client.ifname)
        watch = RequestWatch(lab.server, "eth1")
        try:
            yield lab, client, watch
        finally:
            watch.close()


def _need(name: str) -> None:
    need("ip", "nsenter", "unshare")
    need({"networkd": "/lib/systemd/systemd-networkd"}.get(name, name))


def _check_lease(lease: Lease6, client: netlab.Client, pool: Pool6) -> None:
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


def _eui64_link_local(mac: str) -> ipaddress.IPv6Address:
    octets = bytearray.fromhex(mac.replace(":", ""))
    octets[0] ^= 0x02
    return ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + octets[:3] + b"\xff\xfe" + octets[3:])


def _runner(name: str, client: netlab.Client, tmp_path: Path) -> Client6:
    return CLIENTS6[name](client, tmp_path / name)


def _renew_rebind_release(
    runner: Client6, client: netlab.Client, watch: RequestWatch, server: Server6, pool: Pool6
) -> None:
    t1, t2 = TIMERS.get(runner.name, (pool.renew or 0, pool.rebind or 0))
    bound = time.monotonic()
    watch.wait(client.mac, (RENEW,), since=bound, timeout=t1 + 4)
    wait_address(client, ipaddress.IPv6Address(RESERVED[client.mac]), timeout=3)
    with server.paused():
        paused = time.monotonic()
        watch.wait(client.mac, (REBIND,), since=paused, timeout=t2 + 6)
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


@pytest.mark.parametrize("name", ["dhclient", "dhcpcd", "dhcp6c"])
def test_client_gets_its_reservation_renews_rebinds_releases_with_kea(
    name: str, tmp_path: Path
) -> None:
    _need(name)
    need("kea-dhcp6")
    pool = POOLS.get(name, FAST)
    with (
        wire(name) as (lab, client, watch),
        kea6(lab, RESERVED, pool=pool) as kea,
        _runner(name, client, tmp_path) as runner,
    ):
        lease = runner.lease(timeout=20)
        _check_lease(lease, client, pool)
        first = watch.seen(client.mac, (SOLICIT, REQUEST))[0]
        assert first.duid_type == DUID_TYPES[name], first
        assert first.source == _eui64_link_local(client.mac)
        assert [row["duid"] for row in kea6_leases(kea)] == [first.duid.hex(":")]
        _renew_rebind_release(runner, client, watch, kea, pool)


@pytest.mark.parametrize("name", ["dhclient", "dhcpcd", "dhcp6c"])
def test_client_gets_its_reservation_and_releases_with_dnsmasq(name: str, tmp_path: Path) -> None:
    _need(name)
    need("dnsmasq")
    pool = DNSMASQ_POOL
    with (
        wire(name) as (lab, client, watch),
        dnsmasq6(lab, RESERVED, pool=pool),
        _runner(name, client, tmp_path) as runner,
    ):
        _check_lease(runner.lease(timeout=20), client, pool)
        released = time.monotonic()
        runner.release()
        watch.wait(client.mac, (RELEASE,), since=released, timeout=5)
        wait_address(client, None, timeout=5)


def test_networkd_starts_dhcpv6_on_radvd_s_advertisement(tmp_path: Path) -> None:
    """Kea 2.2 does not find a MAC reservation for networkd's default DUID-EN
    (it takes no MAC from the EUI-64 link-local source here), so networkd
    sends a DUID-LL in this test; its default is pinned with dnsmasq below."""
    _need("networkd")
    need("kea-dhcp6", "radvd")
    pool = NETWORKD_POOL
    with wire("networkd") as (lab, client, watch), kea6(lab, RESERVED, pool=pool) as kea:
        runner = Networkd6(client, tmp_path / "networkd", duid_type="link-layer")
        with radvd(lab), runner:
            lease = runner.lease(timeout=25)
            _check_lease(lease, client, pool)
            first = watch.seen(client.mac, (SOLICIT, REQUEST))[0]
            assert first.duid_type == "DUID-LL", first
            _renew_rebind_release(runner, client, watch, kea, pool)


def test_networkd_starts_dhcpv6_on_kvip_s_advertisement_with_its_default_duid(
    tmp_path: Path,
) -> None:
    """networkd's default DUID-EN carries no MAC: dnsmasq finds the reservation
    by the client's MAC from its neighbour table; kvip by the frame's source."""
    _need("networkd")
    need("dnsmasq")
    pool = DNSMASQ_POOL
    with (
        wire("networkd") as (lab, client, watch),
        dnsmasq6(lab, RESERVED, pool=pool),
        advertising(lab.server, pool.subnet),
        Networkd6(client, tmp_path / "networkd") as runner,
    ):
        _check_lease(runner.lease(timeout=25), client, pool)
        first = watch.seen(client.mac, (SOLICIT, REQUEST))[0]
        assert first.duid_type == DUID_TYPES["networkd"], first
        assert first.mac == client.mac
        runner.stop()


@pytest.mark.parametrize("name", ["dhclient", "dhcpcd", "dhcp6c"])
def test_stop_ends_the_client_without_a_release(name: str, tmp_path: Path) -> None:
    _need(name)
    need("kea-dhcp6")
    with (
        wire(name) as (lab, client, watch),
        kea6(lab, RESERVED, pool=Pool6(), persist=False),
        _runner(name, client, tmp_path) as runner,
    ):
        runner.lease(timeout=20)
        stopped = time.monotonic()
        runner.stop()
        assert not runner.alive()
        time.sleep(1.5)
        assert watch.seen(client.mac, (RELEASE,), since=stopped) == []
