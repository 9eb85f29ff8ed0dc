"""The admission webhook's decisions on dual-stack pools and the IPv6 addresses
recorded in vmnetcfgs, without an API server: the IPv4 rules, for IPv6."""

from __future__ import annotations

from typing import Any

from kvip.serving import FORCE_ANNOTATION, Recorded, Verdict, review_ippool, review_vmnetcfg
from tests.lab.objects import ippool

NET = "ns/net"
V6 = "spec.ipv6config"


def dual_stack(
    name: str,
    network: str = NET,
    *,
    start: str = "2001:db8:1::10",
    end: str = "2001:db8:1::ffff",
    **v6: Any,
) -> dict[str, Any]:
    body = ippool(name, network)
    body["spec"]["ipv6config"] = {
        "subnet": "2001:db8:1::/64",
        "pool": {"start": start, "end": end},
        **v6,
    }
    return body


def _refused(verdict: Verdict, *fields: str) -> str:
    assert not verdict.allowed, verdict
    for field in fields:
        assert field in verdict.message, (field, verdict.message)
    return verdict.message


def _nic(i: int, ip6: str | None, ip: str | None = None, network: str = NET) -> Recorded:
    return Recorded(f"ns/vm{i}", network, f"52:54:00:00:00:{i:02x}", ip, ip6)


def test_a_bad_ipv6config_is_refused_by_the_parsers_message() -> None:
    body = dual_stack("p", start="2001:db8:2::10")
    _refused(review_ippool("CREATE", new=body, old=None), f"{V6}.pool.start", "outside")
    assert review_ippool("CREATE", new=dual_stack("p"), old=None).allowed


def test_overlapping_ipv6_ranges_on_one_network_are_refused() -> None:
    # IPv4 ranges apart, IPv6 ranges overlapping: the IPv6 overlap is named.
    other = ippool("other", NET, start="198.18.1.10", end="198.18.1.250")
    other["spec"]["ipv6config"] = dual_stack("o", start="2001:db8:1::100")["spec"]["ipv6config"]
    mine = ippool("p", NET, start="198.18.0.10", end="198.18.0.250")
    mine["spec"]["ipv6config"] = dual_stack("p", end="2001:db8:1::100")["spec"]["ipv6config"]
    message = _refused(
        review_ippool("CREATE", new=mine, old=None, others=[other]),
        f"{V6}.pool 2001:db8:1::10-2001:db8:1::100 overlaps IPPool other",
    )
    assert "2001:db8:1::100-2001:db8:1::ffff" in message
    # Apart in both families: still one pool per network.
    mine["spec"]["ipv6config"]["pool"]["end"] = "2001:db8:1::ff"
    _refused(
        review_ippool("CREATE", new=mine, old=None, others=[other]),
        "spec.networkname",
        "already served by IPPool other",
    )
    assert review_ippool("CREATE", new=mine, old=None, others=[dual_stack("o", "ns/b")]).allowed


def test_an_update_that_strands_ipv6_reservations_is_refused_unless_forced() -> None:
    old = dual_stack("p")
    held = [
        _nic(0, "2001:db8:1::10"),
        _nic(1, "2001:db8:1::fff0"),
        _nic(2, "2001:db8:1::20", ip="198.18.0.20"),
        _nic(3, "2001:db8:1::30", network="ns/elsewhere"),
        _nic(4, "2001:db8:9::1"),  # never this pool's: not stranded by the change
    ]
    narrower = dual_stack(
        "p", start="2001:db8:1::15", end="2001:db8:1::ff", router="2001:db8:1::20"
    )
    message = _refused(
        review_ippool("UPDATE", new=narrower, old=old, reservations=held),
        "3 reservations",
        f"ns/vm0 2001:db8:1::10 (it is before {V6}.pool.start 2001:db8:1::15)",
        f"ns/vm1 2001:db8:1::fff0 (it is after {V6}.pool.end 2001:db8:1::ff)",
        f"ns/vm2 2001:db8:1::20 (it is {V6}.router)",
    )
    assert "vm3" not in message and "vm4" not in message
    narrower["metadata"]["annotations"] = {FORCE_ANNOTATION: "true"}
    forced = review_ippool("UPDATE", new=narrower, old=old, reservations=held)
    assert forced.allowed and forced.warnings == ("forced: strands 3 reservations",)
    assert review_ippool("UPDATE", new=dual_stack("p"), old=old, reservations=held).allowed


def test_removing_the_ipv6config_strands_its_reservations() -> None:
    held = [_nic(0, "2001:db8:1::10", ip="198.18.0.10")]
    message = _refused(
        review_ippool("UPDATE", new=ippool("p", NET), old=dual_stack("p"), reservations=held),
        "1 reservations",
        "ns/vm0 2001:db8:1::10 (the pool has no spec.ipv6config)",
    )
    assert "198.18.0.10" not in message  # the IPv4 address stays servable


def test_deleting_a_pool_that_holds_only_ipv6_reservations_is_refused() -> None:
    held = [_nic(0, "2001:db8:1::10")]
    _refused(
        review_ippool("DELETE", new=None, old=dual_stack("p"), reservations=held),
        "1 reservations",
        "ns/vm0 2001:db8:1::10",
    )


def test_a_moved_ipv6address_is_refused_unless_forced() -> None:
    before = [_nic(0, "2001:db8:1::10", ip="198.18.0.10"), _nic(1, None, ip="198.18.0.11")]
    moved = [before[0], _nic(1, "2001:db8:1::99", ip="198.18.0.11")]
    # A NIC that had no IPv6 address may be given one (the static-ip annotation's way).
    assert review_vmnetcfg(new={}, old_records=before, new_records=moved).allowed
    after = [_nic(0, "2001:db8:1::99", ip="198.18.0.10"), before[1]]
    message = _refused(
        review_vmnetcfg(new={}, old_records=before, new_records=after),
        "spec.networkconfig[].ipv6address",
        "from 2001:db8:1::10 to 2001:db8:1::99",
    )
    assert "spec.networkconfig[].ipaddress" not in message
    forced = review_vmnetcfg(
        new={"metadata": {"annotations": {FORCE_ANNOTATION: "true"}}},
        old_records=before,
        new_records=after,
    )
    assert forced.allowed and forced.warnings


def test_moving_both_addresses_names_both_fields() -> None:
    before = [_nic(0, "2001:db8:1::10", ip="198.18.0.10")]
    after = [_nic(0, "2001:db8:1::11", ip="198.18.0.11")]
    _refused(
        review_vmnetcfg(new={}, old_records=before, new_records=after),
        "spec.networkconfig[].ipaddress and spec.networkconfig[].ipv6address",
        "from 198.18.0.10 to 198.18.0.11",
        "from 2001:db8:1::10 to 2001:db8:1::11",
    )


def ipv6_only(name: str, network: str = NET, **v6: Any) -> dict[str, Any]:
    body = dual_stack(name, network, **v6)
    del body["spec"]["ipv4config"]
    return body


def test_an_ipv6_only_pool_is_admitted_and_its_overlaps_refused() -> None:
    assert review_ippool("CREATE", new=ipv6_only("p"), old=None).allowed
    other = ipv6_only("other", start="2001:db8:1::100")
    _refused(
        review_ippool("CREATE", new=ipv6_only("p"), old=None, others=[other]),
        f"{V6}.pool 2001:db8:1::10-2001:db8:1::ffff overlaps IPPool other",
    )
    # A dual-stack and an IPv6-only pool on one network: still one pool per network.
    _refused(
        review_ippool("CREATE", new=ipv6_only("p"), old=None, others=[ippool("o", NET)]),
        "spec.networkname",
        "already served by IPPool o",
    )
    neither = ipv6_only("p")
    del neither["spec"]["ipv6config"]
    _refused(review_ippool("CREATE", new=neither, old=None), "spec.ipv4config is missing")


def test_removing_the_ipv4config_strands_its_ipv4_reservations_only() -> None:
    held = [_nic(0, "2001:db8:1::10", ip="198.18.0.10"), _nic(1, "2001:db8:1::11")]
    message = _refused(
        review_ippool("UPDATE", new=ipv6_only("p"), old=dual_stack("p"), reservations=held),
        "1 reservations",
        "ns/vm0 198.18.0.10 (the pool has no spec.ipv4config)",
    )
    assert "2001:db8:1::1" not in message  # the IPv6 addresses stay servable
    # Adding it back (IPv6-only to dual-stack) strands nothing.
    only6 = [_nic(0, "2001:db8:1::10"), _nic(1, "2001:db8:1::11")]
    update = review_ippool("UPDATE", new=dual_stack("p"), old=ipv6_only("p"), reservations=only6)
    assert update.allowed
