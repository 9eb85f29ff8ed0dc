"""The DHCP server socket of one pool (DHCP.md, "Sockets")."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import socket
import struct
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path

SERVER_PORT = 67
#: Small on purpose: under overload a deep queue only turns drops into
#: seconds of latency for everyone (clients retry; stale answers help nobody).
RECEIVE_BUFFER = 256 * 1024


def open_dhcp_socket(interface: str, *, port: int = SERVER_PORT) -> socket.socket:
    """A non-blocking UDP socket on 0.0.0.0:67 that sees only `interface`.

    Bound to the wildcard address with SO_BINDTODEVICE: binding to the
    interface's own address would lose the broadcasts clients send before
    they have an address. Raises OSError when the interface does not exist.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode() + b"\0")
        sock.bind(("0.0.0.0", port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


_SIOCGIFADDR = 0x8915


def interface_address(sock: socket.socket, interface: str) -> IPv4Address | None:
    """The primary IPv4 address of `interface`, as seen from the network namespace
    `sock` was made in; None when the interface has none. OSError when it
    cannot be told (the interface is gone, or `sock` is no IPv4 socket)."""
    request = struct.pack("256s", interface.encode()[:15])
    try:
        answer = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, request)
    except OSError as exc:
        if exc.errno == errno.EADDRNOTAVAIL:
            return None
        raise
    return IPv4Address(answer[20:24])


_CLONE_NEWNET = 0x40000000


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def socket_factory_in(netns: str | None) -> Callable[[str], socket.socket]:
    """A socket factory that opens pool sockets inside the network namespace
    /run/netns/`netns` (None: the process's own). A socket stays in the
    namespace it was made in, so only the opening thread moves, briefly; the
    API server stays reachable from the process's own namespace."""
    if netns is None:
        return open_dhcp_socket
    path = Path("/run/netns") / netns

    def open_in_netns(interface: str) -> socket.socket:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            target = os.open(path, os.O_RDONLY)
            try:
                _setns(target)
            finally:
                os.close(target)
            try:
                return open_dhcp_socket(interface)
            finally:
                _setns(home)
        finally:
            os.close(home)

    return open_in_netns
