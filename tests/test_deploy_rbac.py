"""deploy/base/rbac.yaml is exactly enough: kvip running with the ServiceAccount's
own token reserves a VM's address and serves it to a real DHCP client, and the
same token is refused everything else."""

from __future__ import annotations

import datetime
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from tests.lab import objects
from tests.lab.apiserver import ApiServer
from tests.lab.apiserver_pki import write_kubeconfig
from tests.lab.deploy_manifests import BASE, NAMESPACE, KubectlMissing, kubectl, kubectl_path
from tests.lab.dhcpclients import run_udhcpc
from tests.lab.fixtures_apiserver import create_namespace, delete_namespace
from tests.lab.kvip_rig import RunningKvip, unique, wait_for
from tests.lab.netlab import netlab
from tests.lab.objects import CFGS, GROUP, VERSION, VMS

pytestmark = [pytest.mark.apiserver]


@pytest.fixture(scope="module")
def sa_kubeconfig(
    apiserver: ApiServer, kube_client: client.ApiClient, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """deploy/'s namespace, ServiceAccount and RBAC applied for real, and a
    kubeconfig holding a token of that ServiceAccount (TokenRequest API)."""
    try:
        kubectl_path()
    except KubectlMissing as exc:
        pytest.skip(str(exc))
    for manifest in ("namespace.yaml", "rbac.yaml"):
        result = kubectl("apply", "-f", str(BASE / manifest), kubeconfig=apiserver.kubeconfig)
        assert result.returncode == 0, result.stderr
    request = client.AuthenticationV1TokenRequest(
        # No audiences: the API server's own.
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
    )
    token = client.CoreV1Api(kube_client).create_namespaced_service_account_token(
        "kvip", NAMESPACE, request
    )
    assert token.status is not None
    path = tmp_path_factory.mktemp("kvip-sa") / "kubeconfig"
    write_kubeconfig(
        path, url=apiserver.url, ca_file=apiserver.ca_file, token=str(token.status.token)
    )
    return path


@pytest.fixture
def sa_client(sa_kubeconfig: Path) -> Iterator[client.ApiClient]:
    api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(sa_kubeconfig)
    )
    with api:
        yield api


def _forbidden(call: Any, *args: Any, **kwargs: Any) -> str:
    """The body of the 403 that `call` must get."""
    with pytest.raises(ApiException) as refused:
        call(*args, **kwargs)
    assert refused.value.status == 403, refused.value
    return str(refused.value.body)


def test_the_service_account_gets_nothing_more(
    crds: list[str], kube_client: client.ApiClient, sa_client: client.ApiClient, namespace: str
) -> None:
    admin: Any = client.CustomObjectsApi(kube_client)
    admin.create_namespaced_custom_object(
        *VMS[:2], namespace, VMS[2], objects.vm("vm", namespace, [("nic", "net", None)])
    )
    core, custom = client.CoreV1Api(sa_client), client.CustomObjectsApi(sa_client)
    body = _forbidden(core.list_namespaced_secret, NAMESPACE)
    # The token is the ServiceAccount's (and the refusal is RBAC's).
    assert f"system:serviceaccount:{NAMESPACE}:kvip" in body
    _forbidden(core.list_secret_for_all_namespaces)
    _forbidden(core.read_namespaced_secret, "anything", namespace)
    _forbidden(core.list_pod_for_all_namespaces)
    _forbidden(core.list_namespaced_pod, NAMESPACE)
    _forbidden(custom.delete_namespaced_custom_object, *VMS[:2], namespace, VMS[2], "vm")
    _forbidden(
        custom.patch_namespaced_custom_object, *VMS[:2], namespace, VMS[2], "vm",
        {"metadata": {"labels": {"x": "y"}}}, _content_type="application/merge-patch+json",
    )  # fmt: skip
    pool = objects.ippool(unique("pool"), f"{namespace}/net", selector="kvip-test=rbac")
    _forbidden(custom.create_cluster_custom_object, GROUP, VERSION, "ippools", pool)
    # Pools are configuration: kvip writes their status only.
    admin.create_cluster_custom_object(GROUP, VERSION, "ippools", pool)
    try:
        name = pool["metadata"]["name"]
        _forbidden(
            custom.patch_cluster_custom_object, GROUP, VERSION, "ippools", name,
            {"spec": {"paused": True}}, _content_type="application/merge-patch+json",
        )  # fmt: skip
        _forbidden(custom.delete_cluster_custom_object, GROUP, VERSION, "ippools", name)
        custom.patch_cluster_custom_object_status(
            GROUP, VERSION, "ippools", name, {"status": {"ipv4": {"used": 0}}},
            _content_type="application/merge-patch+json",
        )  # fmt: skip
    finally:
        admin.delete_cluster_custom_object(GROUP, VERSION, "ippools", pool["metadata"]["name"])
    # Leases only in kvip's own namespace.
    lease = client.V1Lease(metadata=client.V1ObjectMeta(name=unique("kvip")))
    coordination = client.CoordinationV1Api(sa_client)
    _forbidden(coordination.create_namespaced_lease, namespace, lease)
    _forbidden(coordination.list_namespaced_lease, namespace)
    _forbidden(coordination.list_lease_for_all_namespaces)
    _forbidden(coordination.delete_namespaced_lease, "kvip", namespace)


def test_the_service_account_may_lead_and_report(
    sa_client: client.ApiClient, kube_client: client.ApiClient, namespace: str
) -> None:
    """What kvip uses: Leases in kvip-system (the leader's and the replicas'
    heartbeats), Events in any namespace."""
    coordination = client.CoordinationV1Api(sa_client)
    name = unique("kvip-leader")
    created = coordination.create_namespaced_lease(
        NAMESPACE, client.V1Lease(metadata=client.V1ObjectMeta(name=name),
                                  spec=client.V1LeaseSpec(holder_identity="a"))
    )  # fmt: skip
    assert created.spec is not None
    created.spec.holder_identity = "b"
    coordination.replace_namespaced_lease(name, NAMESPACE, created)
    assert coordination.read_namespaced_lease(name, NAMESPACE).to_dict()["spec"] == {
        **created.spec.to_dict(),
        "holder_identity": "b",
    }
    client.CoordinationV1Api(kube_client).delete_namespaced_lease(name, NAMESPACE)
    _heartbeat_round_trip(coordination)

    involved = client.V1ObjectReference(kind="VirtualMachine", name="vm", namespace=namespace)
    event = client.CoreV1Api(sa_client).create_namespaced_event(
        namespace,
        client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name="vm-"), involved_object=involved,
            reason="AddressReserved", message="198.18.0.10", type="Normal", count=1,
        ),
    )  # fmt: skip
    assert event.metadata is not None and event.metadata.name
    client.CoreV1Api(sa_client).patch_namespaced_event(event.metadata.name, namespace, {"count": 2})
    client.EventsV1Api(sa_client).create_namespaced_event(
        namespace,
        client.EventsV1Event(
            metadata=client.V1ObjectMeta(generate_name="vm-"), regarding=involved,
            reason="AddressReserved", note="198.18.0.10", type="Normal", action="Reserve",
            reporting_controller="kvip", reporting_instance="kvip-0",
            event_time=datetime.datetime.now(datetime.UTC),
        ),
    )  # fmt: skip


def _heartbeat_round_trip(coordination: client.CoordinationV1Api) -> None:
    """A replica's heartbeat Lease, "<lease name>-replica-<pod name>", labelled
    as kvip's: created and renewed by its replica, listed and watched by the
    leader (which replicas serve), deleted when the replica is gone."""
    selector = f"app.kubernetes.io/name=kvip,kvip-test={unique('hb')}"
    labels = dict(pair.split("=") for pair in selector.split(","))
    name = f"kvip-replica-{unique('kvip-5d8f7c9b4-x')}"
    body = client.V1Lease(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1LeaseSpec(holder_identity=name, lease_duration_seconds=15),
    )
    created = coordination.create_namespaced_lease(NAMESPACE, body)
    assert created.spec is not None
    created.spec.lease_duration_seconds = 30
    coordination.replace_namespaced_lease(name, NAMESPACE, created)
    listed = coordination.list_namespaced_lease(NAMESPACE, label_selector=selector)
    assert [lease.metadata and lease.metadata.name for lease in listed.items] == [name]
    assert listed.metadata is not None
    # From the list's resourceVersion: the watch request starts at next(),
    # after the delete, and still delivers it.
    stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
        coordination.list_namespaced_lease, NAMESPACE, label_selector=selector,
        resource_version=listed.metadata.resource_version, timeout_seconds=30,
    )  # fmt: skip
    coordination.delete_namespaced_lease(name, NAMESPACE)
    event = next(stream)
    assert (event["type"], event["object"].metadata.name) == ("DELETED", name)
    assert coordination.list_namespaced_lease(NAMESPACE, label_selector=selector).items == []


def test_kvip_serves_a_vm_with_only_the_service_accounts_rights(
    apiserver: ApiServer, crds: list[str], kube_client: client.ApiClient, sa_kubeconfig: Path
) -> None:
    if os.geteuid() != 0 or shutil.which("udhcpc") is None:
        pytest.skip("needs root for network namespaces and udhcpc")
    admin: Any = client.CustomObjectsApi(kube_client)
    namespace = create_namespace(kube_client, prefix="kvip-rbac")
    selector = f"kvip-test={unique('rbac')}"
    pool = unique("pool")
    mac = "52:54:00:00:6b:01"
    try:
        admin.create_cluster_custom_object(
            GROUP, VERSION, "ippools", objects.ippool(pool, f"{namespace}/net", selector=selector)
        )
        with (
            netlab("kvr", veth=True) as lab,
            RunningKvip(sa_kubeconfig, selector=selector, netns=lab.server),
        ):
            admin.create_namespaced_custom_object(
                *VMS[:2], namespace, VMS[2], objects.vm("vm", namespace, [("nic", "net", mac)])
            )

            def reserved() -> str | None:
                cfg = admin.get_namespaced_custom_object(GROUP, VERSION, namespace, CFGS, "vm")
                entries = cfg.get("spec", {}).get("networkconfig", [])
                return next((e["ipaddress"] for e in entries if e.get("ipaddress")), None)

            ip = wait_for(reserved, what="the vmnetcfg's address")
            assert ip == "198.18.0.10"
            assert str(run_udhcpc(lab.add_client(mac), timeout=10).ip) == ip
            # Status writes went through too (ippools/status).
            used = wait_for(
                lambda: admin.get_cluster_custom_object(GROUP, VERSION, "ippools", pool)
                .get("status", {}).get("ipv4", {}).get("used"),
                what="the pool's status",
            )  # fmt: skip
            assert used == 1
            # VM deleted -> kvip deletes its vmnetcfg (delete + finalizer update).
            admin.delete_namespaced_custom_object(*VMS[:2], namespace, VMS[2], "vm")
            wait_for(lambda: not _exists(admin, namespace, "vm"), what="the vmnetcfg removed")
    finally:
        for item in admin.list_namespaced_custom_object(GROUP, VERSION, namespace, CFGS)["items"]:
            admin.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, CFGS, item["metadata"]["name"],
                {"metadata": {"finalizers": None}},
                _content_type="application/merge-patch+json",
            )  # fmt: skip
        for item in admin.list_namespaced_custom_object(*VMS[:2], namespace, VMS[2])["items"]:
            admin.delete_namespaced_custom_object(
                *VMS[:2], namespace, VMS[2], item["metadata"]["name"]
            )
        try:
            admin.delete_cluster_custom_object(GROUP, VERSION, "ippools", pool)
        except ApiException as exc:
            if exc.status != 404:
                raise
        delete_namespace(kube_client, namespace)


def _exists(admin: Any, namespace: str, name: str) -> bool:
    try:
        admin.get_namespaced_custom_object(GROUP, VERSION, namespace, CFGS, name)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True
