"""The Supervisor: one PoolActor per IPPool, started, updated and stopped with it.

Each pool runs in its own cancel scope inside the supervisor's nursery. A
pool whose actor crashes is logged, reported in its status and restarted with
backoff; it never takes another pool or the process down. A pool is always
rebuilt from the durable reservations (`restore`) before its socket opens.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import trio

from kvip.actors._dhcp_socket import open_dhcp_socket
from kvip.actors._events import Event, ObjectRef
from kvip.actors._messages import Reconfigure, RestoreReservation
from kvip.actors._pool import PoolActor, PoolStopped
from kvip.actors._pool_dhcp6 import Dhcp6Wire
from kvip.actors._pool_wire import SocketFactory
from kvip.ipam import InvalidPool, IpamError
from kvip.k8s import IPPOOLS
from kvip.serving import Notice, PoolConfig, parse_ippool

log = logging.getLogger(__name__)

RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 60.0


@dataclass(slots=True)
class PoolHandle:
    """The supervisor's view of one IPPool."""

    name: str
    config: PoolConfig | None = None
    actor: PoolActor | None = None
    scope: trio.CancelScope | None = None
    #: (reason, message) of the last problem, for the Ready condition.
    problem: tuple[str, str] | None = None
    restarts: int = 0
    started: trio.Event = field(default_factory=trio.Event)
    #: The IPPool's metadata.generation and annotations as last applied: the
    #: conditions' observedGeneration, and per-pool status settings.
    generation: int | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    ref: ObjectRef = field(default_factory=lambda: ObjectRef("", "IPPool", ""))

    @property
    def ready(self) -> bool:
        return self.actor is not None and self.started.is_set()


@dataclass(slots=True)
class Supervisor:
    """Owns the pool actors. All methods run in the controller's task."""

    nursery: trio.Nursery
    #: The durable reservations of a network: (owner, mac, ip, hostname) tuples.
    restore: Callable[[PoolConfig], Iterable[RestoreReservation]]
    #: Called with (pool name) whenever a pool's state or problem changes.
    on_change: Callable[[str], None]
    #: Called with (pool name, restore errors) after a pool (re)starts.
    on_started: Callable[[str, list[tuple[RestoreReservation, IpamError]]], None]
    socket_factory: SocketFactory = open_dhcp_socket
    wire6: Dhcp6Wire = field(default_factory=Dhcp6Wire)
    #: Where Events about pools go (best effort).
    on_event: Callable[[Event], None] = lambda event: None
    #: Called with (pool name, notice) for each client DECLINE and RELEASE.
    on_notice: Callable[[str, Notice], None] = lambda name, notice: None
    #: Called with (pool name) after a running pool took a new configuration.
    on_reconfigured: Callable[[str], None] = lambda name: None
    #: Whether a network's next actor holds (network, claim), a claim an ended actor
    #: handed out but never served: no for a VM that is gone.
    adopt: Callable[[str, RestoreReservation], bool] = lambda network, claim: True
    pools: dict[str, PoolHandle] = field(default_factory=dict)
    #: Claims an ended actor had handed out but not served, by network: a worker
    #: may still write them to a vmnetcfg, so the network's next actor holds them.
    unserved: dict[str, list[RestoreReservation]] = field(default_factory=dict)
    #: Set when the supervising task of a network's last pool has ended: a pool
    #: deleted and created again starts only after its old actor handed over.
    _ended: dict[str, trio.Event] = field(default_factory=dict)

    def by_network(self, network: str) -> PoolActor | None:
        for handle in self.pools.values():
            if handle.config is not None and handle.config.network == network and handle.ready:
                return handle.actor
        return None

    def running(self) -> list[PoolActor]:
        return [h.actor for h in self.pools.values() if h.actor is not None and h.ready]

    def config_for_network(self, network: str) -> PoolConfig | None:
        for handle in self.pools.values():
            if handle.config is not None and handle.config.network == network:
                return handle.config
        return None

    async def apply(self, body: dict[str, Any]) -> None:
        """An IPPool was added or changed."""
        name = str(body["metadata"]["name"])
        handle = self.pools.setdefault(name, PoolHandle(name))
        handle.ref = pool_ref(body)
        seen = handle.generation, handle.annotations
        handle.generation, handle.annotations = _generation(body), _annotations(body)
        # Status only: a new generation the config ignores still moves the
        # conditions' observedGeneration.
        restatus = (handle.generation, handle.annotations) != seen
        try:
            config = parse_ippool(body)
            self._check_network_unique(name, config)
        except InvalidPool as exc:
            message = str(exc)
            if handle.actor is not None:
                message += "; still serving the previous valid configuration"
            if handle.problem != ("InvalidPool", message):
                log.error("IPPool %s is invalid: %s", name, message)
                self.on_event(Event(pool_ref(body), "InvalidPool", message, warning=True))
            handle.problem = ("InvalidPool", message)
            self.on_change(name)
            return
        if handle.config == config and handle.actor is not None:
            if restatus:
                self.on_change(name)
            return
        handle.config = config
        handle.problem = None
        if handle.actor is None:
            # Starting, or waiting to restart after a crash: its supervising task
            # builds the next actor from handle.config. A second task must not start.
            if handle.scope is None:
                self._start(handle)
        else:
            log.info("IPPool %s changed; applying it to the running pool", name)
            restore = tuple(self.restore(config))
            # Told, not asked: the watch events wait for nobody. The actor logs what
            # no longer fits and reports through on_reconfigured.
            with contextlib.suppress(PoolStopped):  # restarting: built from handle.config
                await handle.actor.tell(Reconfigure(config, restore=restore))
        self.on_change(name)

    def remove(self, name: str) -> None:
        """An IPPool was deleted: its actor stops and its socket closes."""
        handle = self.pools.pop(name, None)
        if handle is not None and handle.scope is not None:
            log.info("IPPool %s deleted: stopping its DHCP server", name)
            handle.scope.cancel()

    def _check_network_unique(self, name: str, config: PoolConfig) -> None:
        for other in self.pools.values():
            taken = other.config is not None and other.config.network == config.network
            if other.name != name and taken:
                raise InvalidPool(
                    f"network {config.network} is already served by IPPool {other.name}"
                )

    def _carry_unserved(self, network: str, claims: list[RestoreReservation]) -> None:
        if claims:
            self.unserved.setdefault(network, []).extend(claims)

    def _warn(self, handle: PoolHandle, reason: str, message: str) -> None:
        self.on_event(Event(handle.ref, reason, message, warning=True))

    def _start(self, handle: PoolHandle) -> None:
        handle.scope = trio.CancelScope()
        self.nursery.start_soon(self._supervise, handle)

    async def _supervise(self, handle: PoolHandle) -> None:
        assert handle.scope is not None and handle.config is not None
        network = handle.config.network
        previous = self._ended.get(network)
        ended = self._ended[network] = trio.Event()
        try:
            with handle.scope:
                if previous is not None:
                    await previous.wait()  # its claims in flight are handed over
                await self._run_pool(handle)
        finally:
            ended.set()
            if self._ended.get(network) is ended:
                del self._ended[network]

    async def _run_pool(self, handle: PoolHandle) -> None:
        """Build, run and restart the pool's actor, until cancelled."""
        delay = RESTART_DELAY
        while True:
            assert handle.config is not None
            actor = PoolActor(
                handle.config,
                socket_factory=self.socket_factory,
                wire6=self.wire6,
                on_change=functools.partial(self.on_change, handle.name),
                on_notice=functools.partial(self.on_notice, handle.name),
                on_reconfigured=functools.partial(self.on_reconfigured, handle.name),
                on_warning=functools.partial(self._warn, handle),
                # However the actor ends, what it handed out stays held.
                on_stopped=functools.partial(self._carry_unserved, handle.config.network),
            )
            errors: list[tuple[RestoreReservation, IpamError]] = []
            for reservation in self.restore(handle.config):
                try:
                    actor.handle_now(reservation)
                except IpamError as exc:
                    errors.append((reservation, exc))
            network = handle.config.network
            carried = self.unserved.pop(network, [])
            actor.book.hold_unserved([c for c in carried if self.adopt(network, c)])
            handle.actor = actor
            if handle.started.is_set():
                # A restart: whoever waits for the pool must wait for this run.
                handle.started = trio.Event()
            try:
                async with trio.open_nursery() as nursery:
                    await nursery.start(actor.run)
                    handle.started.set()
                    if handle.problem and handle.problem[0] == "Crashed":
                        handle.problem = None
                    self.on_started(handle.name, errors)
                    self.on_change(handle.name)
                    delay = RESTART_DELAY
            except BaseException as caught:
                crash, stopping = _split_crash(caught)
                if crash is None:
                    raise
                if stopping is not None:
                    # Stopping anyway (IPPool deleted, leadership lost): the crash
                    # is told, and the cancellation goes on without it.
                    log.error("IPPool %s: DHCP server failed while stopping: %s",
                              handle.name, _root_cause(crash))  # fmt: skip
                    raise stopping from None
                cause = _root_cause(crash)
                handle.restarts += 1
                reason = "InterfaceError" if isinstance(cause, OSError) else "Crashed"
                log.error(
                    "IPPool %s: DHCP server failed (%s); restarting in %.0fs",
                    handle.name,
                    cause,
                    delay,
                    exc_info=not isinstance(cause, OSError),
                )
                handle.problem = (reason, f"{cause}; restart {handle.restarts} in {delay:.0f}s")
                self.on_event(Event(handle.ref, "ServerFailed", handle.problem[1], warning=True))
                handle.actor = None
                self.on_change(handle.name)
                await trio.sleep(delay)
                delay = min(delay * 2, MAX_RESTART_DELAY)


def _split_crash(exc: BaseException) -> tuple[BaseException | None, BaseException | None]:
    """(the crash, the rest): a crash can arrive together with the cancellation of
    its scope (Cancelled) in one exception group; only the crash is ours to handle."""
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(Exception)
    if isinstance(exc, Exception):
        return exc, None
    return None, exc


def _root_cause(exc: BaseException) -> BaseException:
    """The first real exception inside (possibly nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _generation(body: dict[str, Any]) -> int | None:
    generation = body.get("metadata", {}).get("generation")
    return generation if isinstance(generation, int) else None


def _annotations(body: dict[str, Any]) -> dict[str, str]:
    annotations = body.get("metadata", {}).get("annotations") or {}
    return {str(key): str(value) for key, value in annotations.items()}


def pool_ref(body: dict[str, Any]) -> ObjectRef:
    meta = body.get("metadata", {})
    return ObjectRef(IPPOOLS.api_version, IPPOOLS.kind, str(meta.get("name")), uid=meta.get("uid"))
