"""The HA lab's scripted client: every DHCP exchange timed against a deadline.

``Probe`` runs in a thread of its own with a socket opened inside a client
namespace (a socket stays in the namespace it was made in). It cycles through
the four ways a client talks to a DHCP server (RFC 2131 4.4):

- ``dora``: broadcast DISCOVER, then a REQUEST naming the first OFFER's server;
- ``renew``: a unicast REQUEST (ciaddr set) to the server identifier of the
  last ACK, as a client does at T1;
- ``rebind``: the same REQUEST broadcast, as a client does at T2;
- ``init-reboot``: a broadcast REQUEST for the recorded address (option 50), as
  a rebooted client does.

Each exchange is one attempt, no retransmission: it counts as answered when
the right reply (an ACK of the recorded address) came within ``deadline``.
Every OFFER or ACK seen is checked against the recorded address; one naming
another address is a wrong answer. ``first_lease`` times a new VM's DORA.
Nothing here imports pytest.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address

from protocol import DecodeError, Message, MessageType, Op, Options, decode, encode
from tests.lab.netlab import Client, inside

SERVER_PORT, CLIENT_PORT = 67, 68
KINDS = ("dora", "renew", "rebind", "init-reboot")
BROADCAST = 0x8000
ZERO = IPv4Address(0)


@dataclass(frozen=True, slots=True)
class Exchange:
    """One scripted exchange: when it started (time.monotonic()), what it was,
    and how it went."""

    kind: str
    started: float
    #: Seconds until the right answer, None when it did not come within the deadline.
    latency: float | None
    #: Addresses offered or acknowledged that are not the recorded one.
    wrong: tuple[str, ...] = ()
    nak: bool = False
    #: Where a unicast RENEW went (the server identifier of the last ACK).
    to: IPv4Address | None = None


@contextlib.contextmanager
def client_socket(client: Client) -> Iterator[socket.socket]:
    """A UDP socket on 0.0.0.0:68 of ``client``'s interface, inside its namespace."""
    with inside(client.netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, client.ifname.encode())
        sock.bind(("0.0.0.0", CLIENT_PORT))
        yield sock


class Conversation:
    """One client identity (chaddr) on one socket; sends and collects replies."""

    def __init__(self, sock: socket.socket, mac: str, expected: IPv4Address | None) -> None:
        self.sock = sock
        self.chaddr = bytes.fromhex(mac.replace(":", ""))
        self.expected = expected
        #: The server identifier of the last ACK: where a RENEW goes.
        self.server_id: IPv4Address | None = None
        #: The address of the last ACK.
        self.acked: IPv4Address | None = None

    def request(self, xid: int, options: dict[int, object], **fields: object) -> bytes:
        message = Message(
            op=Op.BOOTREQUEST,
            xid=xid,
            chaddr=self.chaddr,
            options=Options({53: options.pop(53), 57: 1500, **options}),
            **fields,  # type: ignore[arg-type]
        )
        return encode(message)

    def send(self, payload: bytes, destination: IPv4Address | None = None) -> None:
        target = str(destination) if destination is not None else "255.255.255.255"
        with contextlib.suppress(OSError):  # e.g. no route while a link is down
            self.sock.sendto(payload, (target, SERVER_PORT))

    def wait(
        self, xid: int, wanted: set[MessageType], *, until: float, wrong: list[str]
    ) -> Message | None:
        """The first reply to ``xid`` of a ``wanted`` type (or a NAK) before
        ``until``; every OFFER/ACK on the way is checked for a wrong address."""
        while (left := until - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                time.sleep(0.01)  # e.g. an ICMP error queued on the socket: not a reply
                continue
            try:
                reply = decode(data)
            except DecodeError:
                continue
            if reply.op != Op.BOOTREPLY or reply.xid != xid or reply.chaddr != self.chaddr:
                continue
            kind = reply.message_type
            offered = kind in (MessageType.OFFER, MessageType.ACK)
            if offered and self.expected is not None and reply.yiaddr != self.expected:
                wrong.append(f"{kind.name if kind else kind} {reply.yiaddr}")
                continue
            if kind in wanted or kind == MessageType.NAK:
                return reply
        return None

    def exchange(self, kind: str, *, deadline: float) -> Exchange:
        started = time.monotonic()
        until = started + deadline
        xid = random.getrandbits(32)
        wrong: list[str] = []
        to: IPv4Address | None = None
        expected = self.expected
        if kind == "dora":
            self.send(self.request(xid, {53: MessageType.DISCOVER}, flags=BROADCAST))
            offer = self.wait(xid, {MessageType.OFFER}, until=until, wrong=wrong)
            if offer is None or offer.message_type != MessageType.OFFER:
                return Exchange(kind, started, None, tuple(wrong), offer is not None)
            options: dict[int, object] = {53: MessageType.REQUEST, 50: offer.yiaddr}
            if offer.server_id is not None:
                options[54] = offer.server_id
            self.send(self.request(xid, options, flags=BROADCAST))
        elif kind == "renew" or kind == "rebind":
            assert expected is not None
            unicast = to = self.server_id if kind == "renew" else None
            self.send(self.request(xid, {53: MessageType.REQUEST}, ciaddr=expected), unicast)
        elif kind == "init-reboot":
            assert expected is not None
            options = {53: MessageType.REQUEST, 50: expected}
            self.send(self.request(xid, options, flags=BROADCAST))
        else:
            raise ValueError(kind)
        ack = self.wait(xid, {MessageType.ACK}, until=until, wrong=wrong)
        if ack is None or ack.message_type != MessageType.ACK:
            return Exchange(kind, started, None, tuple(wrong), ack is not None, to)
        if ack.server_id is not None:
            self.server_id = ack.server_id
        self.acked = ack.yiaddr
        return Exchange(kind, started, time.monotonic() - started, tuple(wrong), to=to)


class Probe:
    """Scripted exchanges for one VM (``mac``, recorded address ``expected``) on
    ``client``, back to back with ``pause`` between them, until ``stop()``.

    ``client``'s interface must hold ``expected`` (a RENEW's ACK is unicast to
    ciaddr); the lab puts it there. ``exchanges`` grows while it runs."""

    def __init__(
        self,
        client: Client,
        *,
        expected: IPv4Address,
        server_id: IPv4Address,
        deadline: float = 1.0,
        pause: float = 0.15,
    ) -> None:
        self.client = client
        self.expected = expected
        self.server_id = server_id
        self.deadline = deadline
        self.pause = pause
        self.exchanges: list[Exchange] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ha-probe", daemon=True)

    def start(self) -> Probe:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.deadline * 3 + 5)

    def _run(self) -> None:
        try:
            with client_socket(self.client) as sock:
                talk = Conversation(sock, self.client.mac, self.expected)
                talk.server_id = self.server_id
                turn = 0
                while not self._stop.is_set():
                    kind = KINDS[turn % len(KINDS)]
                    turn += 1
                    self.exchanges.append(talk.exchange(kind, deadline=self.deadline))
                    self._stop.wait(self.pause)
        except BaseException as exc:  # reported by the lab, not lost in a thread
            self.error = exc


def first_lease(
    client: Client, *, give_up: float, stop: threading.Event | None = None
) -> tuple[float, IPv4Address] | None:
    """A new VM's client: DORA once a second (as a client retransmits) until an
    ACK comes; returns (time.monotonic() of the ACK, the address), or None after
    ``give_up`` (a time.monotonic() value) or once ``stop`` is set."""
    with client_socket(client) as sock:
        talk = Conversation(sock, client.mac, None)
        while time.monotonic() < give_up and not (stop and stop.is_set()):
            result = talk.exchange("dora", deadline=1.0)
            if result.latency is not None:
                assert talk.acked is not None
                return time.monotonic(), talk.acked
    return None
