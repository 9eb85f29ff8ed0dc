"""`kvip run`: the controller and every pool's DHCP server, until SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio

from kvip import __version__
from kvip.actors import (
    Controller,
    Dhcp6Wire,
    LeaderElector,
    ReplicaDirectory,
    ReplicaHeartbeat,
    socket_factory_in,
)
from kvip.actors._replica_view import ReplicaView
from kvip.app._http import ProbeServer
from kvip.app._metrics import LogCounter, registry_for
from kvip.app._webhook import Webhook, WebhookOptions
from kvip.k8s import Kube

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def default_namespace() -> str:
    """POD_NAMESPACE, else the service account's namespace, else 'default'."""
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    try:
        with open(SERVICE_ACCOUNT_NAMESPACE) as file:
            return file.read().strip() or "default"
    except OSError:
        return "default"


def replica_name() -> str:
    """This replica's name in its heartbeat Lease: the pod name, else the host
    name and process id (several replicas on one machine)."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


def default_identity() -> str:
    """The pod name (or host name) plus a random suffix: two processes on one
    host, or a restarted pod, never share an identity."""
    base = os.environ.get("POD_NAME") or socket.gethostname()
    return f"{base}_{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    kubeconfig: str | None = None
    context: str | None = None
    pool_selector: str | None = None
    workers: int = 8
    socket_netns: str | None = None
    leader_elect: bool = True
    lease_name: str = "kvip"
    lease_namespace: str | None = None
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    #: Seconds between SIGTERM and the sockets closing (Responder.drain).
    drain: float = 2.0
    metrics_address: str = "0.0.0.0"
    metrics_port: int = 8080
    #: Export kubevirtiphelper_vmnetcfg_status (one series per VM NIC).
    vmnetcfg_metrics: bool = True
    #: The admission webhook; None: not served.
    webhook: WebhookOptions | None = None


async def _in_scope(
    scope: trio.CancelScope, fn: Callable[..., Awaitable[None]], *args: Any
) -> None:
    with scope:
        await fn(*args)


async def run(options: RunOptions) -> None:
    """Serve until SIGTERM or SIGINT; then release the Lease so that another
    replica leads at once, drain (no new clients) and close the sockets.

    Every replica serves the recorded reservations of its pools; the Lease only
    decides which one claims addresses and writes (see Controller.lead/follow)."""
    kube = Kube.connect(kubeconfig=options.kubeconfig, context=options.context)
    log.info("kvip %s starting (API server %s)", __version__, kube.api_client.configuration.host)
    logs = LogCounter()
    logging.getLogger().addHandler(logs)
    elector = (
        LeaderElector(
            kube,
            namespace=options.lease_namespace or default_namespace(),
            name=options.lease_name,
            identity=default_identity(),
            lease_duration=options.lease_duration,
            renew_deadline=options.renew_deadline,
            retry_period=options.retry_period,
        )
        if options.leader_elect
        else None
    )
    controller = Controller(
        kube,
        pool_selector=options.pool_selector,
        workers=options.workers,
        socket_factory=socket_factory_in(options.socket_netns),
        wire6=Dhcp6Wire(options.socket_netns),
        leading=elector is None,
        replica_view=ReplicaView(replica_name()),
    )
    heartbeat = directory = None
    if elector is not None:
        # Each replica says which address it answers as on which pool; the leader
        # shows it in the IPPool status, and every pool holds those addresses.
        view = controller.replica_view
        directory = view.directory = ReplicaDirectory(
            kube, namespace=elector.namespace, lease_name=elector.name,
            on_change=view.changed, may_delete=lambda: controller.leading,
        )  # fmt: skip
        heartbeat = ReplicaHeartbeat(
            kube, namespace=elector.namespace, lease_name=elector.name, replica=view.name,
            card=lambda: view.serving_card(controller.pools), ready=lambda: readiness()[0],
            declined=controller.pending_declines,
        )  # fmt: skip

    async def lead() -> None:
        await controller.lead()
        try:
            await trio.sleep_forever()
        finally:
            controller.follow()

    draining: list[bool] = []

    def readiness() -> tuple[bool, str]:
        """Ready means serving DHCP, leader or not, API server or not."""
        if draining:
            return False, "shutting down: taking no new clients"
        if not controller.ready.is_set():
            return False, "loading the pools from the vmnetcfgs"
        starting = [
            name
            for name, handle in controller.pools.items()
            if handle.config is not None and handle.problem is None and not handle.ready
        ]
        if starting:
            return False, "pools starting: " + ", ".join(sorted(starting))
        role = "leader" if controller.leading else "follower"
        return True, f"serving {len(controller.pools)} pools ({role})"

    probes = ProbeServer(
        registry=registry_for(
            controller=lambda: controller,
            elector=elector,
            logs=logs,
            health=kube.health,
            vmnetcfg_status=options.vmnetcfg_metrics,
        ),
        ready=readiness,
        pools=lambda: {n: h.actor for n, h in controller.pools.items() if h.actor is not None},
        address=options.metrics_address,
        port=options.metrics_port,
    )
    try:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(probes.run)
                nursery.start_soon(controller.run)
                for task in (heartbeat, directory):
                    if task is not None:
                        nursery.start_soon(task.run)
                if options.webhook is not None:
                    nursery.start_soon(Webhook(kube, options.webhook).run)
                election = trio.CancelScope()
                if elector is not None:
                    nursery.start_soon(_in_scope, election, elector.run, lead)
                signum = await signals.__anext__()
                log.info("received %s: releasing the lease, draining for %g s",
                         signal.Signals(signum).name, options.drain)  # fmt: skip
                # Another replica writes at once; this one takes no new clients
                # while the renewals it was answering move on (a second signal
                # ends the drain).
                election.cancel()
                controller.drain()
                draining.append(True)
                with trio.move_on_after(options.drain):
                    async for _ in signals:
                        break
                log.info("shutting down")
                nursery.cancel_scope.cancel()
    finally:
        logging.getLogger().removeHandler(logs)
        kube.close()
    log.info("kvip stopped")
