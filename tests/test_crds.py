"""kvip's CRDs (deploy/crds.yaml) against a real kube-apiserver: accepted,
compatible with what kubevirt-ip-helper users and kubevirt-ip-helper itself
wrote, and strict about malformed values. (API semantics: test_crds_semantics.)"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.lab.crs import IPPOOLS, VMNETCFGS, Resource, crd_resource, rejection
from tests.lab.k8s_crds import condition
from tests.lab.objects import (
    CRD_EXAMPLE_ENTRY,
    CRD_EXAMPLE_POOL,
    GROUP,
    ippool,
    ready_condition,
    vmnetcfg,
    with_value,
)

pytestmark = [pytest.mark.apiserver, pytest.mark.usefixtures("crds")]

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_crds_are_established_with_their_names_and_scopes(
    custom: client.CustomObjectsApi,
) -> None:
    crds = crd_resource(custom)
    pools = crds.get(f"{IPPOOLS}.{GROUP}")
    cfgs = crds.get(f"{VMNETCFGS}.{GROUP}")
    assert (pools["spec"]["scope"], pools["spec"]["names"]["kind"]) == ("Cluster", "IPPool")
    assert pools["spec"]["names"]["shortNames"] == ["ippool"]
    assert (cfgs["spec"]["scope"], cfgs["spec"]["names"]["kind"]) == (
        "Namespaced",
        "VirtualMachineNetworkConfig",
    )
    assert cfgs["spec"]["names"]["shortNames"] == ["vmnetcfg", "vmnetcfgs"]
    for crd in (pools, cfgs):
        (version,) = crd["spec"]["versions"]
        assert (version["name"], version["served"], version["storage"]) == ("v1", True, True)
        assert version["subresources"] == {"status": {}}
        assert condition(crd, "Established") == "True"
        assert condition(crd, "NamesAccepted") == "True"
        # A non-structural schema would be flagged here (and pruning disabled).
        assert condition(crd, "NonStructuralSchema") is None
    for name in ("virtualmachines.kubevirt.io", "network-attachment-definitions.k8s.cni.cncf.io"):
        assert condition(crds.get(name), "Established") == "True"


def test_seed_readme_ippool_applies_unchanged(ippools: Resource, pool_name: str) -> None:
    text = (FIXTURES / "seed-readme-ippool.yaml").read_text()
    for placeholder, value in {
        "<POOL_NAME>": pool_name,
        "<NAMESPACE>": "default",
        "<NETWORKATTACHMENTDEFINITION_NAME>": "net1",
    }.items():
        text = text.replace(placeholder, value)
    manifest = yaml.safe_load(text)
    ippools.create(manifest)
    # Nothing pruned, defaulted or rewritten.
    assert ippools.get(pool_name)["spec"] == manifest["spec"]


def test_ippool_status_as_kubevirt_ip_helper_writes_it(ippools: Resource, pool_name: str) -> None:
    created = ippools.create(ippool(pool_name, **CRD_EXAMPLE_POOL))
    status = {
        "lastupdate": "2024-01-02T03:04:05Z",
        # Go's metav1.Time serialises its zero value as null despite omitempty.
        "lastupdatebeforestart": None,
        "ipv4": {
            "allocated": {
                "172.16.0.67": "EXCLUDED",
                "172.16.0.10": "default/vm1 [52:54:00:aa:bb:cc]",
            },
            "used": 1,
            "available": 65000,
        },
    }
    ippools.replace_status(pool_name, {**created, "status": status})
    stored = ippools.get(pool_name)["status"]
    assert stored["ipv4"] == status["ipv4"]
    assert stored["lastupdate"] == status["lastupdate"]


def test_vmnetcfg_as_kubevirt_ip_helper_writes_it(vmnetcfgs: Resource) -> None:
    manifest = vmnetcfg("vm1", [CRD_EXAMPLE_ENTRY])
    created = vmnetcfgs.create(manifest)
    assert created["spec"] == manifest["spec"]
    status = {
        "networkconfig": [
            {
                "macaddress": "52:54:00:aa:bb:cc",
                "networkname": "default/net1",
                "status": "OK",
                "message": "",
            }
        ]
    }
    vmnetcfgs.replace_status("vm1", {**created, "status": status})
    stored = vmnetcfgs.get("vm1")
    assert stored["status"] == status
    assert stored["spec"] == manifest["spec"]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("spec.ipv4config.mtu", 68),
        ("spec.ipv4config.mtu", 65535),
        ("spec.ipv4config.leasetime", 1),
        ("spec.ipv4config.leasetime", 4294967295),
        ("spec.ipv4config.subnet", "10.0.0.0/8"),
        ("spec.ipv4config.subnet", "0.0.0.0/0"),
        ("spec.ipv4config.ntp", ["192.0.2.1", "ntp.example.com", "time1.google.com."]),
        ("spec.ipv4config.domainsearch", ["example.com", "corp", "xn--bcher-kva.example"]),
        ("spec.ipv4config.routes", [{"destination": "10.0.0.0/8", "gateway": "172.16.0.1"}]),
        ("spec.networkname", "net1"),
        ("spec.networkname", "kube-system/bridge.vlan-10"),
        ("spec.bindinterface", "eth1.100"),
        ("spec.paused", True),
        ("spec.paused", False),
    ],
)
def test_valid_ippool_variants_are_accepted(
    ippools: Resource, pool_name: str, path: str, value: Any
) -> None:
    manifest = with_value(ippool(pool_name, **CRD_EXAMPLE_POOL), path, value)
    ippools.create(manifest)
    assert ippools.get(pool_name)["spec"] == manifest["spec"]


def test_unknown_fields_are_pruned(ippools: Resource, pool_name: str) -> None:
    # mtu belongs in ipv4config: misplaced, it is dropped, not stored unvalidated.
    created = ippools.create(with_value(ippool(pool_name, **CRD_EXAMPLE_POOL), "spec.mtu", 1500))
    assert "mtu" not in created["spec"]


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("spec.ipv4config.subnet", "172.16.0.0/33", "should match"),
        ("spec.ipv4config.subnet", "172.16.0.0", "should match"),
        ("spec.ipv4config.subnet", "172.16.0.0/16 ", "should match"),
        ("spec.ipv4config.subnet", "", "should match"),
        ("spec.ipv4config.serverip", "172.16.0.256", "should match"),
        ("spec.ipv4config.serverip", "172.016.0.2", "should match"),
        ("spec.ipv4config.serverip", "fe80::1", "should match"),
        ("spec.ipv4config.router", "gateway", "should match"),
        ("spec.ipv4config.pool.start", "172.16.0", "should match"),
        ("spec.ipv4config.pool.end", None, "Required value"),
        ("spec.ipv4config.pool.exclude", ["172.16.0.1/32"], "should match"),
        ("spec.ipv4config.dns", ["8.8.8.8.8"], "should match"),
        ("spec.ipv4config.dns", "8.8.8.8", "must be of type array"),
        ("spec.ipv4config.ntp", ["1.2.3.999"], "should match"),
        ("spec.ipv4config.domainname", "-bad-.example.com", "should match"),
        ("spec.ipv4config.domainsearch", ["exa mple.com"], "should match"),
        ("spec.ipv4config.mtu", 67, "should be greater than or equal to 68"),
        ("spec.ipv4config.mtu", 65536, "should be less than or equal to 65535"),
        ("spec.ipv4config.leasetime", 0, "should be greater than or equal to 1"),
        ("spec.ipv4config.leasetime", -1, "should be greater than or equal to 1"),
        ("spec.ipv4config.leasetime", "300", "must be of type integer"),
        ("spec.ipv4config.routes", [{"destination": "10.0.0.0/8"}], "Required value"),
        (
            "spec.ipv4config.routes",
            [{"destination": "10.0.0.0/40", "gateway": "172.16.0.1"}],
            "should match",
        ),
        ("spec.ipv4config.serverip", None, "Required value"),
        ("spec.networkname", None, "Required value"),
        ("spec.networkname", "Default/Net_1", "should match"),
        ("spec.networkname", "a/b/c", "should match"),
        ("spec.bindinterface", "an-interface-name-too-long", "should match"),
        ("spec.paused", "yes", "must be of type boolean"),
    ],
)
def test_invalid_ippools_are_rejected_with_the_field_named(
    ippools: Resource, pool_name: str, path: str, value: Any, expected: str
) -> None:
    manifest = with_value(ippool(pool_name, **CRD_EXAMPLE_POOL), path, value)
    status, body = rejection(lambda: ippools.create(manifest))
    assert status == 422
    # 1.20 names a list item's field without its index.
    assert path.replace(".0.", ".") in body
    assert expected in body


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("spec.networkconfig.0.macaddress", "52:54:00:zz:bb:cc", "should match"),
        ("spec.networkconfig.0.macaddress", "52:54:00:aa:bb", "should match"),
        ("spec.networkconfig.0.macaddress", "52:54-00:aa:bb:cc", "should match"),
        ("spec.networkconfig.0.macaddress", None, "Required value"),
        ("spec.networkconfig.0.ipaddress", "172.16.0.300", "should match"),
        ("spec.networkconfig.0.networkname", "default/net_1", "should match"),
        ("spec.vmname", "VM_1", "should match"),
        ("spec.vmname", None, "Required value"),
    ],
)
def test_invalid_vmnetcfgs_are_rejected_with_the_field_named(
    vmnetcfgs: Resource, path: str, value: Any, expected: str
) -> None:
    manifest = with_value(vmnetcfg("vm1", [CRD_EXAMPLE_ENTRY]), path, value)
    status, body = rejection(lambda: vmnetcfgs.create(manifest))
    assert status == 422
    assert path.replace(".0.", ".") in body
    assert expected in body


@pytest.mark.parametrize("mac", ["52:54:00:AA:BB:CC", "52-54-00-aa-bb-cc", "52:54:00:aa:bb:cc"])
def test_mac_spellings_kubevirt_ip_helper_accepted_are_accepted(
    vmnetcfgs: Resource, mac: str
) -> None:
    manifest = with_value(
        vmnetcfg("vm1", [CRD_EXAMPLE_ENTRY]), "spec.networkconfig.0.macaddress", mac
    )
    del manifest["spec"]["networkconfig"][0]["ipaddress"]  # not allocated yet
    created = vmnetcfgs.create(manifest)
    assert created["spec"]["networkconfig"] == [{"macaddress": mac, "networkname": "default/net1"}]


def test_condition_fields_are_validated(ippools: Resource, pool_name: str) -> None:
    # (1.20 does not check the uniqueness of condition types on status writes:
    # x-kubernetes-list-type map is only enforced on the main resource there.
    # kvip keeps one condition per type itself.)
    created = ippools.create(ippool(pool_name, **CRD_EXAMPLE_POOL))
    for field, value in [("status", "Maybe"), ("reason", "not a reason"), ("type", "")]:
        body_with = {
            **created,
            "status": {"conditions": [{**ready_condition(), field: value}]},
        }
        status, body = rejection(partial(ippools.replace_status, pool_name, body_with))
        assert status == 422
        assert f"status.conditions.{field}" in body
