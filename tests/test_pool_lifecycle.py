"""A PoolActor's life and death as its callers see it: asking a pool that has
stopped (cancelled, crashed, never started) fails fast with PoolStopped, and
no caller waits forever. Paused pools (no socket) under trio's MockClock,
and a fake socket where the packet thread must run; no root.
"""

from __future__ import annotations

import socket
import time
from ipaddress import IPv4Address
from typing import cast

import pytest
import trio
import trio.testing

from kvip.actors import Inspect, PoolActor, PoolStopped, Reconfigure, RestoreReservation
from kvip.actors._ntp import resolve_ipv4
from kvip.actors._supervisor import Supervisor
from kvip.ipam import Owner
from kvip.serving import Declined, Notice, PoolConfig
from protocol import Message, MessageType, Op, OptionCode, Options, encode
from tests.lab import objects
from tests.lab.pool_harness import SERVER_IP, FakeDhcpSocket, pool_config


def mock_run(main: object) -> None:
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))  # type: ignore[arg-type]


def paused() -> PoolConfig:
    return pool_config(paused=True)


def test_an_ask_after_the_pool_was_cancelled_fails_fast() -> None:
    async def main() -> None:
        actor = PoolActor(paused())
        async with trio.open_nursery() as nursery:
            await nursery.start(actor.run)
            assert (await actor.ask(Inspect())).name == "fuzz"
            nursery.cancel_scope.cancel()
        with trio.fail_after(60), pytest.raises(PoolStopped):
            await actor.ask(Inspect())
        with trio.fail_after(60), pytest.raises(PoolStopped):
            await actor.tell(Inspect())

    mock_run(main)


def test_asks_pending_when_the_pool_fails_to_start_fail_fast() -> None:
    """The supervisor publishes a pool's actor before it runs: a worker may ask
    it then. If the socket cannot be opened, that ask must not wait forever."""

    def no_socket(interface: str) -> socket.socket:
        raise OSError(19, f"no such device: {interface}")

    outcomes: list[BaseException] = []

    async def asker(actor: PoolActor) -> None:
        try:
            await actor.ask(Inspect())
        except PoolStopped as exc:
            outcomes.append(exc)

    async def main() -> None:
        actor = PoolActor(pool_config(), socket_factory=no_socket)
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(asker, actor)
                await trio.testing.wait_all_tasks_blocked()
                with pytest.RaisesGroup(OSError, flatten_subgroups=True):
                    await actor.run()
        assert len(outcomes) == 3

    mock_run(main)


class CrashingSocket(FakeDhcpSocket):
    """recv fails with something the packet thread does not expect."""

    def __init__(self) -> None:
        super().__init__()
        self.crash = False

    def recv(self, size: int) -> bytes:
        data = super().recv(size)
        if self.crash:
            raise RuntimeError("the packet thread broke")
        return data


def test_asks_pending_when_the_pool_crashes_fail_fast() -> None:
    sock = CrashingSocket()
    crashes: list[BaseException] = []

    async def run_actor(actor: PoolActor, task_status: trio.TaskStatus[None]) -> None:
        try:
            await actor.run(task_status=task_status)
        except BaseExceptionGroup as group:
            crashes.extend(group.subgroup(RuntimeError).exceptions)  # type: ignore[union-attr]

    async def main() -> None:
        actor = PoolActor(pool_config(), socket_factory=lambda _: cast(socket.socket, sock))
        answered = 0
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                await nursery.start(run_actor, actor)
                sock.crash = True
                sock.inject(b"x")
                with pytest.raises(PoolStopped):  # the actor dies soon: no ask hangs
                    while True:
                        await actor.ask(Inspect())
                        answered += 1
                        await trio.sleep(0.01)
            with pytest.raises(PoolStopped):
                await actor.ask(Inspect())
        assert len(crashes) == 1

    trio.run(main)


MAC = "52:54:00:12:34:56"


def decline(ip: IPv4Address, xid: int) -> bytes:
    options = Options(
        {
            OptionCode.MESSAGE_TYPE: MessageType.DECLINE,
            OptionCode.REQUESTED_IP: ip,
            OptionCode.SERVER_ID: SERVER_IP,
        }
    )
    chaddr = bytes.fromhex(MAC.replace(":", ""))
    return encode(Message(op=Op.BOOTREQUEST, xid=xid, chaddr=chaddr, options=options))


def test_a_failing_notice_handler_is_the_pools_problem_not_the_process() -> None:
    """Found by reading: DECLINE and RELEASE notices reached trio through
    run_sync_soon, where an exception in the callback became TrioInternalError
    and ended kvip. They are messages in the actor's own inbox now."""
    sock = FakeDhcpSocket()
    ip = IPv4Address("198.18.0.10")
    seen: list[Notice] = []

    def on_notice(notice: Notice) -> None:
        seen.append(notice)
        raise RuntimeError("the controller's handler broke")

    actor = PoolActor(
        pool_config(), socket_factory=lambda _: cast(socket.socket, sock), on_notice=on_notice
    )
    actor.handle_now(RestoreReservation(Owner("ns/vm [m]"), MAC, ip, "vm"))

    async def main() -> None:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                await nursery.start(actor.run)
                for xid in range(20):
                    sock.inject(decline(ip, xid))
                while len(seen) < 20:
                    await trio.sleep(0.01)
                state = await actor.ask(Inspect())  # still answering
                assert state.declined == (ip,)
                nursery.cancel_scope.cancel()

    trio.run(main)
    assert all(isinstance(notice, Declined) and notice.ip == ip for notice in seen)


class SlowToLetGo(FakeDhcpSocket):
    """A socket whose blocked receive is not woken by shutdown (the thread
    notices it should stop only at its next idle check)."""

    def shutdown(self, how: int) -> None:
        pass

    def recv(self, size: int) -> bytes:
        time.sleep(1.5)  # longer than the old code's 1 s wait
        raise BlockingIOError


def test_a_moved_pool_opens_its_new_socket_only_after_the_old_one_closed() -> None:
    """Found by reading: a Reconfigure that moved the pool busy-waited at most
    1 s for the old socket, then opened the new one anyway: two packet threads
    could answer at once."""
    sockets: list[SlowToLetGo] = []

    def factory(interface: str) -> socket.socket:
        assert all(old.closed for old in sockets), "a second socket while the first is open"
        sockets.append(SlowToLetGo())
        return cast(socket.socket, sockets[-1])

    actor = PoolActor(pool_config(interface="eth1"), socket_factory=factory)

    async def main() -> None:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                await nursery.start(actor.run)
                for interface in ("eth2", "eth3"):
                    await actor.ask(Reconfigure(pool_config(interface=interface)))
                state = await actor.ask(Inspect())
                assert state.serving and len(sockets) == 3
                nursery.cancel_scope.cancel()

    trio.run(main)


def test_a_slow_ntp_name_holds_up_neither_the_pool_nor_its_supervisor() -> None:
    """Found by reading: Reconfigure resolved NTP names (up to 5 s each) before
    answering, and Supervisor.apply waited for it on the controller's only
    event task: all watch processing stopped meanwhile."""
    answers: dict[str, list[IPv4Address]] = {"ntp.slow": [IPv4Address("198.18.0.123")]}

    async def slow_resolver(name: str) -> list[IPv4Address]:
        await trio.sleep(3)
        return answers[name]

    def body(ntp: list[str]) -> dict[str, object]:
        pool = objects.ippool("p", "ns/net", selector="a=b")
        pool["spec"]["paused"] = True
        pool["spec"]["ipv4config"]["ntp"] = ntp
        return pool

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            supervisor = Supervisor(
                nursery,
                restore=lambda config: [],
                on_change=lambda name: None,
                on_started=lambda name, errors: None,
            )
            await supervisor.apply(body(["198.18.0.7"]))
            handle = supervisor.pools["p"]
            await handle.started.wait()
            assert handle.actor is not None
            handle.actor.resolve = slow_resolver
            with trio.fail_after(1):
                await supervisor.apply(body(["198.18.0.7", "ntp.slow"]))
                await handle.actor.ask(Inspect())  # the pool answers meanwhile
            before = handle.actor.responder.options.ntp
            await trio.sleep(5)
            assert before == (IPv4Address("198.18.0.7"),)
            assert handle.actor.responder.options.ntp == (
                IPv4Address("198.18.0.7"),
                IPv4Address("198.18.0.123"),
            )
            nursery.cancel_scope.cancel()

    mock_run(main)


def test_the_default_resolver_resolves_names_through_the_system() -> None:
    """Pins the resolver the tests replace to the real one."""
    assert IPv4Address("127.0.0.1") in trio.run(resolve_ipv4, "localhost")
