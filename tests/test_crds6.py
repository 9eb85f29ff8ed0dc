"""The dual-stack parts of kvip's CRDs against a real kube-apiserver: an IPPool's
`spec.ipv6config` and `status.ipv6`, a vmnetcfg's `ipv6address`, and the
IPv6 subnet printer column. kubevirt-ip-helper's IPv4-only objects are
test_crds's."""

from __future__ import annotations

from typing import Any

import pytest

from tests.lab.crs import Resource, rejection
from tests.lab.objects import CRD_EXAMPLE_ENTRY, CRD_EXAMPLE_POOL, ippool, vmnetcfg, with_value

pytestmark = [pytest.mark.apiserver, pytest.mark.usefixtures("crds")]

V6 = "spec.ipv6config"


def dual_stack(name: str) -> dict[str, Any]:
    body = ippool(name, **CRD_EXAMPLE_POOL)
    body["spec"]["ipv6config"] = {
        "subnet": "2001:db8:1::/64",
        "serverip": "fe80::1",
        "router": "2001:db8:1::1",
        "pool": {
            "start": "2001:db8:1::10",
            "end": "2001:db8:1::ffff",
            "exclude": ["2001:db8:1::20"],
        },
        "dns": ["2001:db8::53"],
        "domainsearch": ["example.com"],
        "ntp": ["2001:db8::123", "ntp.example.com."],
        "preferredlifetime": 3600,
        "validlifetime": 4294967295,
        "routeradvertisement": True,
    }
    return body


def test_a_dual_stack_pool_is_stored_as_written(ippools: Resource, pool_name: str) -> None:
    manifest = dual_stack(pool_name)
    ippools.create(manifest)
    assert ippools.get(pool_name)["spec"] == manifest["spec"]


def test_routeradvertisement_defaults_to_false(ippools: Resource, pool_name: str) -> None:
    manifest = with_value(dual_stack(pool_name), f"{V6}.routeradvertisement", None)
    created = ippools.create(manifest)
    assert created["spec"]["ipv6config"]["routeradvertisement"] is False


def test_an_ipv4_only_pool_gains_no_ipv6config(ippools: Resource, pool_name: str) -> None:
    # The default lives inside ipv6config: kubevirt-ip-helper's pools stay as written.
    manifest = ippool(pool_name, **CRD_EXAMPLE_POOL)
    ippools.create(manifest)
    assert ippools.get(pool_name)["spec"] == manifest["spec"]


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (f"{V6}.subnet", "2001:db8::/48", "should match"),
        (f"{V6}.subnet", "2001:db8::", "should match"),
        (f"{V6}.subnet", None, "Required value"),
        (f"{V6}.serverip", "fe80::1%eth1", "should match"),
        (f"{V6}.router", "198.18.0.1", "should match"),
        (f"{V6}.pool.start", "2001:db8:1::1::2", "should match"),
        (f"{V6}.pool.end", None, "Required value"),
        (f"{V6}.pool.exclude", ["::ffff:1.2.3.4"], "should match"),
        (f"{V6}.dns", ["8.8.8.8"], "should match"),
        (f"{V6}.ntp", ["192.0.2.1"], "should match"),
        (f"{V6}.domainsearch", ["exa mple.com"], "should match"),
        (f"{V6}.preferredlifetime", 0, "should be greater than or equal to 1"),
        (f"{V6}.validlifetime", 4294967296, "should be less than or equal to 4294967295"),
        (f"{V6}.routeradvertisement", "yes", "must be of type boolean"),
    ],
)
def test_invalid_ipv6config_fields_are_rejected_with_the_field_named(
    ippools: Resource, pool_name: str, path: str, value: Any, expected: str
) -> None:
    status, body = rejection(lambda: ippools.create(with_value(dual_stack(pool_name), path, value)))
    assert status == 422
    assert path in body
    assert expected in body


def test_an_ipv6_only_pool_is_stored_and_one_with_neither_half_refused(
    ippools: Resource, pool_name: str
) -> None:
    only6 = with_value(dual_stack(pool_name), "spec.ipv4config", None)
    created = ippools.create(only6)
    assert "ipv4config" not in created["spec"] and created["spec"]["ipv6config"]
    neither = with_value(only6, "spec.ipv6config", None)
    neither["metadata"]["name"] = f"{pool_name}-neither"
    status, body = rejection(lambda: ippools.create(neither))
    assert (status, "must validate at least one schema (anyOf)" in body) == (422, True)
    assert "spec.ipv4config: Required value" in body


def test_ipv6_status_counts_are_strings_beyond_int64(ippools: Resource, pool_name: str) -> None:
    created = ippools.create(dual_stack(pool_name))
    status = {
        "ipv4": {"allocated": {}, "used": 0, "available": 65000},
        "ipv6": {
            "allocated": {"2001:db8:1::10": "default/vm1 [52:54:00:aa:bb:cc]"},
            "used": "1",
            "available": str(2**64 - 3),
            "excluded": "2",
        },
    }
    ippools.replace_status(pool_name, {**created, "status": status})
    assert ippools.get(pool_name)["status"]["ipv6"] == status["ipv6"]
    current = ippools.get(pool_name)
    bad = with_value(status, "ipv6.used", 1)
    code, body = rejection(lambda: ippools.replace_status(pool_name, {**current, "status": bad}))
    assert (code, "status.ipv6.used" in body) == (422, True)


def test_the_ipv6_subnet_is_a_printer_column(ippools: Resource, pool_name: str) -> None:
    ippools.create(dual_stack(pool_name))
    table = ippools.table(pool_name)
    columns = [c["name"] for c in table["columnDefinitions"]]
    assert columns[:4] == ["Name", "Network", "Subnet", "Subnet6"]
    (row,) = table["rows"]
    assert row["cells"][:4] == [pool_name, "default/net1", "172.16.0.0/16", "2001:db8:1::/64"]


def test_a_vmnetcfg_records_an_ipv6address(vmnetcfgs: Resource) -> None:
    network, mac, ip = CRD_EXAMPLE_ENTRY
    entry = {"networkname": network, "macaddress": mac, "ipaddress": ip}
    manifest = vmnetcfg("vm1", [CRD_EXAMPLE_ENTRY])
    manifest["spec"]["networkconfig"][0]["ipv6address"] = "2001:db8:1::10"
    created = vmnetcfgs.create(manifest)
    assert created["spec"]["networkconfig"] == [{**entry, "ipv6address": "2001:db8:1::10"}]
    served = {"networkname": network, "macaddress": mac, "ipv6address": "2001:db8:1::10"}
    status = {"networkconfig": [{**served, "status": "OK", "message": ""}]}
    vmnetcfgs.replace_status("vm1", {**created, "status": status})
    assert vmnetcfgs.get("vm1")["status"] == status
    bad = with_value(manifest, "spec.networkconfig.0.ipv6address", "2001:db8::1::1")
    bad["metadata"]["name"] = "vm2"
    code, body = rejection(lambda: vmnetcfgs.create(bad))
    assert (code, "spec.networkconfig.ipv6address" in body, "should match" in body) == (
        422,
        True,
        True,
    )
