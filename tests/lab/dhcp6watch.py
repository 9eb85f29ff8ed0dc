"""What DHCPv6 clients do, seen from both ends of a lab wire: the requests
on the server's port (message type, the sender's MAC, the client's DUID) and
the addresses on a client's interface with their lifetimes (``ip -6 addr``).
Shared by the real-client runners (dhcp6clients.py) and their tests.
"""

from __future__ import annotations

import ipaddress
import re
import struct
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from kvip.actors._dhcp6_socket import ETHERNET_HEADER, in_netns, open_request_socket
from kvip.serving import parse_udp6
from tests.lab.netlab import Client, LabError, run_in

IPv6 = ipaddress.IPv6Address

SOLICIT, REQUEST, CONFIRM, RENEW, REBIND, RELEASE, DECLINE = 1, 3, 4, 5, 6, 8, 9
INFORMATION_REQUEST = 11
DUID_TYPES = {1: "DUID-LLT", 2: "DUID-EN", 3: "DUID-LL", 4: "DUID-UUID"}


@dataclass(frozen=True, slots=True)
class Lease6:
    """What a DHCPv6 client reported it got, in one shape for every client."""

    client: str
    address: ipaddress.IPv6Address
    dns: tuple[ipaddress.IPv6Address, ...] = ()
    search: tuple[str, ...] = ()
    #: As the client reported them (None when it does not say).
    preferred_lifetime: int | None = None
    valid_lifetime: int | None = None
    raw: Mapping[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class Address6:
    """A global address on an interface, with what is left of its lifetimes."""

    address: ipaddress.IPv6Address
    prefixlen: int
    valid_left: int | None  # None: forever
    preferred_left: int | None


_ADDR = re.compile(
    r"inet6 (?P<addr>[0-9a-f:]+)/(?P<len>\d+) .*?valid_lft (?P<valid>\d+sec|forever)"
    r" preferred_lft (?P<pref>\d+sec|forever)"
)


def global_addresses(client: Client) -> list[Address6]:
    """The global IPv6 addresses on the client's interface (``ip -6 -o addr``)."""
    out = run_in(
        client.netns, ["ip", "-6", "-o", "addr", "show", "dev", client.ifname, "scope", "global"]
    ).stdout
    found = []
    for match in _ADDR.finditer(out):
        valid, pref = match["valid"], match["pref"]
        found.append(
            Address6(
                IPv6(match["addr"]),
                int(match["len"]),
                None if valid == "forever" else int(valid[:-3]),
                None if pref == "forever" else int(pref[:-3]),
            )
        )
    return found


def wait_address(
    client: Client, address: ipaddress.IPv6Address | None, *, timeout: float
) -> list[Address6]:
    """Wait until ``address`` is on the interface (None: until no global one is)."""
    deadline = time.monotonic() + timeout
    while True:
        held = global_addresses(client)
        if (address is None and not held) or any(a.address == address for a in held):
            return held
        if time.monotonic() > deadline:
            raise LabError(f"{client.netns}: wanted {address or 'no address'}, holds {held}")
        time.sleep(0.1)


@dataclass(frozen=True, slots=True)
class Request6:
    """One request a client sent to the server port."""

    at: float
    kind: int
    mac: str
    source: ipaddress.IPv6Address
    duid: bytes

    @property
    def duid_type(self) -> str:
        if len(self.duid) < 2:
            return "none"
        number = struct.unpack("!H", self.duid[:2])[0]
        return DUID_TYPES.get(number, f"DUID type {number}")


def client_duid(message: bytes) -> bytes:
    """The Client Identifier option (1) of a DHCPv6 client message, b"" if none."""
    offset = 4
    while offset + 4 <= len(message):
        code, length = struct.unpack_from("!HH", message, offset)
        if code == 1:
            return message[offset + 4 : offset + 4 + length]
        offset += 4 + length
    return b""


class RequestWatch:
    """Records every DHCPv6 request on the server namespace's ``ifname`` (a
    filtered packet socket, as kvip's own): a real server keeps port 547."""

    def __init__(self, netns: str, ifname: str) -> None:
        with in_netns(netns):
            self._sock = open_request_socket(ifname)
        self._sock.settimeout(0.2)
        self.requests: list[Request6] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                frame = self._sock.recv(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            datagram = parse_udp6(frame[ETHERNET_HEADER:])
            if datagram is None or not datagram.payload:
                continue
            request = Request6(
                at=time.monotonic(),
                kind=datagram.payload[0],
                mac=frame[6:12].hex(":"),
                source=datagram.source,
                duid=client_duid(datagram.payload),
            )
            with self._lock:
                self.requests.append(request)

    def seen(self, mac: str, kinds: tuple[int, ...], *, since: float = 0) -> list[Request6]:
        with self._lock:
            return [r for r in self.requests if r.mac == mac and r.kind in kinds and r.at >= since]

    def wait(
        self, mac: str, kinds: tuple[int, ...], *, since: float = 0, timeout: float
    ) -> Request6:
        """The first request of one of ``kinds`` from ``mac`` at or after ``since``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.seen(mac, kinds, since=since)
            if found:
                return found[0]
            time.sleep(0.05)
        started = deadline - timeout
        with self._lock:
            heard = [(r.kind, round(r.at - started, 2)) for r in self.requests if r.mac == mac]
        raise LabError(
            f"no DHCPv6 message of type {kinds} from {mac} in {timeout}s; heard from it "
            f"(type, seconds from the wait's start): {heard}"
        )

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(2)
        self._sock.close()
