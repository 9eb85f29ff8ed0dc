"""The DHCP server socket of one pool (DHCP.md, "Sockets")."""

from __future__ import annotations

import socket

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
