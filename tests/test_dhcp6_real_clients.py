"""Real DHCPv6 clients against kvip: dhclient -6, dhcpcd -6, wide-dhcpv6-client
(dhcp6c) and systemd-networkd each get exactly their reserved IPv6 address
with the DNS servers, search list and lifetimes of a dual-stack IPPool, renew,
rebind while kvip stands still, and release (networkd, which never releases,
is stopped). networkd starts DHCPv6 on an RA with the M flag, from radvd and
from kvip's own (`routeradvertisement: true`), and is known by the frame's
source MAC: its DUID-EN holds none.

The same runners and checks as tests/test_dhcp6_lab.py, where the reference
servers (kea-dhcp6, dnsmasq) pass them too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab import netlab
from tests.lab.dhcp6checks import (
    DUID_TYPES,
    check_lease,
    dual_stack_pool,
    need6,
    renew_rebind_release,
    reservations,
    runner_for,
    wire,
)
from tests.lab.dhcp6clients import Networkd6
from tests.lab.dhcp6servers import Pool6, radvd
from tests.lab.dhcp6watch import RELEASE, REQUEST, SOLICIT
from tests.lab.dhcpchecks import need
from tests.lab.poolrig import PoolRig, PoolSetup, serve_pools

pytestmark = pytest.mark.netns

PREFIX = "kv6k"
POOL_NAME = "kv6"
#: kvip's T1 and T2 are 0.5 and 0.8 of the preferred lifetime.
FAST = Pool6(preferred_lifetime=8, valid_lifetime=12, renew=4, rebind=6)
#: dhcp6c raises a T1 or T2 below 18 and 30 s.
SLOW = Pool6(preferred_lifetime=40, valid_lifetime=60, renew=20, rebind=32)
#: networkd (252) skips RENEW with a T1 of 2 s.
NETWORKD_POOL = Pool6(preferred_lifetime=20, valid_lifetime=30, renew=10, rebind=16)
POOLS = {"dhcp6c": SLOW, "networkd": NETWORKD_POOL}


@pytest.fixture(autouse=True, scope="module")
def _clear_crashed_runs() -> None:
    if netlab.is_root():
        netlab.cleanup_stale(PREFIX)


class StandingStill:
    """kvip paused like a stopped process: the pool's packet threads wait for the
    actor's lock, requests queue in the sockets and are answered afterwards."""

    def __init__(self, rig: PoolRig) -> None:
        self.actor = rig.actors[POOL_NAME]

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        with self.actor._lock:
            yield


def dhcp6_counters(rig: PoolRig) -> dict[str, Any]:
    state = rig.state(POOL_NAME)
    book6 = rig.actors[POOL_NAME].book.v6
    assert state.v6 is not None and book6 is not None
    return book6.responder.counters.as_dict()


@pytest.mark.parametrize("name", ["dhclient", "dhcpcd", "dhcp6c"])
def test_client_gets_its_reservation_renews_rebinds_releases(name: str, tmp_path: Path) -> None:
    need6(name)
    pool = POOLS.get(name, FAST)
    with (
        wire(PREFIX, name) as (lab, client, watch),
        serve_pools(lab, PoolSetup(dual_stack_pool(POOL_NAME, pool), reservations())) as rig,
        runner_for(name, client, tmp_path) as runner,
    ):
        check_lease(runner.lease(timeout=20), client, pool)
        first = watch.seen(client.mac, (SOLICIT, REQUEST))[0]
        assert first.duid_type == DUID_TYPES[name], first
        renew_rebind_release(runner, client, watch, StandingStill(rig), pool)
        received = dhcp6_counters(rig)["received"]
        assert received["RENEW"] >= 1 and received["REBIND"] >= 1 and received["RELEASE"] >= 1
        # Released, and still the VM's: the next SOLICIT gets it again.
        assert watch.seen(client.mac, (RELEASE,))


def test_networkd_starts_dhcpv6_on_radvd_s_advertisement(tmp_path: Path) -> None:
    need6("networkd")
    need("radvd")
    pool = NETWORKD_POOL
    with (
        wire(PREFIX, "networkd") as (lab, client, watch),
        serve_pools(lab, PoolSetup(dual_stack_pool(POOL_NAME, pool), reservations())) as rig,
        radvd(lab),
        Networkd6(client, tmp_path / "networkd") as runner,
    ):
        check_lease(runner.lease(timeout=25), client, pool)
        first = watch.seen(client.mac, (SOLICIT, REQUEST))[0]
        assert first.duid_type == "DUID-EN", first  # no MAC in it: kvip used the frame's
        renew_rebind_release(runner, client, watch, StandingStill(rig), pool)


def test_networkd_starts_dhcpv6_on_kvip_s_own_advertisement(tmp_path: Path) -> None:
    need6("networkd")
    pool = NETWORKD_POOL
    with (
        wire(PREFIX, "networkd") as (lab, client, watch),
        serve_pools(
            lab, PoolSetup(dual_stack_pool(POOL_NAME, pool, advertise=True), reservations())
        ),
        Networkd6(client, tmp_path / "networkd") as runner,
    ):
        check_lease(runner.lease(timeout=25), client, pool)
        assert watch.seen(client.mac, (SOLICIT, REQUEST))[0].duid_type == "DUID-EN"
        runner.stop()
