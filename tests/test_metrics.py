"""Prometheus metrics read a pool's numbers as of one moment.

The packet thread counts under `PoolActor._lock`; a scrape that read the
counters without it could see a histogram's buckets and sum (or a request's
received and sent counts) from different packets.
"""

from __future__ import annotations

import gc
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import fields
from ipaddress import IPv6Address
from types import SimpleNamespace
from typing import Any, cast

import pytest
import trio
import trio.testing
from prometheus_client import generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from kvip import __version__
from kvip.actors import ClaimAddress, ClaimAddress6, Controller, PoolActor, ServeReservation
from kvip.actors._status_render import NicStatus
from kvip.actors._supervisor import PoolHandle
from kvip.actors._vm_state import VmState
from kvip.actors._workqueue import WorkQueue
from kvip.app._metrics import KvipCollector, LogCounter, registry_for
from kvip.ipam import Owner
from kvip.k8s import ApiHealth, Unavailable
from kvip.serving import Counters
from protocol import Message, MessageType, Op, OptionCode, Options, encode
from protocol.dhcp6 import IANA, ClientId, DuidLL
from protocol.dhcp6 import Message as Message6
from protocol.dhcp6 import MessageType as MessageType6
from protocol.dhcp6 import encode as encode6
from tests.lab.pool_harness import FakeSocketFactory, dual_config, only6_config, pool_config

#: Every simulated reply takes exactly this long, so that sum = count * this.
LATENCY = 0.5


def controller_like(**fields: object) -> Controller:
    """What the collector reads of a Controller, without one running."""
    parts: dict[str, object] = dict(
        pools={}, states={}, queue=WorkQueue(), errors=Counter(),
        _pool_status=None, _cfg_status=None, _events=None,
    )  # fmt: skip
    parts.update(fields)
    return cast(Controller, SimpleNamespace(**parts))


def collector_for(actor: PoolActor) -> KvipCollector:
    handle = PoolHandle(actor.name, config=actor.config, actor=actor)
    controller = controller_like(pools={actor.name: handle})
    return KvipCollector(controller=lambda: controller, elector=None, logs=LogCounter())


def scraped(registry: object) -> dict[str, float]:
    """The registry's exposition text, parsed back: name{labels} -> value."""
    text = generate_latest(cast(Any, registry)).decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            label = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            found[f"{sample.name}{{{label}}}"] = sample.value
    return found


POOL_LABELS = ("ippool", "subnet", "network")


def samples(metrics: Iterator[Metric]) -> dict[str, float]:
    """name{labels} -> value, labels without the pool's own."""
    found: dict[str, float] = {}
    for metric in metrics:
        for sample in metric.samples:
            labels = {
                k: v for k, v in sample.labels.items() if k not in ("ippool", "subnet", "network")
            }
            label = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
            found[f"{sample.name}{{{label}}}"] = sample.value
    return found


def answer_packets(actor: PoolActor, count: int) -> None:
    """What the packet thread does per answered DISCOVER, under the same lock."""
    counters = actor.responder.counters
    for _ in range(count):
        with actor._lock:
            counters.received["DISCOVER"] += 1
            counters.sent["OFFER"] += 1
        with actor._lock:
            counters.latency.observe(LATENCY)


@pytest.fixture
def busy_switching() -> Iterator[None]:
    """Switch threads as often as CPython allows: interleavings a scrape can meet."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


@pytest.mark.usefixtures("busy_switching")
def test_a_scrape_reads_the_histogram_as_of_one_moment() -> None:
    actor = PoolActor(pool_config(), socket_factory=FakeSocketFactory())
    collector = collector_for(actor)
    packets = 20_000
    threads = [threading.Thread(target=answer_packets, args=(actor, packets)) for _ in range(2)]
    for thread in threads:
        thread.start()
    scrapes = 0
    try:
        while any(thread.is_alive() for thread in threads) or not scrapes:
            seen = samples(collector.collect())
            count = seen["kvip_dhcp_reply_latency_seconds_count{}"]
            total = seen["kvip_dhcp_reply_latency_seconds_sum{}"]
            buckets = seen["kvip_dhcp_reply_latency_seconds_bucket{le=+Inf}"]
            assert (count, total) == (buckets, count * LATENCY), scrapes
            received = seen.get("kvip_dhcp_received_total{type=DISCOVER}", 0)
            sent = seen.get("kvip_dhcp_sent_total{type=OFFER}", 0)
            assert count <= sent == received, scrapes
            scrapes += 1
    finally:
        for thread in threads:
            thread.join()
    seen = samples(collector.collect())
    assert seen["kvip_dhcp_reply_latency_seconds_count{}"] == 2 * packets


def test_every_count_is_a_metric() -> None:
    """Each count of Counters shows in kvip_dhcp_events. A count no metric shows
    is one nobody reads: Counters.stale was one, and nothing ever counted it
    (the packet thread cannot tell a packet's age; the small receive buffer
    of _dhcp_socket.py is what keeps requests from going stale)."""
    actor = PoolActor(pool_config(), socket_factory=FakeSocketFactory())
    counters = actor.responder.counters
    counts = [f.name for f in fields(Counters) if f.type == "int"]
    for value, name in enumerate(counts, start=1000):
        setattr(counters, name, value)
    exported = [
        sample.value
        for metric in collector_for(actor).collect()
        if metric.name == "kvip_dhcp_events"
        for sample in metric.samples
    ]
    assert sorted(exported) == list(range(1000, 1000 + len(counts)))


def test_a_snapshot_stays_as_it_was() -> None:
    actor = PoolActor(pool_config(), socket_factory=FakeSocketFactory())
    answer_packets(actor, 3)
    figures = actor.figures()
    answer_packets(actor, 2)
    assert (figures.counters.sent["OFFER"], figures.counters.latency.observations) == (3, 3)
    assert figures.counters.latency.total == 3 * LATENCY
    assert sum(figures.counters.latency.counts) == 3
    assert actor.responder.counters.latency.observations == 5
    assert (figures.used, figures.available) == (0, actor.allocator.capacity)


def test_the_api_server_unreachable_seconds_are_a_metric_on_every_replica() -> None:
    """Issue 12: a standby (no controller) shows it too, from the Kube's ApiHealth."""
    now = [100.0]
    health = ApiHealth(clock=lambda: now[0])
    registry = registry_for(controller=lambda: None, elector=None, logs=LogCounter(),
                            health=health)  # fmt: skip

    def scraped() -> float | None:
        return registry.get_sample_value("kvip_api_server_unreachable_seconds")

    assert scraped() == 0.0
    health.failed(Unavailable("API server unreachable: timed out"))
    now[0] += 42.5
    assert scraped() == 42.5
    assert b"kvip_api_server_unreachable_seconds 42.5" in generate_latest(registry)
    health.succeeded()
    assert scraped() == 0.0


def test_build_info_and_the_process_and_python_collectors() -> None:
    registry = registry_for(controller=lambda: None, elector=None, logs=LogCounter())
    before = scraped(registry)
    assert before[f"kvip_build_info{{version={__version__}}}"] == 1
    assert before["process_resident_memory_bytes{}"] > 0
    python = [key for key in before if key.startswith("python_info{")]
    assert len(python) == 1 and f"major={sys.version_info.major}," in python[0]
    gc.collect()
    after = scraped(registry)
    key = "python_gc_collections_total{generation=2}"
    assert after[key] >= before[key] + 1  # (the scrapes may collect too)


def test_the_work_queue_depth_and_how_long_a_vm_waited() -> None:
    async def main() -> None:
        queue = WorkQueue(clock=trio.current_time)
        registry = registry_for(controller=lambda: controller_like(queue=queue), elector=None,
                                logs=LogCounter())  # fmt: skip
        queue.add("ns/a")
        queue.add("ns/b")
        queue.add("ns/a")  # queued once
        assert scraped(registry)["kvip_workqueue_depth{}"] == 2
        await trio.sleep(3)
        assert await queue.get() == "ns/a"
        seen = scraped(registry)
        assert seen["kvip_workqueue_depth{}"] == 1
        assert seen["kvip_workqueue_wait_seconds_count{}"] == 1
        assert seen["kvip_workqueue_wait_seconds_sum{}"] == 3.0
        assert seen["kvip_workqueue_wait_seconds_bucket{le=1.0}"] == 0
        assert seen["kvip_workqueue_wait_seconds_bucket{le=5.0}"] == 1
        # Added again while a worker has it: it waits from this add, not the first.
        queue.add("ns/a")
        await trio.sleep(0.5)
        queue.done("ns/a")
        assert await queue.get() == "ns/b"
        assert await queue.get() == "ns/a"
        seen = scraped(registry)
        assert seen["kvip_workqueue_wait_seconds_count{}"] == 3
        assert seen["kvip_workqueue_wait_seconds_sum{}"] == 3.0 + 3.5 + 0.5
        assert seen["kvip_workqueue_depth{}"] == 0

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def nic(network: str, mac: str, *, ok: bool) -> NicStatus:
    return NicStatus(network, mac, ok, "" if ok else "declined", ip="198.18.0.10")


@pytest.mark.parametrize("per_nic", [True, False])
def test_the_per_nic_series_can_be_switched_off_and_the_counts_stay(per_nic: bool) -> None:
    states = {
        "ns/vm1": VmState(nics=[nic("ns/a", "02:00:00:00:00:01", ok=True)]),
        "ns/vm2": VmState(nics=[nic("ns/a", "02:00:00:00:00:02", ok=False),
                                nic("ns/b", "02:00:00:00:00:03", ok=True)]),
    }  # fmt: skip
    controller = controller_like(states=states)
    registry = registry_for(controller=lambda: controller, elector=None, logs=LogCounter(),
                            vmnetcfg_status=per_nic)  # fmt: skip
    seen = scraped(registry)
    assert seen["kvip_vmnetcfg_nics{status=OK}"] == 2
    assert seen["kvip_vmnetcfg_nics{status=ERROR}"] == 1
    per_nic_series = [k for k in seen if k.startswith("kubevirtiphelper_vmnetcfg_status")]
    assert len(per_nic_series) == (3 if per_nic else 0)
    if per_nic:
        key = ("kubevirtiphelper_vmnetcfg_status{ip=198.18.0.10,mac=02:00:00:00:00:02,"
               "network=ns/a,status=ERROR,vm=ns/vm2}")  # fmt: skip
        assert seen[key] == 1


def test_unknown_macs_heard_are_a_gauge_per_pool() -> None:
    """kvip_dhcp_unknown_macs: distinct MACs with no reservation among those the
    pool heard lately (its history), however often each one asked."""
    actor = PoolActor(pool_config(), socket_factory=FakeSocketFactory())
    for n in range(5):
        options = Options({OptionCode.MESSAGE_TYPE: MessageType.DISCOVER})
        hw = bytes.fromhex(f"0200000000{n:02x}")
        for xid in range(3):
            packet = encode(Message(op=Op.BOOTREQUEST, xid=xid, chaddr=hw, options=options))
            with actor._lock:
                assert actor.responder.handle(packet) is None
    found = samples(collector_for(actor).collect())
    assert found["kvip_dhcp_unknown_macs{}"] == 5
    assert found["kvip_dhcp_events_total{event=unknown_mac}"] == 15


def test_a_dual_stack_pool_shows_its_ipv6_range_and_dhcpv6_counts() -> None:
    """The IPv6 range is a second kubevirtiphelper_ippool_used/available series (its
    subnet tells it apart); DHCPv6 traffic has kvip_dhcp6_* metrics of its own."""
    actor = PoolActor(dual_config(), socket_factory=FakeSocketFactory())
    owner, mac = Owner("ns/vm [02:00:00:00:00:01]"), "02:00:00:00:00:01"
    ip = actor.handle_now(ClaimAddress(owner, mac))
    ip6 = actor.handle_now(ClaimAddress6(owner, mac))
    actor.handle_now(ServeReservation(mac, ip, ip6))
    solicit = Message6(
        msg_type=MessageType6.SOLICIT,
        transaction_id=1,
        options=(ClientId(DuidLL(1, bytes.fromhex("020000000001"))), IANA(iaid=1)),
    )
    book6 = actor.book.v6
    assert book6 is not None
    with actor._lock:
        reply = book6.responder.handle(encode6(solicit), 0.0, ("fe80::1", 546, 0, 1), None)
    assert reply is not None
    metrics = list(collector_for(actor).collect())
    used = {
        sample.labels["subnet"]: sample.value
        for metric in metrics
        if metric.name == "kubevirtiphelper_ippool_used"
        for sample in metric.samples
    }
    assert used == {"198.18.0.0/24": 1, "2001:db8:0:1::/64": 1}
    found = samples(iter(metrics))
    assert found["kvip_dhcp6_received_total{type=SOLICIT}"] == 1
    assert found["kvip_dhcp6_sent_total{type=ADVERTISE}"] == 1
    assert "kvip_dhcp_received_total{type=SOLICIT}" not in found
    assert ip6 == IPv6Address("2001:db8:0:1::10")


def test_an_ipv6_only_pool_shows_its_ipv6_range_alone() -> None:
    """No IPv4 series for a pool without ipv4config: used/available are its IPv6
    subnet's, and the DHCP counters stay empty."""
    actor = PoolActor(only6_config(), socket_factory=FakeSocketFactory())
    owner, mac = Owner("ns/vm [02:00:00:00:00:01]"), "02:00:00:00:00:01"
    assert actor.handle_now(ClaimAddress(owner, mac)) is None
    ip6 = actor.handle_now(ClaimAddress6(owner, mac))
    actor.handle_now(ServeReservation(mac, None, ip6))
    metrics = list(collector_for(actor).collect())
    series = {
        (metric.name, sample.labels["subnet"]): sample.value
        for metric in metrics
        if metric.name in ("kubevirtiphelper_ippool_used", "kubevirtiphelper_ippool_available")
        for sample in metric.samples
    }
    assert series == {
        ("kubevirtiphelper_ippool_used", "2001:db8:0:1::/64"): 1,
        ("kubevirtiphelper_ippool_available", "2001:db8:0:1::/64"): 16,
    }
    found = samples(iter(metrics))
    assert not [name for name in found if name.startswith("kvip_dhcp_received_total")]
