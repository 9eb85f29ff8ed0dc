"""Prometheus metrics: kubevirt-ip-helper's names (dashboards keep working)
plus kvip's DHCP counters and reply latency, all read at scrape time from
the actors' own state (the scrape runs in the actors' trio thread). A pool's
numbers come from `PoolActor.figures()`, one copy under the lock its packet
thread counts under: one scrape shows one moment of each pool. The registry
also carries prometheus_client's process, platform and GC collectors."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator

from prometheus_client import GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from kvip import __version__
from kvip.actors import Controller, LeaderElector
from kvip.k8s import ApiHealth
from kvip.serving import LatencyHistogram


class LogCounter(logging.Handler):
    """Counts warnings and errors: kubevirtiphelper_app_logs."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[record.levelname.lower()] += 1


class KvipCollector(Collector):
    def __init__(
        self,
        *,
        controller: Callable[[], Controller | None],
        elector: LeaderElector | None,
        logs: LogCounter,
        health: ApiHealth | None = None,
        vmnetcfg_status: bool = True,
    ) -> None:
        #: The controller of the current leadership term, if any.
        self.controller = controller
        self.elector = elector
        self.logs = logs
        #: The Kube's view of the API server (every replica has one).
        self.health = health
        #: Whether to export kubevirtiphelper_vmnetcfg_status, one series per NIC
        #: (off for large clusters; kvip_vmnetcfg_nics counts them either way).
        self.vmnetcfg_status = vmnetcfg_status

    def collect(self) -> Iterator[Metric]:
        build = GaugeMetricFamily("kvip_build_info", "kvip's version; always 1", labels=["version"])
        build.add_metric([__version__], 1)
        yield build
        logs = GaugeMetricFamily(
            "kubevirtiphelper_app_logs", "Warnings and errors logged", labels=["loglevel"]
        )
        for level in ("warning", "error", "critical"):
            logs.add_metric([level], self.logs.counts[level])
        yield logs
        leader = GaugeMetricFamily("kvip_leader", "1 while this kvip holds the lease")
        leader.add_metric([], 1 if self.elector is None or self.elector.is_leader else 0)
        yield leader
        if self.health is not None:
            unreachable = GaugeMetricFamily(
                "kvip_api_server_unreachable_seconds",
                "Seconds since the API server stopped answering; 0 while it answers",
            )
            unreachable.add_metric([], self.health.unreachable_for())
            yield unreachable
        controller = self.controller()
        if controller is None:
            return
        yield from self._pools(controller)
        yield from self._vmnetcfgs(controller)
        yield from self._work(controller)

    def _pools(self, controller: Controller) -> Iterator[Metric]:
        labels = ["ippool", "subnet", "network"]
        used = GaugeMetricFamily(
            "kubevirtiphelper_ippool_used", "IP addresses in use in an IPPool", labels=labels
        )
        available = GaugeMetricFamily(
            "kubevirtiphelper_ippool_available",
            "IP addresses still available in an IPPool",
            labels=labels,
        )
        ready = GaugeMetricFamily(
            "kvip_ippool_ready", "1 while the pool's DHCP server is up", labels=["ippool"]
        )
        received = CounterMetricFamily(
            "kvip_dhcp_received", "DHCP requests received", labels=["ippool", "type"]
        )
        sent = CounterMetricFamily("kvip_dhcp_sent", "DHCP replies sent", labels=["ippool", "type"])
        events = CounterMetricFamily(
            "kvip_dhcp_events",
            "Packets dropped or noted: malformed, unknown_mac, nak, decline, release, "
            "ignored, send_error",
            labels=["ippool", "event"],
        )
        unknown = GaugeMetricFamily(
            "kvip_dhcp_unknown_macs",
            "MACs with no reservation in the pool among those heard lately (at most 512)",
            labels=["ippool"],
        )
        latency = HistogramMetricFamily(
            "kvip_dhcp_reply_latency_seconds",
            "Time from a request's arrival to its reply's sending",
            labels=["ippool"],
        )
        # DHCPv6 has metrics of its own: its message types share names with
        # DHCP's (REQUEST, RELEASE, DECLINE) and mean other exchanges.
        received6 = CounterMetricFamily(
            "kvip_dhcp6_received", "DHCPv6 requests received", labels=["ippool", "type"]
        )
        sent6 = CounterMetricFamily(
            "kvip_dhcp6_sent", "DHCPv6 replies sent", labels=["ippool", "type"]
        )
        events6 = CounterMetricFamily(
            "kvip_dhcp6_events",
            "DHCPv6 packets dropped or noted (as kvip_dhcp_events)",
            labels=["ippool", "event"],
        )
        latency6 = HistogramMetricFamily(
            "kvip_dhcp6_reply_latency_seconds",
            "Time from a DHCPv6 request's arrival to its reply's sending",
            labels=["ippool"],
        )
        for name, handle in sorted(controller.pools.items()):
            actor = handle.actor
            ready.add_metric([name], 1 if handle.ready and actor and actor.serving else 0)
            if actor is None or handle.config is None:
                continue
            figures = actor.figures()
            if handle.config.spec is not None:  # not on an IPv6-only pool
                pool_labels = [name, str(handle.config.spec.subnet), handle.config.network]
                used.add_metric(pool_labels, figures.used)
                available.add_metric(pool_labels, figures.available)
            counters = figures.counters
            for kind, count in sorted(counters.received.items()):
                received.add_metric([name, kind], count)
            for kind, count in sorted(counters.sent.items()):
                sent.add_metric([name, kind], count)
            for event, count in counters.events().items():
                events.add_metric([name, event], count)
            latency.add_metric([name], *_buckets(counters.latency))
            unknown.add_metric([name], figures.unknown_macs)
            six = actor.figures6()
            v6 = handle.config.v6
            if six is None or v6 is None:
                continue
            # The IPv6 range is a series of its own, told apart by its subnet.
            labels6 = [name, str(v6.spec.subnet), handle.config.network]
            used.add_metric(labels6, six.used)
            available.add_metric(labels6, six.available)
            for kind, count in sorted(six.counters.received.items()):
                received6.add_metric([name, kind], count)
            for kind, count in sorted(six.counters.sent.items()):
                sent6.add_metric([name, kind], count)
            for event, count in six.counters.events().items():
                events6.add_metric([name, event], count)
            latency6.add_metric([name], *_buckets(six.counters.latency))
        restarts = CounterMetricFamily(
            "kvip_ippool_restarts",
            "Restarts of a pool's DHCP server after it failed",
            labels=["ippool"],
        )
        paused = GaugeMetricFamily(
            "kvip_ippool_paused", "1 while the IPPool is paused (spec.paused)", labels=["ippool"]
        )
        for name, handle in sorted(controller.pools.items()):
            restarts.add_metric([name], handle.restarts)
            paused.add_metric(
                [name], 1 if handle.config is not None and handle.config.paused else 0
            )
        yield from (used, available, ready, received, sent, events, latency, unknown, restarts)
        yield from (received6, sent6, events6, latency6)
        yield paused

    def _vmnetcfgs(self, controller: Controller) -> Iterator[Metric]:
        status = GaugeMetricFamily(
            "kubevirtiphelper_vmnetcfg_status",
            "One series per VM NIC that kvip manages: 1, labelled with its state",
            labels=["vm", "network", "mac", "ip", "status"],
        )
        nics: Counter[str] = Counter({"OK": 0, "ERROR": 0})
        for key, vm in sorted(controller.states.items()):
            for nic in vm.nics or ():
                state = "OK" if nic.ok else "ERROR"
                nics[state] += 1
                if self.vmnetcfg_status:
                    status.add_metric([key, nic.network, nic.mac, nic.ip or "", state], 1)
        if self.vmnetcfg_status:
            yield status
        counts = GaugeMetricFamily(
            "kvip_vmnetcfg_nics", "VM NICs that kvip manages, by state", labels=["status"]
        )
        for state, count in sorted(nics.items()):
            counts.add_metric([state], count)
        yield counts

    def _work(self, controller: Controller) -> Iterator[Metric]:
        """The controller's work queue, its failed reconciles, its writers."""
        queue = controller.queue
        depth = GaugeMetricFamily("kvip_workqueue_depth", "VMs waiting for a worker")
        depth.add_metric([], queue.depth)
        wait = HistogramMetricFamily(
            "kvip_workqueue_wait_seconds", "Time from a VM's change to a worker taking it"
        )
        wait.add_metric([], *_buckets(queue.wait))
        errors = CounterMetricFamily(
            "kvip_reconcile_errors",
            "Failed reconciles by reason (each is retried)",
            labels=["reason"],
        )
        for reason in RECONCILE_ERRORS:
            errors.add_metric([reason], controller.errors[reason])
        conflicts = CounterMetricFamily(
            "kvip_status_write_conflicts",
            "Status writes that met a newer version (409); each is read and tried again",
            labels=["resource"],
        )
        # The controller's own writers (private: the metrics only read them).
        for resource, writer in (
            ("ippools", controller._pool_status),
            ("vmnetcfgs", controller._cfg_status),
        ):
            conflicts.add_metric([resource], writer.conflicts if writer is not None else 0)
        dropped = CounterMetricFamily(
            "kvip_events_dropped",
            "Kubernetes Events dropped: the queue of Events to write was full",
        )
        recorder = controller._events
        dropped.add_metric([], recorder.dropped if recorder is not None else 0)
        yield from (depth, wait, errors, conflicts, dropped)


#: The `reason` label of kvip_reconcile_errors (the Controller's worker counts them).
RECONCILE_ERRORS = (
    "api_unavailable",
    "api_race",
    "api_refused",
    "ipam",
    "pool_stopped",
    "unexpected",
)


def _buckets(histogram: LatencyHistogram) -> tuple[list[tuple[str, float]], float]:
    """The cumulative buckets and the sum of a histogram, as Prometheus wants them."""
    cumulative, buckets = 0, list[tuple[str, float]]()
    for bound, count in zip(histogram.bounds, histogram.counts, strict=True):
        cumulative += count
        buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
    return buckets, histogram.total


def registry_for(
    *,
    controller: Callable[[], Controller | None],
    elector: LeaderElector | None,
    logs: LogCounter,
    health: ApiHealth | None = None,
    vmnetcfg_status: bool = True,
) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        KvipCollector(
            controller=controller,
            elector=elector,
            logs=logs,
            health=health,
            vmnetcfg_status=vmnetcfg_status,
        )
    )
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry
