"""Where `kvip pools` and `kvip why` show a pool's subnet, a dual-stack pool
shows its IPv6 subnet too (the commands themselves run against the real API
server in test_operator and test_why)."""

from __future__ import annotations

import io
from typing import Any

from kvip.app._operator import pool_rows
from kvip.app._why import Evidence, _pool_for, explain
from kvip.k8s._bodies import VmNic
from tests.lab import objects
from tests.lab.objects import ippool

NET = "ns/net"


def dual_stack(name: str) -> dict[str, Any]:
    body = ippool(name, NET, subnet="198.18.0.0/16")
    body["spec"]["ipv6config"] = {
        "subnet": "2001:db8:1::/64",
        "pool": {"start": "2001:db8:1::10", "end": "2001:db8:1::ffff"},
    }
    return body


def test_kvip_pools_shows_both_subnets_of_a_dual_stack_pool() -> None:
    header, *rows = pool_rows([dual_stack("b"), ippool("a", "ns/other", subnet="198.19.0.0/16")])
    assert header == ["POOL", "NETWORK", "SUBNET", "USED", "AVAILABLE", "READY"]
    assert [row[:3] for row in rows] == [
        ["a", "ns/other", "198.19.0.0/16"],
        ["b", NET, "198.18.0.0/16,2001:db8:1::/64"],
    ]


def test_kvip_why_names_both_subnets_of_the_nics_pool() -> None:
    nic = VmNic(interface="nic", network=NET, mac="52:54:00:00:13:01", requested_ip=None)
    pool, text = _pool_for(nic, [dual_stack("p")])
    assert pool is not None
    assert text.startswith("IPPool p, subnet 198.18.0.0/16 and 2001:db8:1::/64: ")
    _, text = _pool_for(nic, [ippool("p", NET, subnet="198.18.0.0/16")])
    assert text.startswith("IPPool p, subnet 198.18.0.0/16: ")


def ipv6_only(name: str) -> dict[str, Any]:
    body = dual_stack(name)
    del body["spec"]["ipv4config"]
    body["status"] = {"ipv6": {"used": "3", "available": "65518", "excluded": "0"}}
    return body


def test_an_ipv6_only_pool_shows_its_ipv6_subnet_and_counts() -> None:
    _, row = pool_rows([ipv6_only("c")])
    assert row == ["c", NET, "2001:db8:1::/64", "3", "65518", "Unknown"]
    nic = VmNic(interface="nic", network=NET, mac="52:54:00:00:13:01", requested_ip=None)
    pool, text = _pool_for(nic, [ipv6_only("p")])
    assert pool is not None
    assert text.startswith("IPPool p, subnet 2001:db8:1::/64: ")


def test_kvip_why_shows_an_ipv6_only_nics_record_and_its_dhcpv6_history() -> None:
    mac = "52:54:00:00:13:01"
    vm = objects.vm("vm", "ns", [("nic", "net", mac)])
    vm["metadata"]["uid"] = "u1"
    entry = {"networkname": NET, "macaddress": mac, "ipv6address": "2001:db8:1::10"}
    cfg = {"metadata": {"namespace": "ns", "name": "vm"}, "spec": {"networkconfig": [entry]}}
    seen = {
        "pools": [{
            "pool": "p", "server_ip": None, "count": 2,
            "reservation": {"ip": None, "ip6": "2001:db8:1::10", "declined": False},
            "history": [
                {"time": "t1", "received": "SOLICIT", "answer": "ADVERTISE",
                 "ip": "2001:db8:1::10", "reason": None},
                {"time": "t2", "received": "REQUEST", "answer": None, "ip": None,
                 "reason": "another_server"},
            ],
        }]
    }  # fmt: skip
    out = io.StringIO()
    explain(Evidence(vm, cfg, [ipv6_only("p")], dhcp={"url": {mac: seen}}), out)
    text = out.getvalue()
    assert "record:   2001:db8:1::10\n" in text
    assert "(IPPool p as DHCPv6 only, reserves 2001:db8:1::10, heard 2 packets)" in text
    assert "t1  SOLICIT -> ADVERTISE 2001:db8:1::10" in text
    assert "t2  REQUEST -> no answer (another_server)" in text
