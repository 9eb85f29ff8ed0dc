"""PoolActor's packet thread: it answers, sees every state change the inbox
makes, hands DECLINEs back to the trio thread, and lets go of the socket when
the actor is cancelled.

Everything runs on the loopback of a private network namespace: the pool's
socket on 127.0.0.1:6767, a relay-like client on 127.0.0.2:67 (replies to a
relayed request go to giaddr, port 67).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from ipaddress import IPv4Address

import pytest
import trio

from kvip.actors import (
    Inspect,
    PoolActor,
    PoolState,
    Reconfigure,
    ReleaseOwner,
    RestoreReservation,
)
from kvip.ipam import Owner
from kvip.serving import parse_ippool
from protocol import DecodeError, Message, MessageType, Op, OptionCode, Options, decode, encode
from tests.lab import netlab, objects

pytestmark = pytest.mark.netns

MAC = "52:54:00:12:34:56"
IP = IPv4Address("198.18.0.10")
OWNER = Owner("default/vm1 [52:54:00:12:34:56]")
SERVER = ("127.0.0.1", 6767)
RELAY = IPv4Address("127.0.0.2")
POOL = objects.ippool("p1", "default/net1", options="bare", interface=None, router="198.18.0.1")


@pytest.fixture
def lab() -> Iterator[netlab.Lab]:
    if not netlab.is_root():
        pytest.skip("needs root for network namespaces")
    with netlab.netlab("kvpt", server_ifname=None) as the_lab:
        yield the_lab


def request(kind: MessageType, *, xid: int, extra: dict[int, object] | None = None) -> bytes:
    opts: dict[int, object] = {OptionCode.MESSAGE_TYPE: kind, **(extra or {})}
    return encode(
        Message(
            op=Op.BOOTREQUEST,
            xid=xid,
            chaddr=bytes.fromhex(MAC.replace(":", "")),
            hops=1,
            giaddr=RELAY,
            options=Options(opts),
        )
    )


def exchange(client: socket.socket, data: bytes) -> Message | None:
    """Send one request; the reply, or None if none came within half a second."""
    client.sendto(data, SERVER)
    try:
        reply = client.recv(4096)
    except TimeoutError:
        return None
    try:
        return decode(reply)
    except DecodeError:
        pytest.fail(f"undecodable reply {reply.hex()}")


def test_packet_thread_serves_follows_the_inbox_and_stops(lab: netlab.Lab) -> None:
    with netlab.inside(lab.server):
        server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        server.bind(SERVER)
        server.setblocking(False)  # as open_dhcp_socket hands it over
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.bind((str(RELAY), 67))
    client.settimeout(0.5)
    changes_in: set[str] = set()

    def on_change() -> None:
        changes_in.add(threading.current_thread().name)

    actor = PoolActor(parse_ippool(POOL), socket_factory=lambda _: server, on_change=on_change)
    actor.handle_now(RestoreReservation(OWNER, MAC, IP, "vm1"))

    async def main() -> None:
        ask = trio.to_thread.run_sync
        with trio.fail_after(30):  # a hang is a failure, not a stuck CI job
            async with trio.open_nursery() as nursery:
                await nursery.start(actor.run)
                changes_in.clear()

                offer = await ask(exchange, client, request(MessageType.DISCOVER, xid=1))
                assert offer is not None
                assert (offer.message_type, offer.yiaddr, offer.xid) == (MessageType.OFFER, IP, 1)
                again = await ask(exchange, client, request(MessageType.DISCOVER, xid=2))
                assert again is not None and again.xid == 2  # the replay, xid patched

                # A DECLINE is counted by the packet thread, reported on the trio thread.
                decline = request(MessageType.DECLINE, xid=3, extra={OptionCode.REQUESTED_IP: IP})
                assert await ask(exchange, client, decline) is None
                state: PoolState = await actor.ask(Inspect())
                assert state.declined == (IP,)
                with trio.fail_after(5):
                    while not changes_in:
                        await trio.sleep(0.01)
                assert changes_in == {threading.main_thread().name}

                # Releasing the VM through the inbox silences the packet thread at once.
                await actor.ask(ReleaseOwner(OWNER))
                assert await ask(exchange, client, request(MessageType.DISCOVER, xid=4)) is None
                nursery.cancel_scope.cancel()

    # trio.run returning means the packet thread returned: it is never abandoned.
    trio.run(main)
    assert server.fileno() == -1
    # Waking the thread to stop is not mistaken for a packet.
    assert actor.responder.counters.malformed == 0
    client.close()


def test_pausing_stops_the_packet_thread_and_unpausing_starts_a_new_one(lab: netlab.Lab) -> None:
    sockets: list[socket.socket] = []

    def factory(_: str) -> socket.socket:
        with netlab.inside(lab.server):
            server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(SERVER)
        server.setblocking(False)
        sockets.append(server)
        return server

    with netlab.inside(lab.server):
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.bind((str(RELAY), 67))
    client.settimeout(0.5)
    config = parse_ippool(POOL)
    paused = parse_ippool({**POOL, "spec": {**POOL["spec"], "paused": True}})
    actor = PoolActor(config, socket_factory=factory)
    actor.handle_now(RestoreReservation(OWNER, MAC, IP, "vm1"))

    async def main() -> None:
        ask = trio.to_thread.run_sync
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                await nursery.start(actor.run)
                assert await ask(exchange, client, request(MessageType.DISCOVER, xid=1))

                await actor.ask(Reconfigure(paused))
                assert not actor.serving
                assert sockets[0].fileno() == -1
                assert await ask(exchange, client, request(MessageType.DISCOVER, xid=2)) is None

                await actor.ask(Reconfigure(config))
                assert actor.serving and len(sockets) == 2
                reply = await ask(exchange, client, request(MessageType.DISCOVER, xid=3))
                assert reply is not None and reply.yiaddr == IP
                nursery.cancel_scope.cancel()

    trio.run(main)
    assert all(s.fileno() == -1 for s in sockets)
    client.close()


class LockProbe(logging.Handler):
    """Notes, for each record, whether the pool's lock was free as it was written."""

    def __init__(self, lock: threading.Lock) -> None:
        super().__init__(logging.DEBUG)
        self.pool_lock = lock  # not `lock`: Handler.handle holds self.lock around emit
        self.seen: list[tuple[str, bool]] = []

    def emit(self, record: logging.LogRecord) -> None:
        free = self.pool_lock.acquire(blocking=False)
        if free:
            self.pool_lock.release()
        self.seen.append((record.getMessage(), free))


def test_the_packet_thread_logs_each_packet_after_letting_go_of_the_lock(
    lab: netlab.Lab,
) -> None:
    with netlab.inside(lab.server):
        server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        server.bind(SERVER)
        server.setblocking(False)
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.bind((str(RELAY), 67))
    client.settimeout(0.5)
    actor = PoolActor(parse_ippool(POOL), socket_factory=lambda _: server)
    actor.handle_now(RestoreReservation(OWNER, MAC, IP, "vm1"))
    packet_log = logging.getLogger("kvip.actors._packet_thread")
    probe = LockProbe(actor._lock)
    packet_log.addHandler(probe)
    level = packet_log.level
    packet_log.setLevel(logging.DEBUG)
    stranger = encode(
        Message(
            op=Op.BOOTREQUEST,
            xid=9,
            chaddr=bytes.fromhex("020000000099"),
            hops=1,
            giaddr=RELAY,
            options=Options({OptionCode.MESSAGE_TYPE: MessageType.DISCOVER}),
        )
    )

    async def main() -> None:
        ask = trio.to_thread.run_sync
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                await nursery.start(actor.run)
                assert await ask(exchange, client, request(MessageType.DISCOVER, xid=1))
                assert await ask(exchange, client, request(MessageType.DISCOVER, xid=2))
                assert await ask(exchange, client, stranger) is None
                while len(probe.seen) < 4:  # 3 packet lines, 1 unknown MAC line
                    await trio.sleep(0.01)
                nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        packet_log.removeHandler(probe)
        packet_log.setLevel(level)
        client.close()
    assert all(free for _, free in probe.seen), probe.seen
    messages = [m for m, _ in probe.seen]
    assert messages[0].endswith(f"xid 0x00000001: OFFER {IP}")
    assert messages[1].endswith(f"xid 0x00000002: OFFER {IP}")  # the replay, too
    assert "02:00:00:00:00:99, a MAC with no reservation" in messages[2]
    assert messages[3].endswith("xid 0x00000009: no answer (unknown_mac)")
