"""DHCPv6 without CAP_NET_RAW, as kvip's Deployment runs it: the packet socket
is refused, the pool reads requests from its UDP socket, says so once and
shows it, and real clients still get their reservations when their DUID
(dhclient -6: DUID-LLT) or their EUI-64 link-local address (systemd-networkd:
DUID-EN) names their MAC. A client with neither (networkd with a
stable-privacy link-local) gets nothing, and gets its reservation once the
process has CAP_NET_RAW again: the capability is the whole difference.

The real clients talk to kvip as a process of its own (bench.kvip_server)
started without CAP_NET_RAW; the pool actor's own behaviour is checked in
this process with the capability lowered in the thread that opens its sockets.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from kvip.actors import Dhcp6Mode, Dhcp6Wire, PoolActor, socket_factory_in
from kvip.app._debug import pools_view
from kvip.serving import eui64_mac, parse_ippool
from tests.lab import netlab
from tests.lab.capabilities import CAP_NET_RAW, lowered
from tests.lab.dhcp6checks import (
    check_lease,
    dual_stack_pool,
    need6,
    renew_rebind_release,
    reservations,
    runner_for,
    wire,
)
from tests.lab.dhcp6clients import Networkd6
from tests.lab.dhcp6lab import enable_ipv6, stable_privacy_link_local
from tests.lab.dhcp6servers import Pool6, radvd
from tests.lab.dhcp6watch import REQUEST, SOLICIT, global_addresses
from tests.lab.dhcpchecks import need
from tests.lab.pool_process import CAP_NET_RAW_BIT, PoolProcess, pool_process

pytestmark = pytest.mark.netns

PREFIX = "kv6u"
POOL_NAME = "kv6"
UDP_MODE = "reads requests without their frames"
#: kvip's T1 and T2 are 0.5 and 0.8 of the preferred lifetime (as in
#: tests/test_dhcp6_real_clients.py).
FAST = Pool6(preferred_lifetime=8, valid_lifetime=12, renew=4, rebind=6)
#: networkd (252) skips RENEW with a T1 of 2 s.
NETWORKD_POOL = Pool6(preferred_lifetime=20, valid_lifetime=30, renew=10, rebind=16)


@pytest.fixture(autouse=True, scope="module")
def _clear_crashed_runs() -> None:
    if netlab.is_root():
        netlab.cleanup_stale(PREFIX)


def unprivileged(server: PoolProcess) -> None:
    """The process really lacks CAP_NET_RAW, knows it, and said so."""
    assert not server.effective_capabilities() & CAP_NET_RAW_BIT
    server.wait_log(UDP_MODE)


# -- the pool actor -------------------------------------------------------------------


def test_a_pool_without_net_raw_reads_udp_says_so_once_and_shows_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Twice started (as after a pause or a crash), one warning; the Router
    Advertisements it cannot send are said with the capability they need,
    and DHCPv6 is served all the same."""
    need("ip")
    caplog.set_level(logging.INFO, logger="kvip")
    body = dual_stack_pool(POOL_NAME, FAST, advertise=True)
    views: list[dict[str, Any]] = []
    with netlab.netlab(PREFIX) as lab:
        enable_ipv6(lab.server, "eth1")
        actor = PoolActor(
            parse_ippool(body),
            socket_factory=socket_factory_in(lab.server),
            wire6=Dhcp6Wire(lab.server),
        )

        async def serve_once() -> None:
            async with trio.open_nursery() as nursery:
                await nursery.start(actor.run)
                with trio.fail_after(10):
                    while actor.dhcp6_mode is None:
                        await trio.sleep(0.02)
                assert actor.dhcp6_mode is Dhcp6Mode.UDP
                views.append(pools_view({POOL_NAME: actor}))
                nursery.cancel_scope.cancel()

        with lowered(CAP_NET_RAW):  # this thread opens the pool's sockets
            trio.run(serve_once)
            trio.run(serve_once)
    assert [view["pools"][0]["dhcp6"] for view in views] == ["udp", "udp"]
    said = [r for r in caplog.records if UDP_MODE in r.getMessage()]
    assert [r.levelno for r in said] == [logging.WARNING]
    assert "DUID-EN" in said[0].getMessage() and "stable-privacy" in said[0].getMessage()
    advertising = [
        r.getMessage() for r in caplog.records if "Router Advertisements" in r.getMessage()
    ]
    assert advertising and all("needs CAP_NET_RAW" in m for m in advertising)
    assert not any("cannot answer DHCPv6" in r.getMessage() for r in caplog.records)


# -- real clients against an unprivileged kvip process ---------------------------------


def test_dhclient6_gets_its_reservation_renews_rebinds_releases_without_net_raw(
    tmp_path: Path,
) -> None:
    need6("dhclient")
    need("setpriv")
    with (
        wire(PREFIX, "dhclient") as (lab, client, watch),
        pool_process(
            lab, dual_stack_pool(POOL_NAME, FAST), reservations(), net_raw=False
        ) as server,
        runner_for("dhclient", client, tmp_path) as runner,
    ):
        unprivileged(server)
        check_lease(runner.lease(timeout=20), client, FAST)
        first = watch.seen(client.mac, (SOLICIT, REQUEST))[0]
        assert first.duid_type == "DUID-LLT", first  # its MAC is in it
        renew_rebind_release(runner, client, watch, server, FAST)
        counters = server.stop()["v6"]
    assert counters["unknown_mac"] == 0
    received = counters["received"]
    assert received["RENEW"] >= 1 and received["REBIND"] >= 1 and received["RELEASE"] >= 1


def test_networkd_with_duid_en_is_known_by_its_eui64_link_local_without_net_raw(
    tmp_path: Path,
) -> None:
    """networkd (DUID-EN: no MAC) starts DHCPv6 on radvd's RA; kvip, which
    cannot see its frames, knows it by its link-local address. kvip's own
    RA cannot go out without CAP_NET_RAW, so radvd sends it, as a router would."""
    need6("networkd")
    need("radvd", "setpriv")
    pool = NETWORKD_POOL
    with (
        wire(PREFIX, "networkd") as (lab, client, watch),
        pool_process(
            lab, dual_stack_pool(POOL_NAME, pool), reservations(), net_raw=False
        ) as server,
        radvd(lab),
        Networkd6(client, tmp_path / "networkd") as runner,
    ):
        unprivileged(server)
        check_lease(runner.lease(timeout=25), client, pool)
        first = watch.seen(client.mac, (SOLICIT, REQUEST))[0]
        assert first.duid_type == "DUID-EN", first
        assert eui64_mac(first.source.packed) == bytes.fromhex(client.mac.replace(":", ""))
        renew_rebind_release(runner, client, watch, server, pool)
        assert server.stop()["v6"]["unknown_mac"] == 0


@pytest.mark.parametrize("net_raw", [False, True], ids=["without-net-raw", "with-net-raw"])
def test_duid_en_and_a_stable_privacy_link_local_need_net_raw(
    tmp_path: Path, net_raw: bool
) -> None:
    """Neither its DUID nor its address names networkd's MAC: without
    CAP_NET_RAW it is an unknown client and gets no answer; with it, the
    frames name it and it gets its reservation."""
    need6("networkd")
    need("radvd", "setpriv")
    pool = NETWORKD_POOL
    with (
        wire(PREFIX, "networkd") as (lab, client, watch),
        pool_process(
            lab, dual_stack_pool(POOL_NAME, pool), reservations(), net_raw=net_raw
        ) as server,
        radvd(lab),
    ):
        stable_privacy_link_local(client.netns, client.ifname)
        with Networkd6(client, tmp_path / "networkd") as runner:
            if net_raw:
                assert server.effective_capabilities() & CAP_NET_RAW_BIT
                check_lease(runner.lease(timeout=25), client, pool)
            else:
                unprivileged(server)
                watch.wait(client.mac, (SOLICIT,), timeout=25)
                # networkd sends its SOLICIT again after about 1, 2 and 4 s.
                watch.wait(client.mac, (SOLICIT,), since=time.monotonic() + 2, timeout=10)
                assert runner.replies() == 0 and not global_addresses(client)
        first = watch.seen(client.mac, (SOLICIT,))[0]
        assert first.duid_type == "DUID-EN", first
        assert first.source.is_link_local and eui64_mac(first.source.packed) is None
        counters = server.stop()["v6"]
    if net_raw:
        assert counters["unknown_mac"] == 0
    else:
        assert counters["unknown_mac"] >= 2 and not counters["sent"]
    assert server.log().count(UDP_MODE) == (0 if net_raw else 1)
