"""Kube.list reads a collection in pages of one snapshot (issue 14).

Found by bench/controller.py at 65,000 VMs: kvip listed every VM and vmnetcfg
in one request, and on a busy 2-core machine the API server worked longer
than the 30 s request timeout before it answered, so kvip's start-up retried
for four minutes. Pages (client-go's 500) each answer quickly.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from kvip.k8s import IPPOOLS, Kube
from tests.lab import objects
from tests.lab.apiserver import ApiServer
from tests.lab.crs import IPPOOLS as IPPOOLS_PLURAL
from tests.lab.crs import Resource
from tests.lab.fixtures_apiserver import new_client
from tests.lab.k8s_crds import KUBEVIRT_CRDS, KVIP_CRDS, install_crds


@pytest.fixture(scope="module")
def compactable_apiserver(apiserver: ApiServer) -> Iterator[ApiServer]:
    """An API server of this module's own, without the watch cache, so that a
    compaction reaches a paged list. (Depends on `apiserver` only for its
    skip-or-build logic.)"""
    with ApiServer(watch_cache=False) as api:
        with new_client(api) as api_client:
            install_crds(api_client, KVIP_CRDS, KUBEVIRT_CRDS)
        yield api


def make_pools(pools: Resource, count: int) -> tuple[str, list[str]]:
    """`count` IPPools under a label of their own: (selector, names)."""
    tag = uuid.uuid4().hex[:8]
    selector = f"kvip-list-test={tag}"
    names = [f"list-{tag}-{i}" for i in range(count)]
    for name in names:
        pools.create(objects.ippool(name, selector=selector))
    return selector, names


def record_lists(kube: Kube, after: Callable[[int], None] = lambda n: None) -> list[dict[str, Any]]:
    """The keyword arguments of each LIST `kube` makes; `after(n)` runs after the n-th."""
    calls: list[dict[str, Any]] = []
    real = kube.custom.list_cluster_custom_object

    def listing(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        answer = real(*args, **kwargs)
        after(len(calls))
        return answer

    kube.custom.list_cluster_custom_object = listing  # type: ignore[method-assign]
    return calls


def names_of(items: list[dict[str, Any]]) -> list[str]:
    return sorted(str(item["metadata"]["name"]) for item in items)


def test_a_list_reads_every_object_in_pages(
    apiserver: ApiServer, crds: list[str], ippools: Resource
) -> None:
    selector, names = make_pools(ippools, 7)
    kube = Kube.connect(kubeconfig=str(apiserver.kubeconfig))
    try:
        kube.list_page = 3
        calls = record_lists(kube)
        items, version = kube.list(IPPOOLS, label_selector=selector)
        assert names_of(items) == names
        assert [call.get("limit") for call in calls] == [3, 3, 3]
        assert "_continue" not in calls[0]
        assert all(call.get("_continue") for call in calls[1:])
        assert int(version) >= max(int(i["metadata"]["resourceVersion"]) for i in items)
    finally:
        kube.close()
        for name in names:
            ippools.delete(name)


def test_a_list_whose_snapshot_is_compacted_midway_starts_again(
    compactable_apiserver: ApiServer,
) -> None:
    api = compactable_apiserver
    with new_client(api) as api_client:
        pools = Resource(client.CustomObjectsApi(api_client), IPPOOLS_PLURAL)
        selector, names = make_pools(pools, 5)
        late = f"{names[0]}-late"
        kube = Kube.connect(kubeconfig=str(api.kubeconfig))
        kube.list_page = 2

        def compact_after_the_first_page(n: int) -> None:
            if n == 1:
                pools.create(objects.ippool(late, selector=selector))
                api.etcd_compact()

        try:
            calls = record_lists(kube, after=compact_after_the_first_page)
            items, _ = kube.list(IPPOOLS, label_selector=selector)
        finally:
            kube.close()
        # The second page was refused (410: its snapshot compacted away); the
        # list began again (the third request has no continue token), saw the
        # late pool, and is one snapshot: each name once.
        assert names_of(items) == sorted([*names, late])
        assert len(calls) == 5 and "_continue" not in calls[2]
