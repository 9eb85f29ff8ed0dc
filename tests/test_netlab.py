"""The network lab itself: private wires that vanish, and real clients leasing on them."""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.lab import dhcpclients, netlab, pcapfile
from tests.lab.dhcpchecks import need
from tests.lab.dhcpservers import PoolOptions, dnsmasq, kea
from tests.lab.dhcpwire import message_kind
from tests.lab.netlab import Lab, LabError, netns_exists, run_in

pytestmark = pytest.mark.netns

PREFIX = "kvt"


@pytest.fixture
def lab() -> Iterator[Lab]:
    need("ip")
    with netlab.netlab(PREFIX) as the_lab:
        yield the_lab


def test_lab_addresses_must_be_in_the_benchmark_range() -> None:
    assert netlab.require_lab_address("198.19.255.1/16").ip == ipaddress.IPv4Address("198.19.255.1")
    for outside in ("10.0.0.1/24", "198.20.0.1/16", "192.168.1.1/24", "198.18.0.1/14"):
        with pytest.raises(LabError):
            netlab.require_lab_address(outside)


def test_namespaces_exist_inside_and_are_gone_after() -> None:
    need("ip")
    with netlab.netlab(PREFIX) as lab:
        client = lab.add_client("52:54:00:00:01:01")
        names = lab.namespaces
        assert names == (lab.server, client.netns)
        assert all(netns_exists(n) for n in names)
        assert lab.server.startswith(f"{PREFIX}{os.getpid()}")
        links = run_in(client.netns, ["ip", "-br", "link"]).stdout
        assert "52:54:00:00:01:01" in run_in(client.netns, ["ip", "link"]).stdout
        assert client.ifname in links
    assert not any(netns_exists(n) for n in names)


@pytest.fixture(autouse=True, scope="module")
def _clear_crashed_runs() -> None:
    if netlab.is_root():
        netlab.cleanup_stale(PREFIX)


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_namespaces_and_processes_are_removed_when_the_body_raises(
    error: type[BaseException],
) -> None:
    need("ip", "sleep")
    with pytest.raises(error, match="boom"), netlab.netlab(PREFIX) as lab:
        client = lab.add_client("52:54:00:00:01:02")
        names = lab.namespaces
        started = lab.popen(client.netns, ["sleep", "600"])
        # Started behind the lab's back: found through `ip netns pids` and killed too.
        stray = subprocess.Popen(netlab.ns_argv(lab.server, ["sleep", "600"]))
        raise error("boom")
    assert not any(netns_exists(n) for n in names)
    assert started.poll() is not None
    assert stray.wait(timeout=5) != 0


def test_ping_crosses_the_bridge_and_ports_are_separate_wires(lab: Lab) -> None:
    need("ping")
    lab.add_server_port("eth2", "198.19.0.1/16", veth=True)
    first = lab.add_client("52:54:00:00:01:03")
    second = lab.add_client("52:54:00:00:01:04", port="eth2")
    lab.add_address(first.netns, first.ifname, "198.18.0.2/16")
    lab.add_address(second.netns, second.ifname, "198.19.0.2/16")
    run_in(first.netns, ["ping", "-c1", "-W2", "198.18.0.1"])
    run_in(second.netns, ["ping", "-c1", "-W2", "198.19.0.1"])
    run_in(lab.server, ["ping", "-c1", "-W2", "198.18.0.2"])
    # Same subnet on the other wire: nothing answers there.
    lab.add_address(second.netns, second.ifname, "198.18.0.3/16")
    lost = run_in(second.netns, ["ping", "-c1", "-W1", "198.18.0.2"], check=False)
    assert lost.returncode != 0


def test_set_mac_changes_the_client_interface(lab: Lab) -> None:
    client = lab.add_client("52:54:00:00:01:05")
    moved = lab.set_mac(client, "52:54:00:00:01:06")
    assert moved.mac == "52:54:00:00:01:06"
    assert "52:54:00:00:01:06" in run_in(client.netns, ["ip", "link", "show", "eth0"]).stdout


def _interface_names() -> list[str]:
    return sorted(name for _, name in socket.if_nameindex())


def test_python_code_runs_inside_a_namespace(lab: Lab) -> None:
    client = lab.add_client("52:54:00:00:01:07")
    assert netlab.call_in(client.netns, _interface_names) == ["eth0", "lo"]
    home = _interface_names()
    with netlab.inside(lab.server):
        assert _interface_names() == ["eth1", "lo", "vc1"]
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    assert _interface_names() == home
    try:
        # Only the server namespace has 198.18.0.1; the socket stayed there.
        sock.bind(("198.18.0.1", 0))
    finally:
        sock.close()


def test_cleanup_stale_removes_leftovers_of_dead_runs_only(lab: Lab) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = f"{PREFIX}{dead.pid}q"
    subprocess.run(["ip", "netns", "add", leftover], check=True)
    try:
        removed = netlab.cleanup_stale(PREFIX)
        assert leftover in removed
        assert not netns_exists(leftover)
        assert netns_exists(lab.server)
    finally:
        netlab.delete_netns(leftover)


OPTIONS = PoolOptions(routes=(("198.19.5.0/24", "198.18.0.1"), ("0.0.0.0/0", "198.18.0.1")))
RUNNERS: dict[str, tuple[str, Callable[..., dhcpclients.Lease]]] = {
    "udhcpc": ("udhcpc", dhcpclients.run_udhcpc),
    "dhclient": ("dhclient", dhcpclients.run_dhclient),
    "dhcpcd": ("dhcpcd", dhcpclients.run_dhcpcd),
    "networkd": (dhcpclients.NETWORKD, dhcpclients.run_networkd),
}
SERVERS = {"dnsmasq": ("dnsmasq", dnsmasq), "kea": ("kea-dhcp4", kea)}


@pytest.mark.parametrize("server", sorted(SERVERS))
@pytest.mark.parametrize("client_name", sorted(RUNNERS))
def test_real_client_leases_its_reservation(lab: Lab, client_name: str, server: str) -> None:
    tool, runner = RUNNERS[client_name]
    server_tool, serve = SERVERS[server]
    need(tool, server_tool, "ss")
    client = lab.add_client("52:54:00:00:02:01")
    other = "52:54:00:00:02:02"
    reservations = {client.mac: "198.18.2.1", other: "198.18.2.2"}
    with serve(lab, reservations, options=OPTIONS):
        lease = runner(client, timeout=20)
    assert lease.ip == ipaddress.IPv4Address("198.18.2.1")
    assert lease.prefixlen == 16
    assert lease.server_id == ipaddress.IPv4Address("198.18.0.1")
    assert lease.router == (ipaddress.IPv4Address("198.18.0.1"),)
    assert lease.dns == (ipaddress.IPv4Address("198.18.0.53"),)
    assert lease.domain == "lab.example"
    assert lease.search == ("lab.example", "vms.example")
    assert lease.lease_time == 3600
    assert (lease.t1, lease.t2) == (1800, 3150)
    assert lease.mtu == 1450
    assert [(str(r.destination), str(r.gateway)) for r in lease.routes] == [
        ("198.19.5.0/24", "198.18.0.1"),
        ("0.0.0.0/0", "198.18.0.1"),
    ]


def test_unknown_mac_gets_no_lease_within_the_timeout(lab: Lab) -> None:
    need("udhcpc", "dnsmasq", "ss")
    client = lab.add_client("52:54:00:00:02:03")
    with dnsmasq(lab, {"52:54:00:00:02:04": "198.18.2.4"}), pytest.raises(dhcpclients.NoLeaseError):
        dhcpclients.run_udhcpc(client, timeout=5)


def test_dhcpcd_inform_gets_configuration_without_a_lease(lab: Lab) -> None:
    need("dhcpcd", "dnsmasq", "ss")
    client = lab.add_client("52:54:00:00:02:05")
    with dnsmasq(lab, {client.mac: "198.18.2.5"}, options=OPTIONS):
        lease = dhcpclients.run_dhcpcd(client, inform="198.18.2.5/16", timeout=10)
    # RFC 2131 3.4: the ACK to an INFORM carries configuration but no lease time.
    assert lease.raw["reason"] == "INFORM"
    assert lease.lease_time is None
    assert lease.dns == (ipaddress.IPv4Address("198.18.0.53"),)
    assert lease.server_id == ipaddress.IPv4Address("198.18.0.1")


def test_a_capture_on_the_server_port_shows_the_whole_exchange(lab: Lab) -> None:
    need("tcpdump", "udhcpc", "dnsmasq", "ss")
    client = lab.add_client("52:54:00:00:02:06")
    with tempfile.TemporaryDirectory() as tmp:
        pcap = Path(tmp) / "dhcp.pcap"
        argv = [
            "tcpdump",
            "--immediate-mode",
            "-i",
            "eth1",
            "-n",
            "-U",
            "-Z",
            "root",
            "-w",
            str(pcap),
            "udp",
        ]
        dump = lab.popen(lab.server, argv, stderr=subprocess.PIPE)
        assert dump.stderr is not None
        dump.stderr.readline()  # "listening on eth1": capturing from here on
        with dnsmasq(lab, {client.mac: "198.18.2.6"}):
            dhcpclients.run_udhcpc(client, release=True)
        time.sleep(0.3)  # let tcpdump take the last frames off its socket
        netlab.stop_process(dump)
        datagrams = pcapfile.read_udp(pcap)
    kinds = [message_kind(d.payload) for d in datagrams]
    assert kinds == ["discover", "offer", "request", "ack", "release"]
    assert all(d.payload[28:34] == bytes.fromhex("525400000206") for d in datagrams)
    assert [d.sport for d in datagrams] == [68, 67, 68, 67, 68]
    assert datagrams[0].src_mac == client.mac
