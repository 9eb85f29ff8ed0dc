"""Hand-made DHCP packets sent from a lab client's namespace (built with kvip's codec).

- ``relay_exchange``: one relayed request from a socket at giaddr:67, and its reply;
- ``broadcast_raw``: arbitrary bytes broadcast to port 67 from a client's wire;
- ``wait_for_wire``: wait until a client's bridge port forwards, so that a single
  hand-made packet is not lost while the bridge learns of the carrier.

Real clients live in dhcpclients (one-shot) and dhcpsessions (kept running).
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterable

from protocol import DecodeError, Message, decode, encode
from tests.lab.netlab import Client, Lab, LabError, inside, run_in

SERVER_PORT = 67
CLIENT_PORT = 68


def relay_exchange(
    client: Client, request: Message, *, server: str, timeout: float = 3.0
) -> Message | None:
    """Act as a relay agent on ``client``: send ``request`` (giaddr set, an address
    of ``client``) from giaddr:67 to ``server``:67 and return the first reply
    that arrives at giaddr:67 (RFC 2131 4.1), or None after ``timeout`` seconds."""
    with inside(client.netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        sock.bind((str(request.giaddr), SERVER_PORT))
        sock.settimeout(timeout)
        sock.sendto(encode(request), (server, SERVER_PORT))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = sock.recv(4096)
            except TimeoutError:
                return None
            with contextlib.suppress(DecodeError):
                reply = decode(data)
                if reply.xid == request.xid:
                    return reply
    return None


def broadcast_raw(client: Client, payloads: Iterable[bytes]) -> int:
    """Broadcast each payload to 255.255.255.255:67 from ``client``'s interface
    (as a client without an address does); returns how many were sent."""
    with inside(client.netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent = 0
    with sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, client.ifname.encode())
        sock.bind(("0.0.0.0", CLIENT_PORT))
        for payload in payloads:
            sock.sendto(payload, ("255.255.255.255", SERVER_PORT))
            sent += 1
    return sent


def wait_for_wire(lab: Lab, client: Client, *, timeout: float = 5.0) -> None:
    """Wait until ``client``'s veth is a forwarding port of its server bridge.

    The bridge enables a port when it learns of the carrier, which the kernel
    reports lazily (up to a second after the link comes up): real clients
    retransmit through that, a test's single hand-made packet would be lost.
    """
    shown = run_in(client.netns, ["ip", "-j", "link", "show", "dev", client.ifname]).stdout
    peer = json.loads(shown)[0]["link_index"]  # the server end's ifindex
    bridge = lab.ports[client.port].bridge if client.port in lab.ports else client.port
    deadline = time.monotonic() + timeout
    while True:
        listing = run_in(lab.server, ["ip", "-j", "-d", "link", "show", "master", bridge]).stdout
        for port in json.loads(listing):
            slave = port.get("linkinfo", {}).get("info_slave_data", {})
            if port["ifindex"] == peer and slave.get("state") == "forwarding":
                return
        if time.monotonic() > deadline:
            raise LabError(f"{client.netns}: its bridge port never started forwarding")
        time.sleep(0.02)
