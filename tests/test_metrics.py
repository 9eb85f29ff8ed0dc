"""Prometheus metrics read a pool's numbers as of one moment.

The packet thread counts under `PoolActor._lock`; a scrape that read the
counters without it could see a histogram's buckets and sum (or a request's
received and sent counts) from different packets.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from dataclasses import fields
from types import SimpleNamespace
from typing import cast

import pytest
from prometheus_client import generate_latest
from prometheus_client.core import Metric

from kvip.actors import Controller, PoolActor
from kvip.actors._supervisor import PoolHandle
from kvip.app._metrics import KvipCollector, LogCounter, registry_for
from kvip.k8s import ApiHealth, Unavailable
from kvip.serving import Counters
from tests.lab.pool_harness import FakeSocketFactory, pool_config

#: Every simulated reply takes exactly this long, so that sum = count * this.
LATENCY = 0.5


def collector_for(actor: PoolActor) -> KvipCollector:
    handle = PoolHandle(actor.name, config=actor.config, actor=actor)
    controller = SimpleNamespace(pools={actor.name: handle}, states={})
    return KvipCollector(
        controller=lambda: cast(Controller, controller), elector=None, logs=LogCounter()
    )


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
