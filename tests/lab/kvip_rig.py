"""Run kvip's controller in-process (its own trio thread) for end-to-end tests.

The controller talks to the session's API server on the host's loopback and
opens its pools' DHCP and DHCPv6 sockets inside a lab namespace (socket_factory_in,
Dhcp6Wire), so
real DHCP clients in client namespaces talk to it while nothing touches the
host's network.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import trio
from kubernetes import client

from kvip.actors import Controller, Dhcp6Wire, socket_factory_in
from kvip.k8s import Kube

T = TypeVar("T")


class RunningKvip:
    """`with RunningKvip(kubeconfig, selector=..., netns=...) as kvip:` serves until exit."""

    def __init__(
        self,
        kubeconfig: Path,
        *,
        selector: str,
        netns: str | None,
        ready_timeout: float = 30,
        workers: int = 8,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.workers = workers
        self.selector = selector
        self.netns = netns
        self.ready_timeout = ready_timeout
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._thread: threading.Thread | None = None
        self.controller: Controller | None = None

    def __enter__(self) -> RunningKvip:
        self._thread = threading.Thread(target=self._main, name="kvip", daemon=True)
        self._thread.start()
        if not self._ready.wait(self.ready_timeout):
            self.stop()
            raise TimeoutError("kvip did not become ready")
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._token is not None and self._scope is not None:
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(self._scope.cancel, trio_token=self._token)
        if self._thread is not None:
            self._thread.join(30)
            assert not self._thread.is_alive(), "kvip did not stop within 30 s"
        if self._error is not None and not isinstance(self._error, trio.Cancelled):
            raise self._error

    def _main(self) -> None:
        try:
            trio.run(self._serve)
        except BaseException as exc:  # reported to the test thread
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        kube = Kube.connect(kubeconfig=str(self.kubeconfig))
        self.controller = Controller(
            kube,
            pool_selector=self.selector,
            socket_factory=socket_factory_in(self.netns),
            wire6=Dhcp6Wire(self.netns),
            workers=self.workers,
        )
        try:
            with trio.CancelScope() as scope:
                self._scope = scope
                async with trio.open_nursery() as nursery:
                    await nursery.start(self.controller.run)
                    self._ready.set()
        finally:
            kube.close()

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run an async function in kvip's trio thread (e.g. ask a pool actor)."""
        assert self._token is not None
        return trio.from_thread.run(fn, *args, trio_token=self._token)

    def pool_state(self, name: str) -> Any:
        from kvip.actors import Inspect

        assert self.controller is not None
        handle = self.controller.supervisor.pools[name]
        assert handle.actor is not None
        return self.call(handle.actor.ask, Inspect())


def wait_for(check: Callable[[], T | None], *, timeout: float = 20, what: str = "") -> T:
    """Poll `check` until it returns something truthy; its value is returned."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except client.ApiException as exc:
            if exc.status != 404:
                raise
            last = None
        if last:
            return last  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or check}: last saw {last!r}")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"
