"""The Supervisor alone (no API server, paused pools: no sockets)."""

from __future__ import annotations

import copy

import trio

from kvip.actors._supervisor import Supervisor
from tests.lab import objects


def test_a_pool_changed_before_its_actor_started_gets_one_actor_with_the_new_config() -> None:
    """Found by tests/chaos: a second apply() while the first actor was still
    starting started a second supervising task on the same cancel scope, which
    crashed the controller (and so the whole process)."""

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            supervisor = Supervisor(
                nursery,
                restore=lambda config: [],
                on_change=lambda name: None,
                on_started=lambda name, errors: None,
            )
            first = objects.ippool("p", "ns/net", selector="a=b", paused=True)
            changed = copy.deepcopy(first)
            changed["spec"]["ipv4config"]["dns"] = ["198.18.0.54"]
            await supervisor.apply(first)
            await supervisor.apply(changed)  # before the first actor ran
            handle = supervisor.pools["p"]
            with trio.fail_after(10):
                await handle.started.wait()
            assert handle.actor is not None
            assert [str(ip) for ip in handle.actor.responder.options.dns] == ["198.18.0.54"]
            await trio.sleep(0.1)
            assert handle.restarts == 0 and handle.problem is None
            nursery.cancel_scope.cancel()

    trio.run(main)
