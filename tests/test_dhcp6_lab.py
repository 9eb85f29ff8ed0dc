"""The lab's real DHCPv6 clients against the reference servers: each gets
exactly its reserved address with the DNS servers and search list, renews,
rebinds when its server is silent, and releases (tests/lab/dhcp6clients.py).
The DUID each client sends is pinned here: kvip finds reservations by it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.lab import netlab
from tests.lab.dhcp6checks import (
    DNSMASQ_POOL,
    DUID_TYPES,
    FAST,
    NETWORKD_POOL,
    POOLS,
    RESERVED,
    check_lease,
    eui64_link_local,
    need6,
    renew_rebind_release,
    runner_for,
    wire,
)
from tests.lab.dhcp6clients import Networkd6
from tests.lab.dhcp6servers import Pool6, dnsmasq6, kea6, kea6_leases, radvd
from tests.lab.dhcp6watch import (
    RELEASE,
    REQUEST,
    SOLICIT,
    wait_address,
)
from tests.lab.dhcpchecks import need
from tests.lab.router_adv import advertising

pytestmark = pytest.mark.netns

PREFIX = "kv6l"


@pytest.fixture(autouse=True, scope="module")
def _clear_crashed_runs() -> None:
    if netlab.is_root():
        netlab.cleanup_stale(PREFIX)


@pytest.mark.parametrize("name", ["dhclient", "dhcpcd", "dhcp6c"])
def test_client_gets_its_reservation_renews_rebinds_releases_with_kea(
    name: str, tmp_path: Path
) -> None:
    need6(name)
    need("kea-dhcp6")
    pool = POOLS.get(name, FAST)
    with (
        wire(PREFIX, name) as (lab, client, watch),
        kea6(lab, RESERVED, pool=pool) as kea,
        runner_for(name, client, tmp_path) as runner,
    ):
        lease = runner.lease(timeout=20)
        check_lease(lease, client, pool)
        first = watch.seen(client.mac, (SOLICIT, REQUEST))[0]
        assert first.duid_type == DUID_TYPES[name], first
        assert first.source == eui64_link_local(client.mac)
        assert [row["duid"] for row in kea6_leases(kea)] == [first.duid.hex(":")]
        renew_rebind_release(runner, client, watch, kea, pool)


@pytest.mark.parametrize("name", ["dhclient", "dhcpcd", "dhcp6c"])
def test_client_gets_its_reservation_and_releases_with_dnsmasq(name: str, tmp_path: Path) -> None:
    need6(name)
    need("dnsmasq")
    pool = DNSMASQ_POOL
    with (
        wire(PREFIX, name) as (lab, client, watch),
        dnsmasq6(lab, RESERVED, pool=pool),
        runner_for(name, client, tmp_path) as runner,
    ):
        check_lease(runner.lease(timeout=20), client, pool)
        released = time.monotonic()
        runner.release()
        watch.wait(client.mac, (RELEASE,), since=released, timeout=5)
        wait_address(client, None, timeout=5)


def test_networkd_starts_dhcpv6_on_radvd_s_advertisement(tmp_path: Path) -> None:
    """Kea 2.2 does not find a MAC reservation for networkd's default DUID-EN
    (it takes no MAC from the EUI-64 link-local source here), so networkd
    sends a DUID-LL in this test; its default is pinned with dnsmasq below."""
    need6("networkd")
    need("kea-dhcp6", "radvd")
    pool = NETWORKD_POOL
    with wire(PREFIX, "networkd") as (lab, client, watch), kea6(lab, RESERVED, pool=pool) as kea:
        runner = Networkd6(client, tmp_path / "networkd", duid_type="link-layer")
        with radvd(lab), runner:
            lease = runner.lease(timeout=25)
            check_lease(lease, client, pool)
            first = watch.seen(client.mac, (SOLICIT, REQUEST))[0]
            assert first.duid_type == "DUID-LL", first
            renew_rebind_release(runner, client, watch, kea, pool)


def test_networkd_starts_dhcpv6_on_kvip_s_advertisement_with_its_default_duid(
    tmp_path: Path,
) -> None:
    """networkd's default DUID-EN carries no MAC: dnsmasq finds the reservation
    by the client's MAC from its neighbour table; kvip by the frame's source."""
    need6("networkd")
    need("dnsmasq")
    pool = DNSMASQ_POOL
    with (
        wire(PREFIX, "networkd") as (lab, client, watch),
        dnsmasq6(lab, RESERVED, pool=pool),
        advertising(lab.server, pool.subnet),
        Networkd6(client, tmp_path / "networkd") as runner,
    ):
        check_lease(runner.lease(timeout=25), client, pool)
        first = watch.seen(client.mac, (SOLICIT, REQUEST))[0]
        assert first.duid_type == DUID_TYPES["networkd"], first
        assert first.mac == client.mac
        runner.stop()


@pytest.mark.parametrize("name", ["dhclient", "dhcpcd", "dhcp6c"])
def test_stop_ends_the_client_without_a_release(name: str, tmp_path: Path) -> None:
    need6(name)
    need("kea-dhcp6")
    with (
        wire(PREFIX, name) as (lab, client, watch),
        kea6(lab, RESERVED, pool=Pool6(), persist=False),
        runner_for(name, client, tmp_path) as runner,
    ):
        runner.lease(timeout=20)
        stopped = time.monotonic()
        runner.stop()
        assert not runner.alive()
        time.sleep(1.5)
        assert watch.seen(client.mac, (RELEASE,), since=stopped) == []
