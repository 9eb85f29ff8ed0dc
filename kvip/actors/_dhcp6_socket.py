"""The DHCPv6 server sockets of one pool.

DHCPv6 has no chaddr: the server learns a client's MAC from the frame that
carried its request. So a pool reads requests from a packet socket bound to
its interface (AF_PACKET, SOCK_RAW: each frame whole, its Ethernet source at
bytes 6-11), under a classic BPF filter that passes only incoming IPv6/UDP
to port 547 with no extension headers, addressed to this host or multicast;
frames the host sends (a RELAY-REPL goes to port 547 too) and frames a
promiscuous interface overhears for other hosts are dropped. (Not SOCK_DGRAM
and the source in recvfrom's address: Python names the interface in that
address, an ioctl for every request.)

A UDP socket on [::]:547, bound to the interface, does the rest: it sends the
replies, holds the membership of ff02::1:2 (All_DHCP_Relay_Agents_and_Servers)
so the NIC's multicast filter lets SOLICITs in, and keeps the kernel from
answering unicast requests with "port unreachable". It reads nothing: a
drop-all BPF filter keeps the requests the packet socket already took from
piling up in its buffer.

Without CAP_NET_RAW (kvip's Deployment drops every capability) the kernel
refuses the packet socket. The pool then reads its requests from the UDP
socket itself (`Dhcp6Mode.UDP`): no frame, so no Ethernet source; the MAC a
request comes with is the one in its link-local source address when that is
a modified EUI-64 (`kvip.serving.eui64_mac`), else None. The Responder6 still
knows every client whose DUID carries its MAC (DUID-LL, DUID-LLT) and every
client sending from an EUI-64 link-local; a client with a DUID-EN or
DUID-UUID and a stable-privacy link-local (RFC 7217) is unknown there. An
interface that carries no Ethernet frames (a tun device, InfiniBand) has no
client MAC in its frames to read: it is served the same way.

A packet socket cannot be shut down (Linux refuses), so `receive` cannot be
woken the way the IPv4 packet thread wakes its UDP socket. It waits in
poll() on the socket it reads and an eventfd that `wake` writes to, then
reads without blocking: a stop is seen at once, and nothing wakes the thread
but a request or a stop. Poll first, not a read first: requests mostly find
the thread waiting, and a read that finds nothing queued costs a syscall and
a Python exception, more than the poll a queued request spares. (Looping a
datagram back to the packet socket does not work: packet sockets never see
frames the host loops back to itself.)
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import fcntl
import os
import select
import socket
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from ipaddress import IPv6Address
from pathlib import Path
from socket import AF_INET6, MSG_DONTWAIT, inet_ntop, inet_pton

from kvip.actors._dhcp_socket import RECEIVE_BUFFER, _setns
from kvip.serving import eui64_mac, split_udp6

SERVER_PORT6 = 547
CLIENT_PORT6 = 546
ALL_DHCP_SERVERS = IPv6Address("ff02::1:2")

ETH_P_IPV6 = 0x86DD
ARPHRD_ETHER = 1
#: The Ethernet header in front of each frame's IPv6 packet; the source MAC in it.
ETHERNET_HEADER = 14
_SOURCE_MAC = slice(6, 12)
_PACKET_MULTICAST = 2  # PACKET_HOST 0, PACKET_BROADCAST 1; OTHERHOST 3, OUTGOING 4
_SO_ATTACH_FILTER = 26
_SIOCGIFHWADDR = 0x8927
#: Ancillary data offset of the frame's packet type (linux/filter.h SKF_AD_PKTTYPE).
_SKF_AD_PKTTYPE = 0xFFFFF000 + 4


def _bpf(*instructions: tuple[int, int, int, int]) -> bytes:
    return b"".join(struct.pack("HBBI", *i) for i in instructions)


# Classic BPF on the frame from its Ethernet header (SOCK_RAW: the IPv6 packet
# at byte 14): code, jump if true, jump if false, k.
_LD_B, _LD_H, _LD_W, _JEQ, _JGT, _RET = 0x30, 0x28, 0x20, 0x15, 0x25, 0x06
REQUESTS_FILTER = _bpf(
    # Only frames to this host, its broadcasts and multicasts: not those a
    # promiscuous interface (a bridge port) overhears for other hosts, nor
    # those the host sends itself.
    (_LD_W, 0, 0, _SKF_AD_PKTTYPE),
    (_JGT, 7, 0, _PACKET_MULTICAST),
    (_LD_B, 0, 0, ETHERNET_HEADER + 0),  # version 6 (high nibble; 0x60..0x6f)
    (0x54, 0, 0, 0xF0),  # and #0xf0
    (_JEQ, 0, 4, 0x60),
    (_LD_B, 0, 0, ETHERNET_HEADER + 6),  # next header: UDP, no extension headers
    (_JEQ, 0, 2, 17),
    (_LD_H, 0, 0, ETHERNET_HEADER + 42),  # UDP destination port
    (_JEQ, 1, 0, SERVER_PORT6),
    (_RET, 0, 0, 0),
    (_RET, 0, 0, 0x40000),
)
DROP_ALL_FILTER = _bpf((_RET, 0, 0, 0))


def _attach(sock: socket.socket, program: bytes) -> None:
    """SO_ATTACH_FILTER: the kernel copies the program from the pointer in
    struct sock_fprog while the buffer is alive here."""
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = struct.pack("HL", len(program) // 8, ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)


def open_request_socket(interface: str, *, port: int = SERVER_PORT6) -> socket.socket:
    """A packet socket on the Ethernet interface `interface` that receives only
    incoming IPv6/UDP to `port`, each frame whole: the IPv6 packet at byte
    ETHERNET_HEADER, the source MAC at bytes 6-11. OSError when the
    interface does not exist."""
    packets = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        # Filter before binding (protocol 0 receives nothing): no frame slips
        # in unfiltered.
        _attach(packets, REQUESTS_FILTER if port == SERVER_PORT6 else _with_port(port))
        packets.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        packets.bind((interface, ETH_P_IPV6))
    except BaseException:
        packets.close()
        raise
    return packets


@dataclass(frozen=True, slots=True)
class Interface6:
    """What a pool's DHCPv6 side needs of its interface."""

    name: str
    index: int
    mac: bytes
    link_local: IPv6Address | None
    #: It carries Ethernet frames (ARPHRD_ETHER): their source MACs can be read.
    ethernet: bool = True


def link_local_address(interface: str) -> IPv6Address | None:
    """The link-local address of `interface` in the calling thread's network
    namespace that has passed duplicate address detection; None if none has."""
    with contextlib.suppress(FileNotFoundError):
        for line in Path("/proc/thread-self/net/if_inet6").read_text().splitlines():
            address, _index, _length, scope, flags, name = line.split()
            # Scope 0x20 is link; flag 0x40 tentative, 0x80 permanent, 0x01 temporary.
            if name == interface and int(scope, 16) == 0x20 and not int(flags, 16) & 0x40:
                return IPv6Address(bytes.fromhex(address))
    return None


Received6 = tuple[bytes, tuple[str, int, int, int], bytes | None]


class Dhcp6Mode(enum.Enum):
    """How a pool's DHCPv6 side reads requests, and so what it knows of a client."""

    #: From a packet socket (CAP_NET_RAW): every request with its frame's
    #: Ethernet source, so every client is known by the MAC it sends from.
    PACKET = "packet"
    #: From the UDP socket (no CAP_NET_RAW, or no Ethernet frames on the
    #: interface): a client is known by the MAC in its DUID-LL(T) or in its
    #: EUI-64 link-local address, or not at all.
    UDP = "udp"


class Dhcp6Sockets:
    """The sockets a pool reads DHCPv6 requests from and answers with, on one
    interface: a packet socket and a UDP socket, or the UDP socket alone when
    the packet socket is refused or the interface carries no Ethernet frames
    (see the module's docstring; `mode` says which)."""

    def __init__(self, interface: str, *, port: int = SERVER_PORT6) -> None:
        self.port = port
        self._timeout_ms = 1000
        self._wakeup = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._poller = select.poll()
        self.packets: socket.socket | None = None
        self.mode = Dhcp6Mode.UDP
        try:
            self.udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        except BaseException:
            os.close(self._wakeup)
            raise
        try:
            udp = self.udp
            link_type, mac = _hardware_address(udp, interface)
            if link_type == ARPHRD_ETHER:
                with contextlib.suppress(PermissionError):  # EPERM, EACCES: no CAP_NET_RAW
                    self.packets = open_request_socket(interface, port=port)
                    self.mode = Dhcp6Mode.PACKET
            if self.packets is not None:
                _attach(udp, DROP_ALL_FILTER)
                udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
                self.packets.setblocking(False)
                self._poller.register(self.packets, select.POLLIN)
            else:
                udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
                # It stays blocking for sends; reads are MSG_DONTWAIT.
                self._poller.register(udp, select.POLLIN)
            self._poller.register(self._wakeup, select.POLLIN)
            udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            udp.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode() + b"\0")
            index = socket.if_nametoindex(interface)
            self.interface = Interface6(
                interface, index, mac, link_local_address(interface), link_type == ARPHRD_ETHER
            )
            self._index = index
            udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
            # RFC 8415 does not ask for a hop limit; replies stay on the link
            # or travel back to a relay.
            udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 1)
            udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 64)
            udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 1)
            udp.bind(("::", port, 0, 0))
            group = ALL_DHCP_SERVERS.packed + struct.pack("@I", index)
            udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, group)
        except BaseException:
            self.close()
            raise

    def fileno(self) -> int:
        """The socket requests are read from."""
        return (self.udp if self.packets is None else self.packets).fileno()

    def set_timeout(self, seconds: float) -> None:
        """How long `receive` waits at most for a request (default 1 s)."""
        self._timeout_ms = max(0, round(seconds * 1000))

    def receive(self) -> Received6 | None:
        """The next request: (payload, (source address, source port, 0, interface
        index), source MAC). None when the timeout passed, when woken by
        `wake`, or for a frame that is no UDP datagram to our port. The MAC is
        the frame's (`Dhcp6Mode.PACKET`), or the one in an EUI-64 link-local
        source address, None for any other (`Dhcp6Mode.UDP`)."""
        if not self._wait():
            return None
        if self.packets is None:
            return self._receive_datagram()
        try:
            frame = self.packets.recv(65535, MSG_DONTWAIT)
        except BlockingIOError:
            return None
        fields = split_udp6(frame, ETHERNET_HEADER)
        if fields is None or fields[3] != self.port:
            return None
        source, source_port, _, _, payload = fields
        source_address = (inet_ntop(AF_INET6, source), source_port, 0, self._index)
        return payload, source_address, frame[_SOURCE_MAC]

    def _receive_datagram(self) -> Received6 | None:
        try:
            payload, (host, source_port, _, _) = self.udp.recvfrom(65535, MSG_DONTWAIT)
        except BlockingIOError:
            return None
        mac = eui64_mac(inet_pton(AF_INET6, host))
        return payload, (host, source_port, 0, self._index), mac

    def _wait(self) -> bool:
        """Wait in poll() until a request is queued or the timeout passed; False
        when it passed or `wake` was called."""
        ready = self._poller.poll(self._timeout_ms)
        for fd, _ in ready:
            if fd == self._wakeup:
                return False
        return bool(ready)

    def send(self, payload: bytes, address: tuple[str, int, int, int]) -> None:
        """Send `payload` to `address` (host, port, flowinfo, scope id) from port 547."""
        self.udp.sendto(payload, address)

    def wake(self) -> None:
        """Make a waiting `receive` return None at once, and every later one
        (the owner is stopping)."""
        with contextlib.suppress(OSError):  # closed already: nobody waits
            os.eventfd_write(self._wakeup, 1)

    def close(self) -> None:
        if self.packets is not None:
            self.packets.close()
        self.udp.close()
        with contextlib.suppress(OSError):
            os.close(self._wakeup)


def _with_port(port: int) -> bytes:
    """REQUESTS_FILTER listening on another port (tests run beside a real server)."""
    program = bytearray(REQUESTS_FILTER)
    struct.pack_into("HBBI", program, 8 * 8, _JEQ, 1, 0, port)
    return bytes(program)


def _hardware_address(sock: socket.socket, interface: str) -> tuple[int, bytes]:
    """The link type (ARPHRD_*) and MAC of `interface` in `sock`'s network
    namespace (SIOCGIFHWADDR needs no capability)."""
    request = struct.pack("256s", interface.encode()[:15])
    answer = fcntl.ioctl(sock.fileno(), _SIOCGIFHWADDR, request)
    link_type: int = struct.unpack_from("@H", answer, 16)[0]
    return link_type, answer[18:24]


@contextlib.contextmanager
def in_netns(netns: str | None) -> Iterator[None]:
    """Move the calling thread into /run/netns/`netns` for the block (None:
    stay); sockets made in it stay in that namespace."""
    if netns is None:
        yield
        return
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(Path("/run/netns") / netns, os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(home)


def dhcp6_sockets_in(netns: str | None) -> Callable[[str], Dhcp6Sockets]:
    """A factory that opens a pool's `Dhcp6Sockets` inside the network
    namespace /run/netns/`netns` (None: the process's own)."""

    def open_sockets(interface: str) -> Dhcp6Sockets:
        with in_netns(netns):
            return Dhcp6Sockets(interface)

    return open_sockets
