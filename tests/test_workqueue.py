"""The controller's keyed work queue, under trio's MockClock (no API server)."""

from __future__ import annotations

import trio
import trio.testing

from kvip.actors._workqueue import WorkQueue


def test_every_worker_works_after_all_of_them_went_idle() -> None:
    """Found by reading: each idle worker replaced the one shared wakeup event,
    so workers that went idle earlier waited on events nobody set; after the
    first idle moment only the last worker to go idle ever ran again."""
    workers = 4
    in_progress = 0
    most = 0

    async def worker(queue: WorkQueue) -> None:
        nonlocal in_progress, most
        while True:
            key = await queue.get()
            in_progress += 1
            most = max(most, in_progress)
            await trio.sleep(1)  # a slow reconcile
            in_progress -= 1
            queue.done(key)

    async def main() -> None:
        queue = WorkQueue()
        async with trio.open_nursery() as nursery:
            for _ in range(workers):
                nursery.start_soon(worker, queue)
            await trio.testing.wait_all_tasks_blocked()  # every worker idle
            for n in range(workers):
                queue.add(f"ns/vm{n}")
            await trio.sleep(0.5)
            assert most == workers
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_a_key_added_twice_while_handled_runs_once_more_never_in_parallel() -> None:
    handled: list[str] = []
    running: set[str] = set()

    async def worker(queue: WorkQueue) -> None:
        while True:
            key = await queue.get()
            assert key not in running
            running.add(key)
            handled.append(key)
            await trio.sleep(1)
            running.discard(key)
            queue.done(key)

    async def main() -> None:
        queue = WorkQueue()
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(worker, queue)
            await trio.testing.wait_all_tasks_blocked()
            queue.add("ns/a")
            await trio.sleep(0.1)
            queue.add("ns/a")
            queue.add("ns/a")
            await trio.sleep(5)
            assert handled == ["ns/a", "ns/a"]
            assert queue.idle
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
