"""The admission webhook's decisions, without an API server: each rule with a
case it lets in and a case it refuses, the refusal naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from kvip.ipam import InvalidPool
from kvip.serving import (
    FORCE_ANNOTATION,
    Recorded,
    Verdict,
    admission_response,
    parse_ippool,
    review_ippool,
    review_vmnetcfg,
)
from tests.lab.objects import ippool

NET = "ns/net"


def _forced(body: dict[str, Any]) -> dict[str, Any]:
    body["metadata"]["annotations"] = {FORCE_ANNOTATION: "true"}
    return body


def _refused(verdict: Verdict, *fields: str) -> str:
    assert not verdict.allowed, verdict
    for field in fields:
        assert field in verdict.message, (field, verdict.message)
    return verdict.message


def test_a_valid_pool_is_created() -> None:
    assert review_ippool("CREATE", new=ippool("p", NET), old=None).allowed


@pytest.mark.parametrize(
    ("change", "fields"),
    [
        ({"start": "198.18.0.250", "end": "198.18.0.10"}, ["spec.ipv4config.pool.start", "after"]),
        ({"end": "198.19.0.10"}, ["spec.ipv4config.pool.end", "outside the subnet"]),
        ({"server": "10.0.0.1"}, ["spec.ipv4config.serverip", "outside the subnet"]),
        ({"router": "10.0.0.1"}, ["spec.ipv4config.router", "outside the subnet"]),
        ({"start": "198.18.0.0"}, ["spec.ipv4config.pool.start", "network address"]),
    ],
)
def test_a_pool_against_the_range_rules_is_refused(
    change: dict[str, Any], fields: list[str]
) -> None:
    body = ippool("p", NET, **change)
    message = _refused(review_ippool("CREATE", new=body, old=None), *fields)
    # The controller's own parser says the same.
    with pytest.raises(InvalidPool) as parsed:
        parse_ippool(body)
    assert str(parsed.value) == message


def test_one_pool_per_network() -> None:
    other = ippool("other", NET, start="198.18.1.10", end="198.18.1.250")
    overlapping = ippool("p", NET, start="198.18.1.100", end="198.18.2.10")
    message = _refused(
        review_ippool("CREATE", new=overlapping, old=None, others=[other]),
        "spec.ipv4config.pool",
        "overlaps IPPool other",
    )
    assert "198.18.1.10-198.18.1.250" in message
    apart = ippool("p", NET)
    _refused(
        review_ippool("CREATE", new=apart, old=None, others=[other]),
        "spec.networkname",
        "already served by IPPool other",
    )
    # Another network; the pool itself in the list (an update); an invalid
    # other pool (the controller serves none of it).
    assert review_ippool("CREATE", new=overlapping, old=None, others=[ippool("o", "ns/b")]).allowed
    assert review_ippool("UPDATE", new=apart, old=apart, others=[apart]).allowed
    broken = ippool("other", NET, server="10.0.0.1")
    assert review_ippool("CREATE", new=apart, old=None, others=[broken]).allowed


def _reserved(*ips: str, network: str = NET) -> list[Recorded]:
    return [
        Recorded(f"ns/vm{i}", network, f"52:54:00:00:00:{i:02x}", ip) for i, ip in enumerate(ips)
    ]


def test_an_update_that_strands_reservations_is_refused_unless_forced() -> None:
    old = ippool("p", NET)
    held = _reserved("198.18.0.10", "198.18.0.200", "198.18.0.20")
    held += _reserved("198.18.0.240", network="ns/elsewhere")
    narrower = ippool("p", NET, start="198.18.0.15", end="198.18.0.100", exclude=["198.18.0.20"])
    message = _refused(
        review_ippool("UPDATE", new=narrower, old=old, reservations=held),
        "3 reservations",
        "ns/vm0 198.18.0.10 (it is before spec.ipv4config.pool.start 198.18.0.15)",
        "ns/vm1 198.18.0.200 (it is after spec.ipv4config.pool.end 198.18.0.100)",
        "ns/vm2 198.18.0.20 (it is listed in spec.ipv4config.pool.exclude)",
        FORCE_ANNOTATION,
    )
    assert "198.18.0.240" not in message
    router = ippool("p", NET, router="198.18.0.200")
    _refused(
        review_ippool("UPDATE", new=router, old=old, reservations=held),
        "198.18.0.200 (it is spec.ipv4config.router)",
    )
    moved = ippool("p", "ns/other-net")
    _refused(
        review_ippool("UPDATE", new=moved, old=old, reservations=held),
        "spec.networkname is now ns/other-net",
    )
    forced = review_ippool("UPDATE", new=_forced(narrower), old=old, reservations=held)
    assert forced.allowed and forced.warnings == ("forced: strands 3 reservations",)


def test_an_update_that_keeps_reservations_is_allowed() -> None:
    old = ippool("p", NET)
    held = _reserved("198.18.0.10", "198.18.0.200")
    wider = ippool("p", NET, start="198.18.0.5", end="198.18.0.250", leasetime=60)
    assert review_ippool("UPDATE", new=wider, old=old, reservations=held) == Verdict(True)
    # An address the old pool could not hand out either is not this change's doing.
    outside = _reserved("198.18.0.251")
    assert review_ippool("UPDATE", new=wider, old=old, reservations=outside).allowed


def test_deleting_a_pool_with_reservations_is_refused_unless_forced() -> None:
    pool = ippool("p", NET)
    held = _reserved("198.18.0.10")
    _refused(
        review_ippool("DELETE", new=None, old=pool, reservations=held),
        "IPPool p still holds 1 reservations",
        "ns/vm0 198.18.0.10",
        "spec.networkname",
        FORCE_ANNOTATION,
    )
    assert review_ippool("DELETE", new=None, old=_forced(pool), reservations=held).allowed
    empty = [*_reserved("198.18.0.10", network="ns/elsewhere"), Recorded("ns/v", NET, "m", None)]
    assert review_ippool("DELETE", new=None, old=ippool("p", NET), reservations=empty).allowed
    # A bare network name is in 'default', as the parser and Multus read it.
    bare = ippool("p", "net")
    _refused(
        review_ippool(
            "DELETE", new=None, old=bare, reservations=_reserved("1.2.3.4", network="default/net")
        ),
        "default/net",
    )


def test_a_vmnetcfg_edit_that_moves_a_nic_is_refused_unless_forced() -> None:
    before = _reserved("198.18.0.10", "198.18.0.11")
    after = [before[0], Recorded("ns/vm1", NET, before[1].mac, "198.18.0.99")]
    _refused(
        review_vmnetcfg(new={}, old_records=before, new_records=after),
        "spec.networkconfig[].ipaddress",
        f"the NIC {before[1].mac} on {NET} from 198.18.0.11 to 198.18.0.99",
    )
    assert review_vmnetcfg(
        new=_forced({"metadata": {}}), old_records=before, new_records=after
    ).allowed


def test_a_vmnetcfg_edit_that_keeps_addresses_is_allowed() -> None:
    before = _reserved("198.18.0.10")
    new_nic = Recorded("ns/vm0", NET, "52:54:00:00:00:ff", "198.18.0.77")
    unset = Recorded("ns/vm0", NET, "52:54:00:00:00:ee", None)
    # A NIC added, a NIC without an address yet, a NIC removed: no NIC moves.
    assert review_vmnetcfg(new={}, old_records=before, new_records=[*before, new_nic]).allowed
    assert review_vmnetcfg(new={}, old_records=[unset], new_records=[new_nic]).allowed
    assert review_vmnetcfg(new={}, old_records=before, new_records=[]).allowed


def test_the_answer_is_an_admission_review() -> None:
    refused = admission_response("u1", Verdict(False, "spec.x is wrong"))
    assert refused == {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {
            "uid": "u1",
            "allowed": False,
            "status": {"code": 403, "reason": "Forbidden", "message": "spec.x is wrong"},
        },
    }
    allowed = admission_response("u2", Verdict(True, warnings=("forced: x",)))
    assert allowed["response"] == {"uid": "u2", "allowed": True, "warnings": ["forced: x"]}
