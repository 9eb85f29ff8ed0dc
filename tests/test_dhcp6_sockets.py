"""A pool's DHCPv6 sockets on a lab wire: requests arrive with the sender's
MAC and link-local address, replies reach the client's port 546, the UDP
socket piles nothing up, and a blocked receive can be woken. Without
CAP_NET_RAW the UDP socket reads the requests, and the MAC comes from an
EUI-64 link-local source or not at all."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv6Address
from pathlib import Path

import pytest

from kvip.actors._dhcp6_socket import Dhcp6Mode, Dhcp6Sockets, dhcp6_sockets_in
from tests.lab import netlab
from tests.lab.capabilities import CAP_NET_RAW, lowered
from tests.lab.dhcp6clients import Dhclient6
from tests.lab.dhcp6lab import add_address6, enable_ipv6, stable_privacy_link_local
from tests.lab.dhcp6watch import SOLICIT, client_duid
from tests.lab.dhcpchecks import need

pytestmark = pytest.mark.netns

PREFIX = "kv6s"
CLIENT_MAC = "52:54:00:06:01:01"


@pytest.fixture(autouse=True, scope="module")
def _clear_crashed_runs() -> None:
    if netlab.is_root():
        netlab.cleanup_stale(PREFIX)


@pytest.fixture
def wire() -> Iterator[tuple[netlab.Lab, netlab.Client]]:
    need("ip")
    with netlab.netlab(PREFIX) as lab:
        client = lab.add_client(CLIENT_MAC)
        enable_ipv6(lab.server, "eth1")
        enable_ipv6(client.netns, client.ifname)
        yield lab, client


def _link_local(netns: str, ifname: str) -> IPv6Address:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        out = netlab.run_in(
            netns, ["ip", "-6", "-o", "addr", "show", "dev", ifname, "scope", "link"]
        )
        words = out.stdout.split()
        if "inet6" in words and "tentative" not in words:
            return IPv6Address(words[words.index("inet6") + 1].split("/")[0])
        time.sleep(0.05)
    raise netlab.LabError(f"no link-local address on {ifname} in {netns}")


def _client_exchange(ifname: str, request: bytes, unicast_to: str | None) -> tuple[bytes, str]:
    """As a DHCPv6 client would: from [::]:546 to ff02::1:2 (or the server's
    link-local), then the first datagram back."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
    sock.bind(("::", 546))
    sock.settimeout(5)
    index = socket.if_nametoindex(ifname)
    sock.sendto(request, (unicast_to or "ff02::1:2", 547, 0, index))
    data, source = sock.recvfrom(4096)
    return data, source[0]


def test_requests_come_with_mac_and_link_local_and_replies_reach_port_546(
    wire: tuple[netlab.Lab, netlab.Client],
) -> None:
    lab, client = wire
    client_ll = _link_local(client.netns, client.ifname)
    server_ll = _link_local(lab.server, "eth1")
    sockets = dhcp6_sockets_in(lab.server)("eth1")
    try:
        sockets.set_timeout(5)
        assert sockets.interface.link_local == server_ll
        assert sockets.interface.name == "eth1"
        for unicast_to in (None, str(server_ll)):
            with ThreadPoolExecutor(1) as pool:
                future = pool.submit(
                    netlab.call_in, client.netns, _client_exchange, client.ifname,
                    b"\x01\xab\xcd\xef", unicast_to,
                )  # fmt: skip
                received = None
                while received is None:
                    received = sockets.receive()
                payload, source, mac = received
                assert payload == b"\x01\xab\xcd\xef"
                assert source == (str(client_ll), 546, 0, sockets.interface.index)
                assert mac == bytes.fromhex(CLIENT_MAC.replace(":", ""))
                sockets.send(b"\x07\xab\xcd\xef", source)
                answer, answered_from = future.result(timeout=10)
            assert answer == b"\x07\xab\xcd\xef"
            assert answered_from == str(server_ll)
        # The UDP socket heard both requests and kept neither.
        with pytest.raises(BlockingIOError):
            sockets.udp.recv(4096, socket.MSG_DONTWAIT)
    finally:
        sockets.close()


def _without_net_raw(netns: str) -> Dhcp6Sockets:
    """The sockets as kvip's pod opens them: without CAP_NET_RAW, which the
    kernel then really asks for a packet socket."""
    with lowered(CAP_NET_RAW):
        with pytest.raises(PermissionError):
            socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0)
        return dhcp6_sockets_in(netns)("eth1")


Received = tuple[tuple[str, int, int, int], bytes | None]


def _exchange(sockets: Dhcp6Sockets, client: netlab.Client, unicast_to: str | None) -> Received:
    """One request from the client, and the server's answer back to it."""
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(
            netlab.call_in, client.netns, _client_exchange, client.ifname,
            b"\x01\xab\xcd\xef", unicast_to,
        )  # fmt: skip
        received = None
        while received is None:
            received = sockets.receive()
        payload, source, mac = received
        assert payload == b"\x01\xab\xcd\xef"
        sockets.send(b"\x07\xab\xcd\xef", source)
        answer, answered_from = future.result(timeout=10)
    assert answer == b"\x07\xab\xcd\xef"
    assert answered_from == str(sockets.interface.link_local)
    return source, mac


def test_without_net_raw_the_udp_socket_reads_and_an_eui64_link_local_names_the_mac(
    wire: tuple[netlab.Lab, netlab.Client],
) -> None:
    lab, client = wire
    client_ll = _link_local(client.netns, client.ifname)
    server_ll = _link_local(lab.server, "eth1")
    sockets = _without_net_raw(lab.server)
    try:
        assert sockets.mode is Dhcp6Mode.UDP and sockets.packets is None
        sockets.set_timeout(5)
        server_mac = netlab.run_in(lab.server, ["cat", "/sys/class/net/eth1/address"])
        assert sockets.interface.mac.hex(":") == server_mac.stdout.strip()
        assert sockets.interface.link_local == server_ll
        for unicast_to in (None, str(server_ll)):
            source, mac = _exchange(sockets, client, unicast_to)
            assert source == (str(client_ll), 546, 0, sockets.interface.index)
            # The kernel formed the client's link-local from its MAC (EUI-64).
            assert mac == bytes.fromhex(CLIENT_MAC.replace(":", ""))
        # A stable-privacy link-local (RFC 7217) names no MAC.
        stable_privacy_link_local(client.netns, client.ifname)
        private = _link_local(client.netns, client.ifname)
        assert private != client_ll
        source, mac = _exchange(sockets, client, None)
        assert source == (str(private), 546, 0, sockets.interface.index)
        assert mac is None
    finally:
        sockets.close()


@pytest.mark.parametrize("net_raw", [True, False], ids=["packet", "udp"])
def test_wake_returns_a_waiting_receive_at_once(
    wire: tuple[netlab.Lab, netlab.Client], net_raw: bool
) -> None:
    lab, _ = wire
    sockets = dhcp6_sockets_in(lab.server)("eth1") if net_raw else _without_net_raw(lab.server)
    try:
        assert sockets.mode is (Dhcp6Mode.PACKET if net_raw else Dhcp6Mode.UDP)
        sockets.set_timeout(30)
        returned = threading.Event()

        def receive() -> None:
            assert sockets.receive() is None
            returned.set()

        thread = threading.Thread(target=receive)
        thread.start()
        time.sleep(0.3)
        assert not returned.is_set()
        sockets.wake()
        assert returned.wait(1), "receive stayed blocked after wake()"
        thread.join()
        started = time.monotonic()
        assert sockets.receive() is None  # stays woken: the owner is stopping
        assert time.monotonic() - started < 0.5
    finally:
        sockets.close()


class _Reads:
    """A packet socket that records every read of it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.reads = sock, 0

    def recv(self, size: int, flags: int = 0) -> bytes:
        self.reads += 1
        return self.sock.recv(size, flags)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()


def test_receive_reads_only_when_poll_says_a_request_is_queued(
    wire: tuple[netlab.Lab, netlab.Client],
) -> None:
    """No read that finds nothing (a syscall and a Python exception per request
    on an idle server): a receive that times out or is woken reads nothing,
    one that is told a request is queued reads it once."""
    lab, client = wire
    sockets = dhcp6_sockets_in(lab.server)("eth1")
    assert sockets.packets is not None
    reads = _Reads(sockets.packets)
    sockets.packets = reads  # type: ignore[assignment]
    try:
        sockets.set_timeout(0.2)
        assert sockets.receive() is None
        assert reads.reads == 0
        _link_local(client.netns, client.ifname)
        netlab.call_in(client.netns, _solicit_once, client.ifname)
        sockets.set_timeout(5)
        received = sockets.receive()
        assert received is not None and received[0] == b"\x01\x00\x00\x01"
        assert reads.reads == 1
        sockets.wake()
        assert sockets.receive() is None
        assert reads.reads == 1
    finally:
        sockets.close()


def test_an_interface_without_ethernet_frames_is_read_from_the_udp_socket() -> None:
    """A tun device's frames carry no MAC to read: no packet socket, as
    without CAP_NET_RAW (the MAC comes from the DUID or an EUI-64 source)."""
    need("ip")
    with netlab.netlab(PREFIX) as lab:
        netlab.run_in(lab.server, ["ip", "tuntap", "add", "dev", "tun6", "mode", "tun"])
        netlab.run_in(lab.server, ["ip", "link", "set", "tun6", "up"])
        enable_ipv6(lab.server, "tun6")
        sockets = dhcp6_sockets_in(lab.server)("tun6")
        try:
            assert sockets.mode is Dhcp6Mode.UDP and sockets.packets is None
            assert not sockets.interface.ethernet
        finally:
            sockets.close()
        ethernet = dhcp6_sockets_in(lab.server)("eth1")
        try:
            assert ethernet.mode is Dhcp6Mode.PACKET and ethernet.interface.ethernet
        finally:
            ethernet.close()


def test_the_filter_passes_only_udp_to_port_547(wire: tuple[netlab.Lab, netlab.Client]) -> None:
    lab, client = wire
    sockets = dhcp6_sockets_in(lab.server)("eth1")
    try:
        sockets.set_timeout(0.5)

        def send_noise(ifname: str) -> None:
            index = socket.if_nametoindex(ifname)
            sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            sock.sendto(b"to 548", ("ff02::1:2", 548, 0, index))
            ping = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
            ping.sendto(struct.pack("!BBHHH", 128, 0, 0, 1, 1), ("ff02::1:2", 0, 0, index))
            sock.sendto(b"to 547", ("ff02::1:2", 547, 0, index))

        netlab.call_in(client.netns, send_noise, client.ifname)
        received = sockets.receive()
        assert received is not None and received[0] == b"to 547"
        assert sockets.receive() is None
    finally:
        sockets.close()


def test_a_missing_interface_is_an_oserror_and_leaks_nothing() -> None:
    need("ip")
    with netlab.netlab(PREFIX) as lab, pytest.raises(OSError):
        dhcp6_sockets_in(lab.server)("nosuch0")


@pytest.mark.parametrize("net_raw", [True, False], ids=["packet", "udp"])
def test_two_pools_on_two_interfaces_share_port_547_and_hear_only_their_own(
    net_raw: bool,
) -> None:
    need("ip")
    other_mac = "52:54:00:06:01:02"
    with netlab.netlab(PREFIX) as lab:
        lab.add_server_port("eth2", "198.19.0.1/16")
        clients = [lab.add_client(CLIENT_MAC), lab.add_client(other_mac, port="eth2")]
        for ifname in ("eth1", "eth2"):
            enable_ipv6(lab.server, ifname)
        for client in clients:
            enable_ipv6(client.netns, client.ifname)
        opened: list[Dhcp6Sockets] = []
        try:
            with lowered(CAP_NET_RAW) if not net_raw else contextlib.nullcontext():
                opened.append(dhcp6_sockets_in(lab.server)("eth1"))
                opened.append(dhcp6_sockets_in(lab.server)("eth2"))
            assert opened[0].interface.index != opened[1].interface.index
            assert {s.mode for s in opened} == {Dhcp6Mode.PACKET if net_raw else Dhcp6Mode.UDP}
            for client in clients:
                _link_local(client.netns, client.ifname)
                netlab.call_in(client.netns, _solicit_once, client.ifname)
            for sockets, client in zip(opened, clients, strict=True):
                sockets.set_timeout(2)
                received = sockets.receive()
                assert received is not None
                assert received[2] == bytes.fromhex(client.mac.replace(":", ""))
                sockets.set_timeout(0.3)
                assert sockets.receive() is None  # not the other wire's
        finally:
            for sockets in opened:
                sockets.close()


def _solicit_once(ifname: str) -> None:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
    sock.sendto(b"\x01\x00\x00\x01", ("ff02::1:2", 547, 0, socket.if_nametoindex(ifname)))
    sock.close()


def _listen_546(ifname: str, timeout: float) -> tuple[bytes, str, int]:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
    sock.bind(("::", 546))
    sock.settimeout(timeout)
    data, source = sock.recvfrom(4096)
    return data, source[0], source[1]


def test_a_real_clients_solicit_arrives_and_a_reply_reaches_its_port(
    wire: tuple[netlab.Lab, netlab.Client], tmp_path: Path
) -> None:
    lab, client = wire
    need("dhclient")
    client_ll = _link_local(client.netns, client.ifname)
    sockets = dhcp6_sockets_in(lab.server)("eth1")
    try:
        sockets.set_timeout(10)
        with Dhclient6(client, tmp_path / "dhclient"):
            received = None
            while received is None:
                received = sockets.receive()
        payload, source, mac = received
        assert payload[0] == SOLICIT
        assert mac == bytes.fromhex(CLIENT_MAC.replace(":", ""))
        assert source == (str(client_ll), 546, 0, sockets.interface.index)
        duid = client_duid(payload)
        assert duid[:2] == b"\x00\x01" and duid[-6:] == mac  # DUID-LLT of its MAC
        # dhclient is gone; a socket on its port hears what the server sends.
        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(netlab.call_in, client.netns, _listen_546, client.ifname, 5.0)
            time.sleep(0.5)
            reply = b"\x02" + payload[1:4]  # ADVERTISE, the SOLICIT's transaction id
            sockets.send(reply, source)
            data, sender, port = future.result(timeout=10)
        assert (data, port) == (reply, 547)
        assert sender == str(sockets.interface.link_local)
    finally:
        sockets.close()


def test_frames_overheard_for_another_host_are_dropped(
    wire: tuple[netlab.Lab, netlab.Client],
) -> None:
    lab, client = wire
    # A promiscuous bridge hands up unicast frames for other MACs too.
    netlab.run_in(lab.server, ["ip", "link", "set", "eth1", "promisc", "on"])
    add_address6(client.netns, client.ifname, ipaddress.IPv6Interface("2001:db8:0:1::50/64"))
    other = "2001:db8:0:1::99"
    netlab.run_in(client.netns, ["ip", "-6", "neigh", "add", other, "lladdr",
                                 "52:54:00:aa:bb:cc", "dev", client.ifname])  # fmt: skip
    sockets = dhcp6_sockets_in(lab.server)("eth1")
    try:
        sockets.set_timeout(2)

        def send(ifname: str) -> None:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            sock.sendto(b"for another server", (other, 547))
            index = socket.if_nametoindex(ifname)
            sock.sendto(b"for us", ("ff02::1:2", 547, 0, index))

        with ThreadPoolExecutor(1) as pool:
            tap = pool.submit(_overhears, lab.server, other)
            time.sleep(0.5)
            netlab.call_in(client.netns, send, client.ifname)
            assert tap.result(timeout=5), "the frame for another host never reached eth1"
        received = sockets.receive()
        assert received is not None and received[0] == b"for us"
        assert sockets.receive() is None
    finally:
        sockets.close()


def _overhears(netns: str, destination: str) -> bool:
    """Whether a plain packet socket on the server's eth1 sees a frame to ``destination``."""
    with netlab.inside(netns):
        tap = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x86DD))
    tap.bind(("eth1", 0x86DD))
    tap.settimeout(3)
    try:
        while True:
            frame = tap.recv(4096)
            if frame[24:40] == IPv6Address(destination).packed:
                return True
    except TimeoutError:
        return False
    finally:
        tap.close()
