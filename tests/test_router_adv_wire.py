"""kvip's Router Advertisements on a lab wire, as hosts see them: rdisc6 and a
raw ICMPv6 receiver in a client namespace (RFC 4861 4.2, 6.2.4, 6.2.6)."""

from __future__ import annotations

import itertools
import socket
import struct
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv6Network

import pytest

from kvip.actors._router_adv import hop_limit_of
from kvip.serving import parse_router_advertisement
from tests.lab import netlab
from tests.lab.dhcp6lab import enable_ipv6
from tests.lab.dhcpchecks import need
from tests.lab.router_adv import advertising

pytestmark = pytest.mark.netns

PREFIX = "kv6r"
SUBNET = IPv6Network("2001:db8:0:1::/64")


@pytest.fixture(autouse=True, scope="module")
def _clear_crashed_runs() -> None:
    if netlab.is_root():
        netlab.cleanup_stale(PREFIX)


@pytest.fixture
def wire() -> Iterator[tuple[netlab.Lab, netlab.Client]]:
    need("ip", "rdisc6")
    with netlab.netlab(PREFIX) as lab:
        client = lab.add_client("52:54:00:06:02:01")
        enable_ipv6(lab.server, "eth1")
        enable_ipv6(client.netns, client.ifname)
        yield lab, client


def _receive_advertisement(ifname: str, timeout: float) -> tuple[bytes, int | None, str]:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
    sock.settimeout(timeout)
    while True:
        data, ancillary, _, source = sock.recvmsg(1500, socket.CMSG_SPACE(4))
        if data[:1] == b"\x86":
            return data, hop_limit_of(ancillary), source[0]


def test_hosts_see_managed_other_and_the_prefix_without_autonomous_addressing(
    wire: tuple[netlab.Lab, netlab.Client],
) -> None:
    lab, client = wire
    server_mac = netlab.run_in(lab.server, ["cat", "/sys/class/net/eth1/address"]).stdout.strip()
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(
            netlab.call_in, client.netns, _receive_advertisement, client.ifname, 8.0
        )
        time.sleep(0.5)  # the receiver listens before the first advertisement
        with advertising(lab.server, SUBNET):
            data, hop_limit, source = future.result(timeout=10)
    assert hop_limit == 255
    assert source.startswith("fe80::")
    advert = parse_router_advertisement(data)
    assert advert is not None
    assert advert.managed and advert.other
    assert advert.router_lifetime == 0
    assert advert.prefix == SUBNET
    assert advert.on_link and not advert.autonomous
    assert advert.source_mac == bytes.fromhex(server_mac.replace(":", ""))
    assert struct.unpack("!H", data[2:4])[0] != 0  # the kernel filled in the checksum


def _rdisc6(client: netlab.Client, wait_ms: int) -> tuple[int, str, float]:
    started = time.monotonic()
    result = netlab.run_in(
        client.netns, ["rdisc6", "-1", "-n", "-r", "1", "-w", str(wait_ms), client.ifname],
        check=False,
    )  # fmt: skip
    return result.returncode, result.stdout, time.monotonic() - started


def _rdisc6_fields(out: str) -> dict[str, str]:
    """rdisc6's "Name : value (...)" lines as name -> first word of the value."""
    fields = {}
    for line in out.splitlines():
        name, sep, value = line.partition(":")
        if sep and value.split():
            fields[name.strip()] = value.split()[0]
    return fields


def test_a_solicitation_is_answered_promptly_and_a_flood_is_rate_limited(
    wire: tuple[netlab.Lab, netlab.Client],
) -> None:
    lab, client = wire
    with advertising(lab.server, SUBNET):
        time.sleep(3.2)  # past the first (unsolicited) advertisement's rate limit
        code, out, took = _rdisc6(client, 1500)
        assert code == 0, out
        assert took < 1.5  # MAX_RA_DELAY is 0.5 s; the rest is rdisc6 starting
        said = _rdisc6_fields(out)
        assert said["Stateful address conf."] == "Yes"
        assert said["Stateful other conf."] == "Yes"
        assert said["Router lifetime"] == "0"
        assert said["Prefix"] == str(SUBNET)
        assert said["On-link"] == "Yes"
        assert said["Autonomous address conf."] == "No"
        # A second solicitation at once: no advertisement within a second (one per 3 s) ...
        code, _, _ = _rdisc6(client, 1000)
        assert code != 0
        # ... but one within the three seconds after the first answer.
        code, out, _ = _rdisc6(client, 2500)
        assert code == 0, out


def _advertisement_times(ifname: str, count: int, timeout: float) -> list[float]:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
    deadline = time.monotonic() + timeout
    times: list[float] = []
    while len(times) < count and time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(1500)
        except TimeoutError:
            break
        if data[:1] == b"\x86":
            times.append(time.monotonic())
    return times


def test_unsolicited_advertisements_follow_the_interval(
    wire: tuple[netlab.Lab, netlab.Client],
) -> None:
    lab, client = wire
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(
            netlab.call_in, client.netns, _advertisement_times, client.ifname, 4, 14.0, timeout=20
        )
        time.sleep(0.5)
        with advertising(lab.server, SUBNET, interval=4):
            times = future.result(timeout=20)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) == 4, times
    # The first ones MAX_INITIAL apart at min(16 s, interval), then 0.75 to 1.0 of it.
    assert 3.7 < gaps[0] < 4.6 and 3.7 < gaps[1] < 4.6, gaps
    assert 2.8 < gaps[2] < 4.6, gaps


def test_an_interval_outside_rfc_4861_is_refused(wire: tuple[netlab.Lab, netlab.Client]) -> None:
    lab, _ = wire
    for interval in (1, 3.9, 1801):
        with (
            pytest.raises(RuntimeError, match="interval"),
            advertising(lab.server, SUBNET, interval=interval),
        ):
            pass
