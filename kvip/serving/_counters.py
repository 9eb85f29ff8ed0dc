"""Per-pool DHCP counters and the reply-latency histogram.

Plain integers in the pool's Responder. The pool's packet thread counts under
`PoolActor._lock`; anyone else reads a `snapshot()` taken under that lock
(`PoolActor.figures()` for metrics, `Inspect` for status), never the live
object, or one reading could mix two packets (a histogram's count and sum).
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field, replace

#: Upper bounds of the latency buckets, in seconds (Prometheus style, +Inf last).
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    float("inf"),
)


@dataclass(slots=True)
class LatencyHistogram:
    """Cumulative-free bucket counts; `observe` is O(log buckets)."""

    bounds: tuple[float, ...] = LATENCY_BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))
    total: float = 0.0
    observations: int = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.total += seconds
        self.observations += 1

    def quantile(self, q: float) -> float:
        """An upper bound of the q-quantile (the bucket it falls in)."""
        if not self.observations:
            return 0.0
        rank = q * self.observations
        seen = 0
        for bound, count in zip(self.bounds, self.counts, strict=True):
            seen += count
            if seen >= rank:
                return bound
        return self.bounds[-1]


@dataclass(slots=True)
class Counters:
    """What one pool's DHCP server has seen and done."""

    #: Requests received, by message type name ("DISCOVER", "REQUEST", ...).
    received: Counter[str] = field(default_factory=Counter)
    #: Replies sent, by message type name ("OFFER", "ACK", "NAK").
    sent: Counter[str] = field(default_factory=Counter)
    malformed: int = 0
    unknown_mac: int = 0
    naks: int = 0
    declines: int = 0
    releases: int = 0
    #: Well-formed packets that need no answer from us: replies of other
    #: servers, a REQUEST for another server, relayed too many hops, a
    #: DISCOVER for a declined address (there is nothing else to offer).
    ignored: int = 0
    send_errors: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)

    def snapshot(self) -> Counters:
        """A copy that later counting leaves alone (take it under the lock)."""
        latency = self.latency
        return replace(
            self,
            received=self.received.copy(),
            sent=self.sent.copy(),
            latency=replace(latency, counts=list(latency.counts)),
        )

    def events(self) -> dict[str, int]:
        """Packets dropped or noted, by the `event` label of kvip_dhcp_events."""
        return {
            "malformed": self.malformed,
            "unknown_mac": self.unknown_mac,
            "nak": self.naks,
            "decline": self.declines,
            "release": self.releases,
            "ignored": self.ignored,
            "send_error": self.send_errors,
        }

    def as_dict(self) -> dict[str, object]:
        return {
            "received": dict(self.received),
            "sent": dict(self.sent),
            "malformed": self.malformed,
            "unknown_mac": self.unknown_mac,
            "naks": self.naks,
            "declines": self.declines,
            "releases": self.releases,
            "ignored": self.ignored,
            "send_errors": self.send_errors,
            "latency_buckets": dict(zip(self.latency.bounds, self.latency.counts, strict=True)),
            "latency_count": self.latency.observations,
            "latency_sum": self.latency.total,
        }
