"""kvip's Router Advertisement task (kvip/actors/_router_adv.py) run for a
test: in a trio run of its own thread, on a lab namespace's interface."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from ipaddress import IPv6Network

import trio

from kvip.actors._router_adv import advertise_routes


@contextlib.contextmanager
def advertising(
    netns: str, subnet: IPv6Network, *, interface: str = "eth1", interval: float = 200
) -> Iterator[None]:
    """Advertise ``subnet`` on ``interface`` of ``netns`` for the block."""
    started = threading.Event()
    failed: list[BaseException] = []
    holder: list[tuple[trio.lowlevel.TrioToken, trio.CancelScope]] = []

    async def main() -> None:
        with trio.CancelScope() as scope:
            holder.append((trio.lowlevel.current_trio_token(), scope))
            async with trio.open_nursery() as nursery:
                await nursery.start(
                    lambda task_status: advertise_routes(
                        interface, subnet, interval=interval, netns=netns, task_status=task_status
                    )
                )
                started.set()

    def run() -> None:
        try:
            trio.run(main)
        except BaseException as exc:
            failed.append(exc)
            started.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        if not started.wait(5) or failed:
            raise RuntimeError(f"the advertiser did not start: {failed}")
        yield
    finally:
        if holder:
            token, scope = holder[0]
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(scope.cancel)
        thread.join(5)
    if failed:
        raise RuntimeError(f"the advertiser failed: {failed}")
