"""A keyed work queue, as Kubernetes controllers use them.

A key that is marked dirty while it waits is queued once; a key that is
marked dirty while a worker handles it is queued again after that worker
is done, so two workers never reconcile the same VM at once and the last
change is never lost. Retries wait with exponential backoff per key; a failure
that retrying cannot fix alone (the API server refused the write) backs off
further, up to `permanent_max_delay`, but is still retried: an operator may
lift what refused it.

Idle workers park in one ParkingLot: each key made ready unparks one of
them, so every worker takes part (a shared Event replaced by each idle worker
left all but the last one waiting for a wakeup nobody sent).

For the metrics, `depth` is the number of keys waiting for a worker and `wait`
a histogram of the time from a key's `add` to the `get` that hands it out.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from kvip.serving import LatencyHistogram

#: Bounds (seconds) of the wait histogram: a busy controller waits well under a
#: second, a flood of changes (start-up, a pool change) minutes.
WAIT_BUCKETS = (0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, float("inf"))


def _wait_histogram() -> LatencyHistogram:
    return LatencyHistogram(bounds=WAIT_BUCKETS, counts=[0] * len(WAIT_BUCKETS))


@dataclass(slots=True)
class WorkQueue:
    base_delay: float = 0.2
    max_delay: float = 30.0
    permanent_max_delay: float = 300.0
    _queue: deque[str] = field(default_factory=deque)
    _dirty: set[str] = field(default_factory=set)
    _processing: set[str] = field(default_factory=set)
    _failures: dict[str, int] = field(default_factory=dict)
    _idle: trio.lowlevel.ParkingLot = field(default_factory=trio.lowlevel.ParkingLot)
    #: The clock of `wait` (trio.current_time under a MockClock in tests).
    clock: Callable[[], float] = time.monotonic
    #: Time from a key's add to its get.
    wait: LatencyHistogram = field(default_factory=_wait_histogram)
    #: When each dirty key was added.
    _added: dict[str, float] = field(default_factory=dict)

    def add(self, key: str) -> None:
        if key in self._dirty:
            return
        self._dirty.add(key)
        self._added[key] = self.clock()
        if key not in self._processing:
            self._queue.append(key)
            self._idle.unpark()

    async def get(self) -> str:
        """The next key to handle; waits while there is none. Call `done` after."""
        while not self._queue:
            await self._idle.park()
        key = self._queue.popleft()
        self._dirty.discard(key)
        added = self._added.pop(key, None)
        if added is not None:
            self.wait.observe(max(0.0, self.clock() - added))
        self._processing.add(key)
        return key

    def done(self, key: str, *, failed: bool = False, permanent: bool = False) -> float | None:
        """Mark `key` handled. With failed=True it is retried after the returned delay
        (the caller schedules `retry_later`), capped at `permanent_max_delay` for a
        permanent failure and at `max_delay` otherwise; a success resets its backoff."""
        self._processing.discard(key)
        delay = None
        if failed:
            count = self._failures.get(key, 0)
            self._failures[key] = count + 1
            cap = self.permanent_max_delay if permanent else self.max_delay
            delay = min(self.base_delay * 2 ** min(count, 64), cap)
        else:
            self._failures.pop(key, None)
        if key in self._dirty:
            self._queue.append(key)
            self._idle.unpark()
        return delay

    async def retry_later(self, key: str, delay: float) -> None:
        await trio.sleep(delay)
        self.add(key)

    def pending(self, key: str) -> bool:
        """Whether `key` waits to be handled (adding it again changes nothing)."""
        return key in self._dirty

    @property
    def depth(self) -> int:
        """Keys waiting for a worker (not those being handled)."""
        return len(self._queue)

    def __len__(self) -> int:
        return len(self._queue) + len(self._processing)

    @property
    def idle(self) -> bool:
        return not self._queue and not self._processing
