"""What kvip tells about DHCP on a pool's wire: per-MAC history, logs, /debug.

Real clients (udhcpc) and hand-made packets on a lab wire, a PoolActor serving
it through its packet thread, and the probe server's /debug endpoints in the
actors' own trio thread, read over HTTP on loopback.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address
from typing import Any

import pytest
import trio
from prometheus_client.registry import CollectorRegistry

from kvip.actors._packet_log import UNKNOWN_MAC_LINES
from kvip.app._http import ProbeServer
from kvip.app._logging import JsonFormatter
from kvip.serving import mac_bytes
from protocol import Message, MessageType, Op, OptionCode, Options, encode
from tests.lab.dhcpchecks import SERVER, mac, need, no_lease, open_lab, plug
from tests.lab.dhcpclients import run_udhcpc
from tests.lab.dhcpsend import broadcast_raw
from tests.lab.netlab import Lab
from tests.lab.objects import ippool
from tests.lab.poolrig import PoolRig, PoolSetup, Reserved, run_parallel, serve_pools

pytestmark = pytest.mark.netns

PACKET_LOGGER = "kvip.actors._packet_thread"


@pytest.fixture
def lab() -> Iterator[Lab]:
    with open_lab() as the_lab:
        yield the_lab


def start_probes(rig: PoolRig) -> str:
    """A ProbeServer on 127.0.0.1 in the pools' trio thread (as `kvip run` has
    it); its base URL."""
    probes = ProbeServer(
        registry=CollectorRegistry(),
        ready=lambda: (True, "ok"),
        address="127.0.0.1",
        port=0,
        pools=lambda: rig.actors,
    )
    trio.from_thread.run_sync(
        lambda: trio.lowlevel.spawn_system_task(probes.run), trio_token=rig._token
    )
    wait_for(lambda: probes.bound_port is not None, "the probe server did not start")
    return f"http://127.0.0.1:{probes.bound_port}"


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def packet_lines(caplog: pytest.LogCaptureFixture, pool: str) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == PACKET_LOGGER and r.levelno == logging.DEBUG and r.__dict__.get("pool") == pool
    ]


def unknown_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.levelno == logging.INFO and "a MAC with no reservation" in r.getMessage()
    ]


def test_a_vm_and_an_unknown_mac_in_history_logs_and_debug_endpoint(
    lab: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    need("udhcpc")
    caplog.set_level(logging.DEBUG, logger="kvip")
    nic = Reserved(mac(1), "198.18.0.77", "vm-why")
    client = plug(lab, nic.mac)
    stranger = plug(lab, mac(0x77))
    with serve_pools(lab, PoolSetup(ippool("diag", options="full"), (nic,))) as rig:
        lease, _ = run_parallel(
            lambda: run_udhcpc(client, timeout=10), lambda: no_lease(run_udhcpc, stranger)
        )
        # More from the stranger: it is logged once all the same.
        before = rig.counters("diag")["unknown_mac"]
        again = [discover_from(mac_bytes(mac(0x77)), 0x7700 + n) for n in range(3)]
        assert broadcast_raw(stranger, again) == 3
        rig.wait_until("diag", lambda s: s.counters["unknown_mac"] == before + 3)
        base = start_probes(rig)
        known = get(f"{base}/debug/mac/{nic.mac.upper().replace(':', '-')}")
        unknown = get(f"{base}/debug/mac/{mac(0x77)}")
        nobody = get(f"{base}/debug/mac/{mac(0x99).replace(':', '%3A')}")
        bad = get(f"{base}/debug/mac/not-a-mac")
        pools = get(f"{base}/debug/pools")
        heard = rig.taps["diag"].received_messages()
    assert lease is not None and lease.ip == IPv4Address(nic.ip)
    from_stranger = [m for _, m in heard if m.chaddr == mac_bytes(mac(0x77))]
    assert len(from_stranger) >= 4

    status, body = known
    assert status == 200 and body["mac"] == nic.mac
    (pool,) = body["pools"]
    assert pool["pool"] == "diag" and pool["server_ip"] == str(SERVER) and pool["serving"]
    assert pool["reservation"] == {
        "owner": nic.owner, "ip": nic.ip, "ip6": None, "hostname": "vm-why", "serving": True,
        "declined": False,
    }  # fmt: skip
    assert not pool["unknown"]
    history = pool["history"]
    assert pool["count"] == len(history) == len(heard) - len(from_stranger)
    assert [(h["received"], h["answer"], h["ip"]) for h in history[-2:]] == [
        ("DISCOVER", "OFFER", nic.ip),
        ("REQUEST", "ACK", nic.ip),
    ]
    assert all(h["time"].endswith("+00:00") and h["xid"].startswith("0x") for h in history)

    status, body = unknown
    assert status == 200
    (pool,) = body["pools"]
    assert pool["reservation"] is None and pool["unknown"]
    assert pool["count"] == len(from_stranger)
    assert {(h["received"], h["answer"], h["reason"]) for h in pool["history"]} == {
        ("DISCOVER", None, "unknown_mac")
    }
    assert [int(h["xid"], 16) for h in pool["history"]] == [m.xid for m in from_stranger][-8:]
    assert nobody == (200, {"mac": mac(0x99), "pools": []})
    assert bad[0] == 400
    assert pools == (
        200,
        {
            "pools": [
                {
                    "pool": "diag",
                    "network": "default/diag-net",
                    "subnet": "198.18.0.0/16",
                    "subnet6": None,
                    "interface": "eth1",
                    "server_ip": str(SERVER),
                    "serving": True,
                    "paused": False,
                    "unknown_macs": 1,
                    "dhcp6": None,  # an IPv4-only pool
                }
            ]
        },
    )

    # The first sighting of the unknown MAC is logged once, at INFO.
    (line,) = unknown_lines(caplog)
    assert line.__dict__["mac"] == mac(0x77) and line.__dict__["pool"] == "diag"
    # At DEBUG, one line per packet (written after the packet), with its fields
    # for JSON logs.
    wait_for(lambda: len(packet_lines(caplog, "diag")) >= len(heard), "packet lines")
    lines = packet_lines(caplog, "diag")
    assert len(lines) == len(heard)
    offers = [r for r in lines if r.__dict__["answer"] == "OFFER"]
    assert offers and offers[0].getMessage().endswith(f"OFFER {nic.ip}")
    entry = json.loads(JsonFormatter().format(offers[0]))
    assert entry["pool"] == "diag" and entry["mac"] == nic.mac and entry["ip"] == nic.ip
    assert (entry["message_type"], entry["answer"]) == ("DISCOVER", "OFFER")
    assert entry["xid"].startswith("0x") and "reason" not in entry
    silent = json.loads(JsonFormatter().format(next(r for r in lines if r.__dict__["reason"])))
    assert (silent["mac"], silent["reason"], silent["message_type"]) == (
        mac(0x77),
        "unknown_mac",
        "DISCOVER",
    )


def discover_from(hw: bytes, xid: int) -> bytes:
    options = Options({OptionCode.MESSAGE_TYPE: MessageType.DISCOVER})
    return encode(Message(op=Op.BOOTREQUEST, xid=xid, chaddr=hw, options=options))


def test_a_flood_of_unknown_macs_is_counted_but_logs_only_a_few_lines(
    lab: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kvip")
    flood = 3 * UNKNOWN_MAC_LINES
    sender = plug(lab, mac(0x3FF))
    macs = [bytes.fromhex(f"02aa0000{n:04x}") for n in range(flood)]
    with serve_pools(lab, PoolSetup(ippool("flood", options="bare"), ())) as rig:
        assert broadcast_raw(sender, [discover_from(hw, n) for n, hw in enumerate(macs)]) == flood
        rig.wait_until("flood", lambda s: s.counters["unknown_mac"] == flood)
        actor = rig.actors["flood"]
        figures = actor.figures()
        histories = [actor.heard_from(":".join(f"{b:02x}" for b in hw))[0] for hw in macs]
    assert figures.unknown_macs == flood
    assert all(h is not None and h[0] == 1 and h[2] for h in histories)
    lines = unknown_lines(caplog)
    assert len(lines) == UNKNOWN_MAC_LINES
    # No per-packet lines at INFO.
    assert not packet_lines(caplog, "flood")
