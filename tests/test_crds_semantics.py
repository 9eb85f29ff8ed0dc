"""The API server semantics kvip relies on, with kvip's own CRDs: the status
subresource keeps spec and status apart, printer columns, optimistic
concurrency (409), and watches with bookmarks."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from tests.lab.crs import Resource, rejection
from tests.lab.objects import (
    CRD_EXAMPLE_ENTRY,
    CRD_EXAMPLE_POOL,
    ippool,
    ready_condition,
    vmnetcfg,
    with_value,
)

pytestmark = [pytest.mark.apiserver, pytest.mark.usefixtures("crds")]


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


def test_status_is_ignored_on_create_and_spec_writes(ippools: Resource, pool_name: str) -> None:
    created = ippools.create({**ippool(pool_name, **CRD_EXAMPLE_POOL), "status": pool_status()})
    assert "status" not in created
    with_status = ippools.replace_status(pool_name, {**created, "status": pool_status()})
    assert with_status["status"] == pool_status()
    # A status write is not a spec change: the generation stays.
    assert with_status["metadata"]["generation"] == created["metadata"]["generation"]

    spec_change = {**with_status, "status": pool_status(used=99)}
    spec_change["spec"]["ipv4config"]["leasetime"] = 600
    replaced = ippools.replace(pool_name, spec_change)
    assert replaced["spec"]["ipv4config"]["leasetime"] == 600
    assert replaced["status"] == pool_status()
    assert replaced["metadata"]["generation"] == created["metadata"]["generation"] + 1


def test_status_writes_leave_the_spec_alone(ippools: Resource, pool_name: str) -> None:
    created = ippools.create(ippool(pool_name, **CRD_EXAMPLE_POOL))
    patched = ippools.patch_status(
        pool_name, {"spec": {"networkname": "other/net"}, "status": pool_status()}
    )
    assert patched["spec"] == created["spec"]
    assert patched["status"] == pool_status()


def test_ippool_printer_columns(ippools: Resource, pool_name: str) -> None:
    created = ippools.create(ippool(pool_name, **CRD_EXAMPLE_POOL))
    ippools.replace_status(pool_name, {**created, "status": pool_status()})
    table = ippools.table(pool_name)
    columns = [c["name"] for c in table["columnDefinitions"]]
    assert columns == ["Name", "Network", "Subnet", "Subnet6", "Used", "Available", "Ready", "Age"]
    (row,) = table["rows"]
    assert row["cells"][:7] == [pool_name, "default/net1", "172.16.0.0/16", None, 1, 65000, "True"]


def test_vmnetcfg_printer_columns(vmnetcfgs: Resource) -> None:
    created = vmnetcfgs.create(vmnetcfg("vm1", [CRD_EXAMPLE_ENTRY]))
    status = {"networkconfig": [{"networkname": "default/net1", "status": "OK"}]}
    vmnetcfgs.replace_status("vm1", {**created, "status": status})
    table = vmnetcfgs.table("vm1")
    columns = [c["name"] for c in table["columnDefinitions"]]
    assert columns == ["Name", "VM", "Network", "IP", "MAC", "Status", "Age"]
    (row,) = table["rows"]
    assert row["cells"][:6] == [
        "vm1", "vm1", "default/net1", "172.16.0.10", "52:54:00:aa:bb:cc", "OK"
    ]  # fmt: skip


def test_stale_resource_version_is_a_conflict(ippools: Resource, pool_name: str) -> None:
    stale = ippools.create(ippool(pool_name, **CRD_EXAMPLE_POOL))
    ippools.patch(pool_name, {"spec": {"ipv4config": {"leasetime": 60}}})
    status, body = rejection(lambda: ippools.replace(pool_name, stale))
    assert status == 409
    assert "the object has been modified" in body
    status, _ = rejection(
        lambda: ippools.replace_status(pool_name, {**stale, "status": pool_status()})
    )
    assert status == 409
    current = ippools.get(pool_name)
    assert current["spec"]["ipv4config"]["leasetime"] == 60
    assert "status" not in current


def test_filtered_watch_gets_bookmarks_past_events_it_does_not_see(
    ippools: Resource, pool_name: str
) -> None:
    # 1.20 sends a bookmark about 2 s before a watch's deadline, and only when
    # the resource moved on past the last event the watcher got: exactly the
    # case of a label-filtered watch while other objects change.
    since = ippools.list()["metadata"]["resourceVersion"]
    labelled = with_value(
        ippool(pool_name, **CRD_EXAMPLE_POOL), "metadata.labels", {"kvip-test": pool_name}
    )
    created = ippools.create(labelled)
    other = f"{pool_name}-other"
    events: list[tuple[str, dict[str, Any]]] = []
    try:
        for event in ippools.watch(
            resource_version=since,
            label_selector=f"kvip-test={pool_name}",
            allow_watch_bookmarks=True,
            timeout_seconds=6,
        ):
            events.append((event["type"], event["raw_object"]["metadata"]))
            if len(events) == 1:  # the watch is registered: change something it filters out
                other_rv = int(
                    ippools.create(ippool(other, **CRD_EXAMPLE_POOL))["metadata"]["resourceVersion"]
                )
    finally:
        with contextlib.suppress(ApiException):
            ippools.delete(other)
    assert events[0][0] == "ADDED"
    assert events[0][1]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert all(meta.get("name") != other for _, meta in events)
    bookmarks = [int(meta["resourceVersion"]) for kind, meta in events if kind == "BOOKMARK"]
    assert bookmarks, events
    assert max(bookmarks) >= other_rv
