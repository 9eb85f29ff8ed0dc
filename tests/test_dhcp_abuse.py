"""DHCP under abuse: valid clients keep their service while a flood of garbage
and random-MAC DISCOVERs (a starvation attempt) hits the same server.

One run measures perfdhcp's answered fraction alone and then beside a flood
at 10x its rate; it asserts behaviour (fractions, counters, what went out on
the wire, memory), never durations. Figures: python -m bench.abuse.
"""

from __future__ import annotations

import shutil

import pytest

from protocol import MessageType, decode
from tests.lab.abuse_rig import (
    SERVER_IP,
    Capture,
    Flood,
    ServerProcess,
    flood_client,
    mac_file,
    perfdhcp_client,
    reserved_mac,
)
from tests.lab.netlab import is_root, netlab
from tests.lab.perfdhcp import run_perfdhcp

RESERVATIONS = 500
RATE = 50  # DORA exchanges per second: modest, so that the flood is what counts
FLOOD_RATE = 10 * RATE * 2  # packets per second: 10x the valid packets (2 per exchange)
SECONDS = 5
#: RSS growth allowed across the flood (the reply cache and counters are bounded).
RSS_SLACK_KB = 10 * 1024

pytestmark = [pytest.mark.netns, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _needs_the_lab() -> None:
    if not is_root():
        pytest.skip("needs root for network namespaces")
    for tool in ("perfdhcp", "tcpdump"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is missing (apt-get install kea-admin tcpdump)")


def test_valid_clients_are_served_through_a_flood_and_no_stranger_gets_an_address() -> None:
    reserved = {reserved_mac(n) for n in range(RESERVATIONS)}
    with netlab("kvab") as lab, mac_file(RESERVATIONS) as macs:
        server = ServerProcess(lab, reservations=RESERVATIONS)
        valid, attacker = perfdhcp_client(lab), flood_client(lab)
        capture = Capture(lab)
        try:
            quiet = run_perfdhcp(valid, server=SERVER_IP, macs=macs, rate=RATE, seconds=SECONDS)
            before = server.stats()
            flood = Flood(lab, attacker, rate=FLOOD_RATE, seconds=SECONDS + 1, seed=7)
            loud = run_perfdhcp(valid, server=SERVER_IP, macs=macs, rate=RATE, seconds=SECONDS)
            flooded = flood.result()
            after = server.stats()
        finally:
            replies = capture.replies()
            server.stop()

    # The valid clients were served, with the flood about as well as without.
    assert quiet.discover.sent >= RATE * SECONDS // 2
    assert quiet.answered >= 0.95, quiet
    assert loud.answered >= 0.9 * quiet.answered, (quiet, loud)

    # The flood arrived and was accounted for: every garbage packet counted as
    # malformed, every random-MAC DISCOVER as an unknown MAC.
    assert flooded.garbage >= FLOOD_RATE * SECONDS // 3
    assert flooded.discovers >= FLOOD_RATE * SECONDS // 3
    was, now = before["counters"], after["counters"]
    assert now["malformed"] - was["malformed"] == flooded.garbage
    assert now["unknown_mac"] - was["unknown_mac"] == flooded.discovers

    # Nobody outside the reservations got an answer, let alone an address.
    assert replies, "the capture saw no replies"
    for payload in replies:
        reply = decode(payload)
        assert reply.mac in reserved, f"answered {reply.mac}"
        if reply.message_type in (MessageType.OFFER, MessageType.ACK):
            assert reply.yiaddr != 0
    assert sum(now["sent"].values()) == len(replies)

    # The flood left no memory behind.
    assert after["rss_kb"] - before["rss_kb"] <= RSS_SLACK_KB, (before, after)
