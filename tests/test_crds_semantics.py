"""The API server semantics kvip relies on, with kvip's own CRDs: the status
subresource keeps spec and status apart, printer columns, optimistic
concurrency (409), and watches with bookmarks."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from crd_objects import ippool, ready_condition, vmnetcfg
from k8s_crds import GROUP, IPPOOLS, VERSION, VMNETCFGS

pytestmark = [pytest.mark.apiserver, pytest.mark.usefixtures("crds")]

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def pool_status(used: int = 1) -> dict[str, Any]:
    return {
        "lastupdate": "2024-01-02T03:04:05Z",
        "ipv4": {
            "allocated": {"172.16.0.10": "default/vm1 [52:54:00:aa:bb:cc]"},
            "used": used,
            "available": 65000,
        },
        "conditions": [ready_condition()],
    }


def test_status_is_ignored_on_create_and_spec_writes(
    custom: client.CustomObjectsApi, pool_name: str
) -> None:
    created = custom.create_cluster_custom_object(
        GROUP, VERSION, IPPOOLS, {**ippool(pool_name), "status": pool_status()}
    )
    assert "status" not in created
    with_status = custom.replace_cluster_custom_object_status(
        GROUP, VERSION, IPPOOLS, pool_name, {**created, "status": pool_status()}
    )
    assert with_status["status"] == pool_status()
    # A status write is not a spec change: the generation stays.
    assert with_status["metadata"]["generation"] == created["metadata"]["generation"]

    spec_change = {**with_status, "status": pool_status(used=99)}
    spec_change["spec"]["ipv4config"]["leasetime"] = 600
    replaced = custom.replace_cluster_custom_object(GROUP, VERSION, IPPOOLS, pool_name, spec_change)
    assert replaced["spec"]["ipv4config"]["leasetime"] == 600
    assert replaced["status"] == pool_status()
    assert replaced["metadata"]["generation"] == created["metadata"]["generation"] + 1


def test_status_writes_leave_the_spec_alone(
    custom: client.CustomObjectsApi, pool_name: str
) -> None:
    created = custom.create_cluster_custom_object(GROUP, VERSION, IPPOOLS, ippool(pool_name))
    patch = {"spec": {"networkname": "other/net"}, "status": pool_status()}
    patched = custom.patch_cluster_custom_object_status(GROUP, VERSION, IPPOOLS, pool_name, patch)
    assert patched["spec"] == created["spec"]
    assert patched["status"] == pool_status()


def _table(api_client: client.ApiClient, path: str) -> dict[str, Any]:
    table, _, _ = api_client.call_api(
        path,
        "GET",
        header_params={"Accept": TABLE},
        response_type="object",
        auth_settings=["BearerToken"],
    )
    assert isinstance(table, dict)
    return table


def test_ippool_printer_columns(
    kube_client: client.ApiClient, custom: client.CustomObjectsApi, pool_name: str
) -> None:
    created = custom.create_cluster_custom_object(GROUP, VERSION, IPPOOLS, ippool(pool_name))
    custom.replace_cluster_custom_object_status(
        GROUP, VERSION, IPPOOLS, pool_name, {**created, "status": pool_status()}
    )
    table = _table(kube_client, f"/apis/{GROUP}/{VERSION}/{IPPOOLS}/{pool_name}")
    columns = [c["name"] for c in table["columnDefinitions"]]
    assert columns == ["Name", "Network", "Subnet", "Used", "Available", "Ready", "Age"]
    (row,) = table["rows"]
    assert row["cells"][:6] == [pool_name, "default/net1", "172.16.0.0/16", 1, 65000, "True"]


def test_vmnetcfg_printer_columns(
    kube_client: client.ApiClient, custom: client.CustomObjectsApi, namespace: str
) -> None:
    created = custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, VMNETCFGS, vmnetcfg("vm1")
    )
    status = {"networkconfig": [{"networkname": "default/net1", "status": "OK"}]}
    custom.replace_namespaced_custom_object_status(
        GROUP, VERSION, namespace, VMNETCFGS, "vm1", {**created, "status": status}
    )
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{VMNETCFGS}/vm1"
    table = _table(kube_client, path)
    columns = [c["name"] for c in table["columnDefinitions"]]
    assert columns == ["Name", "VM", "Network", "IP", "MAC", "Status", "Age"]
    (row,) = table["rows"]
    assert row["cells"][:6] == [
        "vm1", "vm1", "default/net1", "172.16.0.10", "52:54:00:aa:bb:cc", "OK"
    ]  # fmt: skip


def test_stale_resource_version_is_a_conflict(
    custom: client.CustomObjectsApi, pool_name: str
) -> None:
    stale = custom.create_cluster_custom_object(GROUP, VERSION, IPPOOLS, ippool(pool_name))
    custom.patch_cluster_custom_object(
        GROUP, VERSION, IPPOOLS, pool_name, {"spec": {"ipv4config": {"leasetime": 60}}}
    )
    with pytest.raises(ApiException) as spec_write:
        custom.replace_cluster_custom_object(GROUP, VERSION, IPPOOLS, pool_name, stale)
    assert spec_write.value.status == 409
    with pytest.raises(ApiException) as status_write:
        custom.replace_cluster_custom_object_status(
            GROUP, VERSION, IPPOOLS, pool_name, {**stale, "status": pool_status()}
        )
    assert status_write.value.status == 409
    current = custom.get_cluster_custom_object(GROUP, VERSION, IPPOOLS, pool_name)
    assert current["spec"]["ipv4config"]["leasetime"] == 60
    assert "status" not in current


def test_watch_replays_events_and_sends_bookmarks(
    custom: client.CustomObjectsApi, pool_name: str
) -> None:
    listing = custom.list_cluster_custom_object(GROUP, VERSION, IPPOOLS)
    since = listing["metadata"]["resourceVersion"]
    created = custom.create_cluster_custom_object(GROUP, VERSION, IPPOOLS, ippool(pool_name))
    events = []
    # The server sends a bookmark about 2 s before the watch's deadline.
    stream = watch.Watch().stream(
        custom.list_cluster_custom_object,
        GROUP,
        VERSION,
        IPPOOLS,
        resource_version=since,
        allow_watch_bookmarks=True,
        timeout_seconds=5,
    )
    for event in stream:
        events.append((event["type"], event["raw_object"]["metadata"]))
    added = [m for t, m in events if t == "ADDED" and m.get("name") == pool_name]
    assert [m["resourceVersion"] for m in added] == [created["metadata"]["resourceVersion"]]
    bookmarks = [int(m["resourceVersion"]) for t, m in events if t == "BOOKMARK"]
    assert bookmarks
    assert max(bookmarks) >= int(created["metadata"]["resourceVersion"])
