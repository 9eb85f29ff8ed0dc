"""The controller's plan for one VM (kvip/actors/_plan.py): pure, no API server."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from kvip.actors._plan import (
    NOT_READY,
    Claim,
    Outcome,
    Settled,
    ToServe,
    newly_claimed,
    plan_nics,
    refused_statuses,
    released_records,
)
from kvip.actors._status_render import NicStatus
from kvip.ipam import AddressTaken, Owner, PoolExhausted
from kvip.k8s._bodies import NicRecord, VmNic

KEY = "ns/vm"
NET_A, NET_B = "ns/net-a", "ns/net-b"  # served here
NOT_READY_NET = "ns/net-c"  # an IPPool of this kvip names it, but it is not running
ELSEWHERE = "ns/not-ours"  # no IPPool of this kvip names it
MAC1, MAC2 = "52:54:00:00:60:01", "52:54:00:00:60:02"


def nic(name: str, network: str, mac: str | None, ip: str | None = None) -> VmNic:
    return VmNic(interface=name, network=network, mac=mac, requested_ip=ip)


def plan(nics: list[VmNic], listed: list[NicRecord]) -> list[Claim | Settled]:
    return plan_nics(
        KEY,
        nics,
        listed,
        has_pool=lambda network: network in (NET_A, NET_B),
        configured=lambda network: network != ELSEWHERE,
    )


def test_one_claim_per_nic_with_a_mac_in_the_vms_order() -> None:
    steps = plan(
        [nic("a", NET_A, MAC1), nic("late", NET_A, None), nic("b", NET_B, MAC1)],
        [NicRecord(NET_B, MAC1, "198.19.0.10")],
    )
    late = steps.pop(1)
    assert steps == [
        Claim(nic("a", NET_A, MAC1), MAC1, None, None),
        # One MAC on two networks is two NICs, each with its own record.
        Claim(nic("b", NET_B, MAC1), MAC1, NicRecord(NET_B, MAC1, "198.19.0.10"),
              IPv4Address("198.19.0.10")),
    ]  # fmt: skip
    # A NIC without a MAC is no claim, but an ERROR in the status, and said (issue 14).
    assert isinstance(late, Settled) and late.record is None and late.status is not None
    assert late.problem is not None and "NIC late has no MAC address" in late.problem
    assert late.status.as_status() == {
        "networkname": NET_A, "status": "ERROR", "message": late.problem,
    }  # fmt: skip


def test_the_record_wins_over_the_annotation_and_a_nic_listed_twice_is_one() -> None:
    steps = plan(
        [nic("a", NET_A, MAC1, "198.18.0.99"), nic("again", NET_A, MAC1)],
        [NicRecord(NET_A, MAC1, "198.18.0.15")],
    )
    assert [(s.mac, s.requested) for s in steps if isinstance(s, Claim)] == [
        (MAC1, IPv4Address("198.18.0.15"))
    ]
    assert len(steps) == 1


def test_a_network_without_a_pool_keeps_its_record_and_says_so_when_it_is_ours() -> None:
    record = NicRecord(NOT_READY_NET, MAC2, "198.20.0.10")
    steps = plan(
        [nic("c", record.network, MAC2), nic("x", ELSEWHERE, MAC1)],
        [record, NicRecord(ELSEWHERE, MAC1, "10.0.0.1")],
    )
    assert steps == [
        Settled(record, NicStatus(record.network, MAC2, False, NOT_READY)),
        Settled(NicRecord(ELSEWHERE, MAC1, "10.0.0.1"), None),  # another shard's
    ]


def test_a_bad_address_is_a_status_not_a_claim() -> None:
    [step] = plan([nic("a", NET_A, MAC1, "not-an-ip")], [])
    assert step == Settled(None, NicStatus(NET_A, MAC1, False, "'not-an-ip' is not an address"))


def test_a_mac_change_claims_the_static_address_from_the_old_macs_record() -> None:
    old = NicRecord(NET_A, MAC1, "198.18.0.15")
    [step] = plan([nic("a", NET_A, MAC2, "198.18.0.15")], [old])
    assert isinstance(step, Claim)
    assert (step.requested, step.replaces) == (IPv4Address("198.18.0.15"), old)


def test_a_record_of_a_nic_the_vm_still_has_is_never_replaced() -> None:
    """Two NICs asking for one address: the second must fail, not take it."""
    held = NicRecord(NET_A, MAC1, "198.18.0.15")
    steps = plan([nic("a", NET_A, MAC1), nic("b", NET_A, MAC2, "198.18.0.15")], [held])
    assert [s.replaces for s in steps if isinstance(s, Claim)] == [None, None]


def test_settling_claims_records_serves_and_remembers_a_move() -> None:
    old = NicRecord(NET_A, MAC1, "198.18.0.15")
    moving = Claim(nic("a", NET_A, MAC2), MAC2, None, IPv4Address("198.18.0.15"), old)
    refused = Claim(nic("b", NET_B, MAC1), MAC1, NicRecord(NET_B, MAC1, "198.19.0.10"),
                    IPv4Address("198.19.0.10"))  # fmt: skip
    outcome = Outcome()
    outcome.settle(moving, IPv4Address("198.18.0.15"), declined=None)
    taken = AddressTaken(IPv4Address("198.19.0.10"), holder=Owner("ns/other [x]"))
    outcome.settle(refused, taken, restore_error="could not restore it")
    assert outcome.records == [NicRecord(NET_A, MAC2, "198.18.0.15"), refused.previous]
    assert outcome.statuses == [
        NicStatus(NET_A, MAC2, True, "198.18.0.15 reserved", "198.18.0.15"),
        NicStatus(NET_B, MAC1, False, "could not restore it"),
    ]
    assert outcome.to_serve == [ToServe(NET_A, MAC2, IPv4Address("198.18.0.15"))]
    assert outcome.moved == {(NET_A, MAC2): old}
    assert outcome.failed == [(refused, "could not restore it")]


def test_a_declined_address_is_kept_and_shown_as_an_error() -> None:
    """...with the address in the status entry's `declined`, which every replica reads."""
    claim = Claim(nic("a", NET_A, MAC1), MAC1, None, None)
    outcome = Outcome()
    outcome.settle(claim, IPv4Address("198.18.0.10"), declined="declined: in use")
    shown = NicStatus(NET_A, MAC1, False, "declined: in use", "198.18.0.10", declined=True)
    assert outcome.statuses == [shown]
    assert shown.as_status()["declined"] == "198.18.0.10"
    assert "declined" not in NicStatus(NET_A, MAC1, True, "ok", "198.18.0.10").as_status()
    assert outcome.to_serve == [ToServe(NET_A, MAC1, IPv4Address("198.18.0.10"))]


def test_after_the_write_what_goes_and_what_a_refusal_gives_back() -> None:
    old = {
        (NET_A, MAC1): NicRecord(NET_A, MAC1, "198.18.0.10"),
        (NET_B, MAC1): NicRecord(NET_B, MAC1, None),
        (NET_A, MAC2): NicRecord(NET_A, MAC2, "198.18.0.11"),
    }
    records = [NicRecord(NET_A, MAC1, "198.18.0.10"), NicRecord(NET_B, MAC1, "198.19.0.10")]
    assert released_records(old, records) == [old[(NET_A, MAC2)]]
    to_serve = [
        ToServe(NET_A, MAC1, IPv4Address("198.18.0.10")),
        ToServe(NET_B, MAC1, IPv4Address("198.19.0.10")),
    ]
    assert newly_claimed(old, to_serve) == [ToServe(NET_B, MAC1, IPv4Address("198.19.0.10"))]
    statuses = [
        NicStatus(NET_A, MAC1, True, "198.18.0.10 reserved", "198.18.0.10"),
        NicStatus(NET_B, MAC1, True, "198.19.0.10 reserved", "198.19.0.10"),
        NicStatus(NET_B, MAC2, False, "pool exhausted"),
    ]
    assert refused_statuses(statuses, old.values(), "not recorded") == [
        statuses[0],  # recorded before: still served
        NicStatus(NET_B, MAC1, False, "not recorded"),
        statuses[2],
    ]


def test_a_nic_whose_network_has_no_ippool_is_an_error_when_kvip_serves_every_pool() -> None:
    """Issue 14: with no pool selector, a network without an IPPool has none anywhere:
    the NIC's status says so (its record, if any, stays). With a selector the
    network may be another shard's: nothing is said in the status."""
    nics = [nic("x", "ns/no-pool", MAC1)]
    shard = plan_nics("ns/vm", nics, [], has_pool=lambda n: False, configured=lambda n: False)
    assert shard == [Settled(None, None)]
    steps = plan_nics("ns/vm", nics, [], has_pool=lambda n: False, configured=lambda n: False,
                      all_pools=True)  # fmt: skip
    [step] = steps
    assert isinstance(step, Settled) and step.status is not None and not step.status.ok
    assert step.problem is not None and "no IPPool serves network ns/no-pool" in step.problem


def test_a_declined_ipv6_address_is_shown_in_the_entry_while_ipv4_is_still_served() -> None:
    """A DHCPv6 DECLINE: the NIC shows the message, its entry's `declined` names
    the IPv6 address (every replica reads it), and both addresses are served
    (the IPv6 one is marked declined in the pool)."""
    claim = Claim(nic("a", NET_A, MAC1), MAC1, None, None)
    outcome = Outcome()
    ip6 = IPv6Address("2001:db8::10")
    outcome.settle(claim, IPv4Address("198.18.0.10"), answer6=ip6, declined6="declined: v6")
    (shown,) = outcome.statuses
    assert shown.as_status()["declined"] == "2001:db8::10"
    assert shown.as_status()["ipv6address"] == "2001:db8::10"
    assert not shown.ok
    assert outcome.to_serve == [ToServe(NET_A, MAC1, IPv4Address("198.18.0.10"), ip6)]


def test_a_nic_of_an_ipv6_only_pool_is_recorded_and_served_by_its_ipv6_address() -> None:
    claim = Claim(nic("a", NET_A, MAC1), MAC1, None, None)
    ip6 = IPv6Address("2001:db8::10")
    outcome = Outcome()
    outcome.settle(claim, None, answer6=ip6)
    assert outcome.records == [NicRecord(NET_A, MAC1, None, "2001:db8::10")]
    (shown,) = outcome.statuses
    assert (shown.ok, shown.message, shown.ip, shown.ip6) == (
        True, "2001:db8::10 reserved", None, "2001:db8::10"
    )  # fmt: skip
    assert "ipaddress" not in shown.as_status()
    assert outcome.to_serve == [ToServe(NET_A, MAC1, None, ip6)]
    # Declined: the entry's `declined` names the IPv6 address.
    declined = Outcome()
    declined.settle(claim, None, answer6=ip6, declined6="declined: v6")
    (shown,) = declined.statuses
    assert not shown.ok and shown.as_status()["declined"] == "2001:db8::10"


def test_a_failed_claim_of_an_ipv6_only_pool_keeps_the_record_and_says_why() -> None:
    previous = NicRecord(NET_A, MAC1, None, "2001:db8::10")
    claim = Claim(nic("a", NET_A, MAC1), MAC1, previous, None, None, IPv6Address("2001:db8::10"))
    taken = AddressTaken(IPv6Address("2001:db8::10"), holder=Owner("ns/other [x]"))
    outcome = Outcome()
    outcome.settle(claim, None, answer6=taken)
    assert outcome.records == [previous]
    assert outcome.to_serve == [] and outcome.moved == {}
    (shown,) = outcome.statuses
    assert not shown.ok and "2001:db8::10" in shown.message
    assert outcome.failed == [(claim, str(taken))]


def test_a_failed_claim_of_a_pool_made_ipv6_only_drops_the_ipv4_address_from_the_record() -> None:
    """The ipv4config went, and with it the NIC's IPv4 address: a failed claim
    keeps the record's IPv6 address alone, or no record when it had none."""
    exhausted = PoolExhausted(start=IPv6Address("2001:db8::10"), end=IPv6Address("2001:db8::12"),
                              capacity=3)  # fmt: skip
    for ip6, kept in (("2001:db8::10", [NicRecord(NET_A, MAC1, None, "2001:db8::10")]),
                      (None, [])):  # fmt: skip
        previous = NicRecord(NET_A, MAC1, "198.18.0.10", ip6)
        claim = Claim(nic("a", NET_A, MAC1), MAC1, previous, IPv4Address("198.18.0.10"), None)
        outcome = Outcome()
        outcome.settle(claim, None, answer6=exhausted)
        assert outcome.records == kept
        (shown,) = outcome.statuses
        assert not shown.ok and "exhausted" in shown.message


def test_a_failed_claim_of_a_pool_that_lost_its_ipv4config_drops_the_ipv4_address() -> None:
    """The pool was dual-stack and is IPv6-only now: the NIC's IPv4 address was
    released with the ipv4config, so a failed IPv6 claim keeps the record
    without it (the chaos tier's IPv6-only pools saw the record keep it)."""
    exhausted = PoolExhausted(
        start=IPv6Address("2001:db8::10"), end=IPv6Address("2001:db8::12"), capacity=3
    )
    # Its IPv6 range was exhausted: an IPv4 address alone was recorded.
    alone = NicRecord(NET_A, MAC1, "198.18.0.10", None)
    claim = Claim(nic("a", NET_A, MAC1), MAC1, alone, IPv4Address("198.18.0.10"))
    outcome = Outcome()
    outcome.settle(claim, None, answer6=exhausted)
    assert outcome.records == []  # no address left to record
    (shown,) = outcome.statuses
    assert not shown.ok and "exhausted" in shown.message and shown.ip is None
    # Both recorded, the IPv6 one left outside by a shrink: it is kept, alone.
    both = NicRecord(NET_A, MAC1, "198.18.0.10", "2001:db8::20")
    claim = Claim(nic("a", NET_A, MAC1), MAC1, both, IPv4Address("198.18.0.10"), None,
                  IPv6Address("2001:db8::20"))  # fmt: skip
    outside = AddressTaken(IPv6Address("2001:db8::20"), holder=Owner("ns/other [x]"))
    outcome = Outcome()
    outcome.settle(claim, None, answer6=outside)
    assert outcome.records == [NicRecord(NET_A, MAC1, None, "2001:db8::20")]
    assert outcome.failed == [(claim, str(outside))]


def test_a_refused_write_gives_back_only_what_no_ipv6_record_holds() -> None:
    ip6, other6 = IPv6Address("2001:db8::10"), IPv6Address("2001:db8::11")
    old = {(NET_A, MAC1): NicRecord(NET_A, MAC1, None, str(ip6))}
    to_serve = [ToServe(NET_A, MAC1, None, ip6), ToServe(NET_B, MAC2, None, other6)]
    # The recorded NIC keeps its address; the new one gives its claim back.
    assert newly_claimed(old, to_serve) == [to_serve[1]]
    statuses = [
        NicStatus(NET_A, MAC1, True, "reserved", None, str(ip6)),
        NicStatus(NET_B, MAC2, True, "reserved", None, str(other6)),
    ]
    assert refused_statuses(statuses, old.values(), "not recorded") == [
        statuses[0],
        NicStatus(NET_B, MAC2, False, "not recorded"),
    ]
