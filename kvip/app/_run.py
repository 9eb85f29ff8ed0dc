"""`kvip run`: the controller and every pool's DHCP server, until SIGTERM."""

from __future__ import annotations

import logging
import signal
from dataclasses import dataclass

import trio

from kvip import __version__
from kvip.actors import Controller, socket_factory_in
from kvip.k8s import Kube

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    kubeconfig: str | None = None
    context: str | None = None
    pool_selector: str | None = None
    workers: int = 8
    socket_netns: str | None = None


async def run(options: RunOptions) -> None:
    """Serve until SIGTERM or SIGINT; then stop answering and close the sockets."""
    kube = Kube.connect(kubeconfig=options.kubeconfig, context=options.context)
    log.info("kvip %s starting (API server %s)", __version__, kube.api_client.configuration.host)
    controller = Controller(
        kube,
        pool_selector=options.pool_selector,
        workers=options.workers,
        socket_factory=socket_factory_in(options.socket_netns),
    )
    try:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(controller.run)
                async for signum in signals:
                    log.info("received %s: shutting down", signal.Signals(signum).name)
                    nursery.cancel_scope.cancel()
                    break
    finally:
        kube.close()
    log.info("kvip stopped")
