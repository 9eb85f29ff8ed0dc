"""Leader election without an API server: a leader whose API server stops answering
steps down by its renew deadline, before any standby may take the Lease, and its
renewals never queue behind the controller's calls.

The Lease API is a stand-in kept in memory (`PausableLeases`) that can be paused
like a stopped API server; everything else is kvip's own: the `Kube` with its
shared call limiter, the worker threads, the elector. Time is trio's MockClock.
The stand-in is paused before the elector's first renewal: a worker thread that
is answering (not hanging) would let the mock clock jump past a deadline while
it runs.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import trio
import trio.testing
from kubernetes import client

from kvip.actors import LeaderElector
from kvip.k8s import Body, Conflict, Kube, NotFound, Unavailable

LEASE_DURATION = 6.0
RENEW_DEADLINE = 3.0
RETRY_PERIOD = 1.0
#: Real seconds a test waits for a worker thread before it calls the wait failed.
THREAD_PATIENCE = 10.0


class PausableLeases:
    """Leases in memory, each write checked against and given a resourceVersion
    as the API server does. After `pause()` every request hangs, as one to a
    stopped API server does, until `resume()`; then it fails as a timed-out
    request would."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[tuple[str, str], Body] = {}
        self._version = 0
        self._paused = False
        self._resumed = threading.Event()
        #: Set when a request reaches the paused API server.
        self.reached_while_paused = threading.Event()

    def pause(self) -> None:
        with self._lock:
            self._paused = True

    def resume(self) -> None:
        self._resumed.set()

    def _answer(self) -> None:
        with self._lock:
            paused = self._paused
        if paused:
            self.reached_while_paused.set()
            self._resumed.wait()
            raise Unavailable("API server unreachable: read timed out")

    def _store(self, namespace: str, body: Body) -> Body:
        self._version += 1
        stored = copy.deepcopy(body)
        stored["metadata"]["resourceVersion"] = str(self._version)
        self._objects[(namespace, stored["metadata"]["name"])] = stored
        return copy.deepcopy(stored)

    def get(self, namespace: str, name: str) -> Body:
        self._answer()
        with self._lock:
            if (namespace, name) not in self._objects:
                raise NotFound(f"404: leases {name!r} not found")
            return copy.deepcopy(self._objects[(namespace, name)])

    def create(self, namespace: str, body: Body) -> Body:
        self._answer()
        with self._lock:
            if (namespace, body["metadata"]["name"]) in self._objects:
                raise Conflict("409: already exists")
            return self._store(namespace, body)

    def replace(self, namespace: str, body: Body) -> Body:
        self._answer()
        with self._lock:
            current = self._objects.get((namespace, body["metadata"]["name"]))
            if current is None:
                raise NotFound("404: not found")
            if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
                raise Conflict("409: the object has been modified")
            return self._store(namespace, body)


@pytest.fixture
def kube() -> Iterator[Kube]:
    """kvip's own Kube; no request of the tests below reaches its ApiClient."""
    kube = Kube(client.ApiClient())
    yield kube
    kube.close()


def elector_for(kube: Kube, leases: PausableLeases) -> LeaderElector:
    return LeaderElector(
        kube,
        namespace="kvip",
        name="kvip",
        identity="first",
        lease_duration=LEASE_DURATION,
        renew_deadline=RENEW_DEADLINE,
        retry_period=RETRY_PERIOD,
        lease_api=leases,  # type: ignore[arg-type]
    )


def run_with_mock_clock(main: Any) -> None:
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_a_leader_whose_api_server_hangs_steps_down_by_its_renew_deadline(kube: Kube) -> None:
    leases = PausableLeases()
    elector = elector_for(kube, leases)
    leading, stepped_down = trio.Event(), trio.Event()
    times: dict[str, float] = {}

    async def lead() -> None:
        times["led"] = trio.current_time()
        leading.set()
        # From now on the API server does not answer: every renewal hangs.
        leases.pause()
        try:
            await trio.sleep_forever()
        finally:
            times["stepped down"] = trio.current_time()
            stepped_down.set()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            try:
                nursery.start_soon(elector.run, lead)
                await leading.wait()
                # A standby may take the Lease once it has not seen it change for the
                # lease duration; the leader's last renewal is when it began to lead.
                with trio.move_on_after(LEASE_DURATION):
                    await stepped_down.wait()
                # The renewal's thread may be abandoned before it even sends its request.
                attempted = await trio.to_thread.run_sync(
                    leases.reached_while_paused.wait, THREAD_PATIENCE
                )
                assert attempted, "no renewal was attempted"
                assert stepped_down.is_set(), "still leading when a standby may take the Lease"
                assert times["stepped down"] - times["led"] <= RENEW_DEADLINE
                assert not elector.is_leader
            finally:
                leases.resume()
                nursery.cancel_scope.cancel()

    run_with_mock_clock(main)


def test_renewals_do_not_wait_for_the_controllers_api_calls(kube: Kube) -> None:
    """The controller may hold every slot of the shared call limiter with slow
    calls; the renewal must still reach the API server."""
    leases = PausableLeases()
    elector = elector_for(kube, leases)
    controller_calls_done = threading.Event()
    slots = int(kube.call_limiter.total_tokens)

    async def lead() -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(slots):
                nursery.start_soon(kube.run, controller_calls_done.wait)
            await trio.testing.wait_all_tasks_blocked()
            assert kube.call_limiter.borrowed_tokens == slots
            # The renewal hangs (never answers) so no worker thread is busy
            # while the mock clock looks for something to do.
            leases.pause()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            try:
                nursery.start_soon(elector.run, lead)
                reached = await trio.to_thread.run_sync(
                    leases.reached_while_paused.wait, THREAD_PATIENCE
                )
                assert reached, "the renewal waited for a slot of the shared call limiter"
            finally:
                controller_calls_done.set()
                leases.resume()
                nursery.cancel_scope.cancel()

    run_with_mock_clock(main)


class RefusingLeases(PausableLeases):
    """Refuses every request at once while `refusing` (a stopped API server's
    closed port), then answers as PausableLeases does."""

    refusing = True

    def _answer(self) -> None:
        if self.refusing:
            raise Unavailable("API server unreachable: [Errno 111] Connection refused")
        super()._answer()


def test_lease_requests_report_the_api_server_unreachable_and_back(kube: Kube) -> None:
    leases = RefusingLeases()
    elector = elector_for(kube, leases)

    async def until(condition: Any) -> None:
        """Wait for `condition()` for at most THREAD_PATIENCE real seconds (the
        mock clock jumps while the elector's worker thread runs)."""
        give_up = time.monotonic() + THREAD_PATIENCE
        while not condition():
            assert time.monotonic() < give_up, "waited in vain"
            await trio.sleep(RETRY_PERIOD / 4)

    async def lead() -> None:
        await trio.sleep_forever()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(elector.run, lead)
            await until(lambda: kube.health.unreachable_since is not None)
            assert not elector.is_leader
            leases.refusing = False
            await until(lambda: elector.is_leader)
            assert kube.health.unreachable_since is None
            nursery.cancel_scope.cancel()

    run_with_mock_clock(main)
