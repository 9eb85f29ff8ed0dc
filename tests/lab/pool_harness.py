"""Driving a PoolActor without a network: a fake DHCP socket and packet strategies.

`FakeDhcpSocket` is what the pool's packet thread needs of a socket (a
blocking `recv` with a kernel receive timeout, `shutdown` to wake it, `sendto`,
`close`): packets go in through one end of a Unix datagram socketpair, so the
thread blocks and wakes exactly as on a real socket, and replies are recorded
instead of sent. `dhcp_requests` draws
well-formed requests of every type from known and unknown MACs; `garbage`
draws mutated and random bytes.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Sequence
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network, IPv6Network
from typing import Any, cast

from hypothesis import strategies as st

from kvip.ipam import PoolSpec, PoolSpec6
from kvip.serving import PoolConfig, PoolConfig6, PoolOptions, PoolOptions6
from protocol import EncodeError, Message, MessageType, Op, OptionCode, Options, encode
from tests.lab.strategies import options as random_options

ZERO = IPv4Address(0)
SUBNET = IPv4Network("198.18.0.0/24")
SERVER_IP = IPv4Address("198.18.0.1")
ROUTER = IPv4Address("198.18.0.254")


class FakeDhcpSocket:
    """A stand-in for a pool's UDP socket; `inject` a packet, `wait_handled`
    for the packet thread to be done with it, read `sent`."""

    def __init__(self) -> None:
        self._inside, self._outside = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._inside.setblocking(False)
        self.sent: list[tuple[bytes, tuple[str, int]]] = []
        self.closed = False
        self._turn = threading.Condition()
        self._injected = 0
        self._taken = 0
        self._reading = False

    def inject(self, packet: bytes) -> None:
        with self._turn:
            self._injected += 1
        self._outside.send(packet)

    def wait_handled(self, timeout: float) -> bool:
        """Block until the reader took every injected packet and came back to
        `recv` for more: the packet thread has then answered (sent) each one.
        False if that did not happen within `timeout` seconds."""
        with self._turn:
            return self._turn.wait_for(
                lambda: self._reading and self._taken == self._injected, timeout
            )

    def fileno(self) -> int:
        return self._inside.fileno()

    def recv(self, size: int) -> bytes:
        with self._turn:
            self._reading = True
            self._turn.notify_all()
        data = self._inside.recv(size)
        with self._turn:
            self._reading = False
            self._taken += 1
        return data

    # What the pool's packet thread does with a real socket: block with a
    # kernel receive timeout, and get woken by a shutdown when it must stop.
    def setblocking(self, flag: bool) -> None:
        self._inside.setblocking(flag)

    def setsockopt(self, level: int, option: int, value: bytes) -> None:
        self._inside.setsockopt(level, option, value)

    def shutdown(self, how: int) -> None:
        self._inside.shutdown(how)

    def sendto(self, payload: bytes, address: tuple[str, int]) -> int:
        self.sent.append((bytes(payload), address))
        return len(payload)

    def close(self) -> None:
        self.closed = True
        self._inside.close()
        self._outside.close()

    def __enter__(self) -> FakeDhcpSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FakeSocketFactory:
    """A PoolActor socket factory; `sockets[-1]` is the one the actor serves."""

    def __init__(self) -> None:
        self.sockets: list[FakeDhcpSocket] = []
        self.interfaces: list[str] = []

    def __call__(self, interface: str) -> socket.socket:
        self.interfaces.append(interface)
        self.sockets.append(FakeDhcpSocket())
        # The actor only calls what FakeDhcpSocket has; its type says socket.
        return cast(socket.socket, self.sockets[-1])

    @property
    def current(self) -> FakeDhcpSocket:
        return self.sockets[-1]


def _host(number: int) -> IPv4Address:
    return IPv4Address(int(SUBNET.network_address) + number)


def pool_config(
    *,
    start: int = 10,
    end: int = 40,
    exclude: Sequence[int] = (),
    router: bool = True,
    interface: str = "eth1",
    paused: bool = False,
    lease_time: int = 600,
) -> PoolConfig:
    """A pool on 198.18.0.0/24 whose range is .start-.end (host numbers)."""
    gateway = ROUTER if router else None
    spec = PoolSpec(
        subnet=SUBNET,
        start=_host(start),
        end=_host(end),
        server_ip=SERVER_IP,
        router=gateway,
        exclude=tuple(_host(n) for n in exclude),
    )
    options = PoolOptions(
        server_ip=SERVER_IP,
        subnet=SUBNET,
        router=gateway,
        dns=(IPv4Address("198.18.0.53"),),
        domain_name="fuzz.example",
        lease_time=lease_time,
    )
    return PoolConfig(
        name="fuzz",
        network="default/net1",
        interface=interface,
        spec=spec,
        options=options,
        paused=paused,
    )


@st.composite
def pool_configs(draw: st.DrawFn) -> PoolConfig:
    """Small ranges (exhaustion is common) that overlap, so that a reconfigure
    keeps some reservations and evicts others; .1 (server) and .254 (router)
    may fall inside."""
    start = draw(st.integers(1, 60))
    end = draw(st.integers(start, min(start + draw(st.sampled_from([2, 8, 30])), 254)))
    exclude = draw(st.lists(st.integers(start, end), max_size=4))
    return pool_config(
        start=start,
        end=end,
        exclude=exclude,
        router=draw(st.booleans()),
        interface=draw(st.sampled_from(["eth1", "eth1", "eth2"])),
        paused=draw(st.booleans()) and draw(st.booleans()),
        lease_time=draw(st.sampled_from([60, 600, 86400])),
    )


def in_subnet(low: int = 0, high: int = 255) -> st.SearchStrategy[IPv4Address]:
    return st.integers(low, high).map(_host)


u16 = st.integers(0, 0xFFFF)
any_address = st.integers(0, 0xFFFFFFFF).map(IPv4Address)
mac_addresses = st.binary(min_size=6, max_size=6)


@st.composite
def dhcp_requests(
    draw: st.DrawFn, *, macs: Sequence[bytes], addresses: Sequence[IPv4Address]
) -> bytes:
    """A well-formed DHCP request: any message type, from one of `macs` or a
    random chaddr, naming one of `addresses` (the pool's) or any other, with
    random header fields and a few random options beside the usual ones."""
    known = st.sampled_from(list(macs)) if macs else mac_addresses
    ours = st.sampled_from(list(addresses)) if addresses else in_subnet()
    address = ours | in_subnet() | any_address
    kind: Any = draw(
        st.sampled_from(MessageType) | st.sampled_from(MessageType) | st.integers(0, 255)
    )
    extra = draw(random_options(max_options=3))
    values: dict[int, Any] = {int(code): value for code, value in extra.items()}
    values[OptionCode.MESSAGE_TYPE] = kind
    for code, value in (
        (OptionCode.REQUESTED_IP, address),
        (OptionCode.SERVER_ID, st.just(SERVER_IP) | any_address),
        (OptionCode.MAX_MESSAGE_SIZE, st.integers(0, 1500) | u16),
        (OptionCode.PARAMETER_REQUEST_LIST, st.lists(st.integers(0, 255), max_size=12).map(tuple)),
        (OptionCode.CLIENT_ID, st.binary(max_size=300)),
        (OptionCode.RAPID_COMMIT, st.just(b"")),
    ):
        if draw(st.booleans()):
            values[code] = draw(value)
        elif draw(st.booleans()):
            values.pop(code, None)
    message = Message(
        op=draw(st.sampled_from([Op.BOOTREQUEST] * 6 + [Op.BOOTREPLY])),
        xid=draw(st.integers(0, 0xFFFFFFFF)),
        chaddr=draw(known | known | mac_addresses | st.binary(max_size=16)),
        htype=draw(st.just(1) | st.integers(0, 255)),
        hops=draw(st.integers(0, 2) | st.integers(0, 255)),
        secs=draw(u16),
        flags=draw(st.sampled_from([0, 0x8000]) | u16),
        ciaddr=draw(st.just(ZERO) | address),
        giaddr=draw(st.just(ZERO) | st.just(ZERO) | in_subnet() | any_address),
        options=Options(values),
    )
    try:
        return encode(message)
    except EncodeError:
        # Only options too long for any packet refuse; send what fits instead.
        values.pop(OptionCode.CLIENT_ID, None)
        return encode(replace(message, options=Options(values)))


@st.composite
def mutations(draw: st.DrawFn, packet: bytes) -> bytes:
    """`packet` with a few bytes changed, cut, inserted or duplicated."""
    data = bytearray(packet)
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        action = draw(st.sampled_from(["set", "cut", "insert", "copy"]))
        if action == "set" and data:
            data[pos] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[pos : pos + draw(st.integers(1, 40))]
        elif action == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        else:
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 40))]
    return bytes(data)


def garbage(*, macs: Sequence[bytes], addresses: Sequence[IPv4Address]) -> st.SearchStrategy[bytes]:
    """Random bytes, and mutations of well-formed requests."""
    valid = dhcp_requests(macs=macs, addresses=addresses)
    return st.binary(max_size=600) | valid.flatmap(mutations)


#: A dual-stack pool's IPv6 subnet (dual_config).
SUBNET6 = IPv6Network("2001:db8:0:1::/64")


def dual_config(start6: int = 0x10, end6: int = 0x20, **v4: object) -> PoolConfig:
    """pool_config (paused) plus an IPv6 range ::start6-::end6 of SUBNET6."""
    spec6 = PoolSpec6(
        subnet=SUBNET6,
        start=SUBNET6.network_address + start6,
        end=SUBNET6.network_address + end6,
        server_ip=SUBNET6.network_address + 1,
    )
    options6 = PoolOptions6(subnet=SUBNET6, dns=(SUBNET6.network_address + 0x53,))
    config = pool_config(paused=True, **v4)  # type: ignore[arg-type]
    return replace(config, v6=PoolConfig6(spec=spec6, options=options6))


def only6_config(start6: int = 0x10, end6: int = 0x20, **kwargs: object) -> PoolConfig:
    """dual_config without its IPv4 half: an IPv6-only pool (paused)."""
    return replace(dual_config(start6, end6, **kwargs), spec=None, options=None, ntp_names=())
