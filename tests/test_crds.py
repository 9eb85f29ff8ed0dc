"""kvip's CRDs (deploy/crds.yaml) against a real kube-apiserver: accepted,
compatible with what kubevirt-ip-helper users and kubevirt-ip-helper itself
wrote, strict about malformed values, with the API semantics kvip relies on
(status subresource, printer columns, conflicts, watch bookmarks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from crd_objects import ippool, ready_condition, vmnetcfg, with_value
from k8s_crds import GROUP, IPPOOLS, VERSION, VMNETCFGS

pytestmark = [pytest.mark.apiserver, pytest.mark.usefixtures("crds")]

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_crds_are_established_with_their_names_and_scopes(kube_client: client.ApiClient) -> None:
    api = client.ApiextensionsV1Api(kube_client)
    pools = api.read_custom_resource_definition(f"{IPPOOLS}.{GROUP}")
    cfgs = api.read_custom_resource_definition(f"{VMNETCFGS}.{GROUP}")
    assert (pools.spec.scope, pools.spec.names.kind) == ("Cluster", "IPPool")
    assert pools.spec.names.short_names == ["ippool"]
    assert (cfgs.spec.scope, cfgs.spec.names.kind) == ("Namespaced", "VirtualMachineNetworkConfig")
    assert cfgs.spec.names.short_names == ["vmnetcfg", "vmnetcfgs"]
    for crd in (pools, cfgs):
        (version,) = crd.spec.versions
        assert (version.name, version.served, version.storage) == ("v1", True, True)
        assert version.subresources.status is not None
        conditions = {c.type: c.status for c in crd.status.conditions}
        assert conditions["Established"] == "True"
        assert conditions["NamesAccepted"] == "True"
        # A non-structural schema would be flagged here (and pruning disabled).
        assert "NonStructuralSchema" not in conditions
    for name in ("virtualmachines.kubevirt.io", "network-attachment-definitions.k8s.cni.cncf.io"):
        crd = api.read_custom_resource_definition(name)
        assert {c.type: c.status for c in crd.status.conditions}["Established"] == "True"


def test_seed_readme_ippool_applies_unchanged(
    custom: client.CustomObjectsApi, pool_name: str
) -> None:
    text = (FIXTURES / "seed-readme-ippool.yaml").read_text()
    for placeholder, value in {
        "<POOL_NAME>": pool_name,
        "<NAMESPACE>": "default",
        "<NETWORKATTACHMENTDEFINITION_NAME>": "net1",
    }.items():
        text = text.replace(placeholder, value)
    manifest = yaml.safe_load(text)
    custom.create_cluster_custom_object(GROUP, VERSION, IPPOOLS, manifest)
    stored = custom.get_cluster_custom_object(GROUP, VERSION, IPPOOLS, pool_name)
    # Nothing pruned, defaulted or rewritten.
    assert stored["spec"] == manifest["spec"]


def test_ippool_status_as_kubevirt_ip_helper_writes_it(
    custom: client.CustomObjectsApi, pool_name: str
) -> None:
    created = custom.create_cluster_custom_object(GROUP, VERSION, IPPOOLS, ippool(pool_name))
    # Go's metav1.Time serialises its zero value as null despite omitempty.
    status = {
        "lastupdate": "2024-01-02T03:04:05Z",
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
    custom.replace_cluster_custom_object_status(
        GROUP, VERSION, IPPOOLS, pool_name, {**created, "status": status}
    )
    stored = custom.get_cluster_custom_object(GROUP, VERSION, IPPOOLS, pool_name)
    assert stored["status"]["ipv4"] == status["ipv4"]
    assert stored["status"]["lastupdate"] == status["lastupdate"]


def test_vmnetcfg_as_kubevirt_ip_helper_writes_it(
    custom: client.CustomObjectsApi, namespace: str
) -> None:
    manifest = vmnetcfg("vm1")
    created = custom.create_namespaced_custom_object(GROUP, VERSION, namespace, VMNETCFGS, manifest)
    assert created["spec"] == manifest["spec"]
    status = {
        "networkconfig": [
            {
                "macaddress": "52:54:00:aa:bb:cc",
                "networkname": "default/net1",
                "status": "OK",
                "message": "IP 172.16.0.10 reserved",
            }
        ]
    }
    custom.replace_namespaced_custom_object_status(
        GROUP, VERSION, namespace, VMNETCFGS, "vm1", {**created, "status": status}
    )
    stored = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, VMNETCFGS, "vm1")
    assert stored["status"] == status
    assert stored["spec"] == manifest["spec"]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("spec.ipv4config.mtu", 68),
        ("spec.ipv4config.mtu", 65535),
        ("spec.ipv4config.leasetime", 0),
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
    ],
)
def test_valid_ippool_variants_are_accepted(
    custom: client.CustomObjectsApi, pool_name: str, path: str, value: Any
) -> None:
    manifest = with_value(ippool(pool_name), path, value)
    custom.create_cluster_custom_object(GROUP, VERSION, IPPOOLS, manifest)
    stored = custom.get_cluster_custom_object(GROUP, VERSION, IPPOOLS, pool_name)
    assert stored["spec"] == manifest["spec"]


def test_unknown_fields_are_pruned(custom: client.CustomObjectsApi, pool_name: str) -> None:
    # mtu belongs in ipv4config: misplaced, it is dropped, not stored unvalidated.
    manifest = with_value(ippool(pool_name), "spec.mtu", 1500)
    created = custom.create_cluster_custom_object(GROUP, VERSION, IPPOOLS, manifest)
    assert "mtu" not in created["spec"]


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("spec.ipv4config.subnet", "172.16.0.0/33", "should match"),
        ("spec.ipv4config.subnet", "172.16.0.0", "should match"),
        ("spec.ipv4config.subnet", "172.16.0.0/16 ", "should match"),
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
        ("spec.ipv4config.leasetime", -1, "should be greater than or equal to 0"),
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
    custom: client.CustomObjectsApi, pool_name: str, path: str, value: Any, expected: str
) -> None:
    manifest = with_value(ippool(pool_name), path, value)
    with pytest.raises(ApiException) as info:
        custom.create_cluster_custom_object(GROUP, VERSION, IPPOOLS, manifest)
    assert info.value.status == 422
    assert path in info.value.body
    assert expected in info.value.body


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
    custom: client.CustomObjectsApi, namespace: str, path: str, value: Any, expected: str
) -> None:
    manifest = with_value(vmnetcfg("vm1"), path, value)
    with pytest.raises(ApiException) as info:
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, VMNETCFGS, manifest)
    assert info.value.status == 422
    # 1.20 names a list item's field without its index.
    field = path.replace(".0.", ".")
    assert field in info.value.body
    assert expected in info.value.body


@pytest.mark.parametrize("mac", ["52:54:00:AA:BB:CC", "52-54-00-aa-bb-cc", "52:54:00:aa:bb:cc"])
def test_mac_spellings_kubevirt_ip_helper_accepted_are_accepted(
    custom: client.CustomObjectsApi, namespace: str, mac: str
) -> None:
    manifest = with_value(vmnetcfg("vm1"), "spec.networkconfig.0.macaddress", mac)
    del manifest["spec"]["networkconfig"][0]["ipaddress"]  # not allocated yet
    created = custom.create_namespaced_custom_object(GROUP, VERSION, namespace, VMNETCFGS, manifest)
    assert created["spec"]["networkconfig"] == [{"macaddress": mac, "networkname": "default/net1"}]


def test_invalid_condition_status_is_rejected(
    custom: client.CustomObjectsApi, pool_name: str
) -> None:
    created = custom.create_cluster_custom_object(GROUP, VERSION, IPPOOLS, ippool(pool_name))
    status = {"conditions": [ready_condition("Maybe")]}
    with pytest.raises(ApiException) as info:
        custom.replace_cluster_custom_object_status(
            GROUP, VERSION, IPPOOLS, pool_name, {**created, "status": status}
        )
    assert info.value.status == 422
    assert "status.conditions[0].status" in info.value.body
    duplicate = {"conditions": [ready_condition(), ready_condition("False")]}
    with pytest.raises(ApiException) as info:
        custom.replace_cluster_custom_object_status(
            GROUP, VERSION, IPPOOLS, pool_name, {**created, "status": duplicate}
        )
    assert info.value.status == 422
    assert "Duplicate value" in info.value.body
