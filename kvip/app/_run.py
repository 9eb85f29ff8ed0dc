"""`kvip run`: the controller and every pool's DHCP server, until SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import socket
import uuid
from dataclasses import dataclass

import trio

from kvip import __version__
from kvip.actors import Controller, LeaderElector, socket_factory_in
from kvip.app._http import ProbeServer
from kvip.app._metrics import LogCounter, registry_for
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
    metrics_address: str = "0.0.0.0"
    metrics_port: int = 8080


@dataclass(slots=True)
class _Term:
    """The controller of the current leadership term (None on a standby)."""

    controller: Controller | None = None


async def run(options: RunOptions) -> None:
    """Serve until SIGTERM or SIGINT; then stop answering, close the sockets and
    release the Lease so that a standby takes over at once."""
    kube = Kube.connect(kubeconfig=options.kubeconfig, context=options.context)
    log.info("kvip %s starting (API server %s)", __version__, kube.api_client.configuration.host)
    logs = LogCounter()
    logging.getLogger().addHandler(logs)
    term = _Term()
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

    async def lead() -> None:
        controller = Controller(
            kube,
            pool_selector=options.pool_selector,
            workers=options.workers,
            socket_factory=socket_factory_in(options.socket_netns),
        )
        term.controller = controller
        try:
            await controller.run()
        finally:
            term.controller = None

    def readiness() -> tuple[bool, str]:
        if elector is not None and not elector.is_leader:
            if elector.healthy:
                return True, "standby: another kvip holds the lease"
            return False, "standby, and the API server is not answering"
        controller = term.controller
        if controller is None or not controller.ready.is_set():
            return False, "loading the pools from the vmnetcfgs"
        starting = [
            name
            for name, handle in controller.pools.items()
            if handle.config is not None and handle.problem is None and not handle.ready
        ]
        if starting:
            return False, "pools starting: " + ", ".join(sorted(starting))
        return True, f"leader, {len(controller.pools)} pools loaded"

    probes = ProbeServer(
        registry=registry_for(
            controller=lambda: term.controller, elector=elector, logs=logs, health=kube.health
        ),
        ready=readiness,
        address=options.metrics_address,
        port=options.metrics_port,
    )
    try:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(probes.run)
                if elector is None:
                    nursery.start_soon(lead)
                else:
                    nursery.start_soon(elector.run, lead)
                async for signum in signals:
                    log.info("received %s: shutting down", signal.Signals(signum).name)
                    nursery.cancel_scope.cancel()
                    break
    finally:
        logging.getLogger().removeHandler(logs)
        kube.close()
    log.info("kvip stopped")
