"""The API double (apidouble.py) behaves as the real kube-apiserver does.

One script of calls, through kvip's own `Kube` facade, runs against the
double and against a real kube-apiserver with kvip's CRDs (deploy/crds.yaml):
what each call returns or raises, which fields it changed, how
resourceVersion and generation move, deletionTimestamp and finalizers, the
status subresource, what a watch delivers, and 410 Gone after an etcd
compaction. The outcomes must be equal: the simulation tier (test_simulation.py)
can trust the double only as far as this test pins it.

The real server runs without its watch cache (like tests/chaos), so that a
compaction reaches a watch as 410 Gone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trio
from kubernetes import config
from kubernetes.watch.watch import iter_resp_lines

from kvip.k8s import FINALIZER, IPPOOLS, VMNETCFGS, Body, Kube, KubeError, Resource
from tests.lab import objects
from tests.lab.apiserver import ApiServer
from tests.lab.fixtures_apiserver import _ensure_binaries, create_namespace
from tests.lab.k8s_crds import KUBEVIRT_CRDS, KVIP_CRDS, install_crds
from tests.sim.apidouble import ApiDouble

pytestmark = [pytest.mark.apiserver]

Outcome = tuple[str, Any]
#: (resource, from resourceVersion) -> the (type, name) events after it, or an error name.
WatchFn = Callable[[Resource, str], list[tuple[str, str]] | str]


def cfg_body(namespace: str, name: str, ip: str) -> Body:
    return {
        "apiVersion": VMNETCFGS.api_version,
        "kind": VMNETCFGS.kind,
        "metadata": {"name": name, "namespace": namespace, "finalizers": [FINALIZER]},
        "spec": {
            "vmname": name,
            "networkconfig": [
                {"networkname": "ns/net", "macaddress": "52:54:00:00:00:01", "ipaddress": ip}
            ],
        },
        "status": {"networkconfig": [{"networkname": "ns/net", "macaddress": "52:54:00:00:00:01",
                                      "status": "OK", "message": "from create"}]},
    }  # fmt: skip


def shape(body: Body) -> dict[str, Any]:
    """What the script compares of an object (not its resourceVersion or uid)."""
    meta = body["metadata"]
    return {
        "spec": body.get("spec"),
        "status": body.get("status"),
        "finalizers": meta.get("finalizers"),
        "deleting": bool(meta.get("deletionTimestamp")),
        "generation": meta.get("generation"),
        "labels": meta.get("labels"),
    }


def script(kube: Kube, ns: str, watch: WatchFn, compact: Callable[[], object]) -> list[Outcome]:
    """The calls, and what each did. resourceVersions are compared by how they
    move ("new" / "same"), as two servers never share their numbers."""
    out: list[Outcome] = []
    last = 0

    def call(label: str, fn: Callable[[], Any]) -> Any:
        nonlocal last
        try:
            result = fn()
        except KubeError as exc:
            out.append((label, f"{type(exc).__name__} {exc.status}"))
            return None
        if isinstance(result, dict) and "metadata" in result:
            version = int(result["metadata"]["resourceVersion"])
            moved = "new" if version > last else "same" if version == last else "older"
            last = max(last, version)
            out.append((label, (moved, shape(result))))
        else:
            out.append((label, result))
        return result

    def get(name: str) -> Body:
        body: Body = kube.get(VMNETCFGS, name, namespace=ns)
        return body

    _, start = kube.list(VMNETCFGS)
    last = int(start)
    a = call("create", lambda: kube.create(VMNETCFGS, cfg_body(ns, "a", "198.18.0.10")))
    call("create again", lambda: kube.create(VMNETCFGS, cfg_body(ns, "a", "198.18.0.11")))
    call("get", lambda: get("a"))
    changed = {**a, "spec": {**a["spec"], "vmname": "renamed"}}
    b = call("replace spec", lambda: kube.replace(VMNETCFGS, changed))
    call("replace stale", lambda: kube.replace(VMNETCFGS, {**changed, "spec": {"vmname": "x"}}))
    no_version = {**b, "metadata": {k: v for k, v in b["metadata"].items()
                                    if k != "resourceVersion"}}  # fmt: skip
    call("replace without resourceVersion", lambda: kube.replace(VMNETCFGS, no_version))
    call("replace unchanged", lambda: kube.replace(VMNETCFGS, get("a")))
    status = {"networkconfig": [{"networkname": "ns/net", "macaddress": "52:54:00:00:00:01",
                                 "status": "ERROR", "message": "written"}]}  # fmt: skip
    current = get("a")
    sneaky = {**current, "status": status, "spec": {**current["spec"], "vmname": "sneaky"},
              "metadata": {**current["metadata"], "labels": {"x": "y"}}}  # fmt: skip
    call("replace status (and spec, labels)", lambda: kube.replace(VMNETCFGS, sneaky, status=True))
    current = get("a")
    call("replace status stale", lambda: kube.replace(VMNETCFGS, {**b, "status": {}}, status=True))
    other = {**current, "status": {"networkconfig": []}, "metadata": {**current["metadata"],
             "annotations": {"note": "plain"}}}  # fmt: skip
    call("replace with a status (plain)", lambda: kube.replace(VMNETCFGS, other))
    call("replace status unchanged", lambda: kube.replace(VMNETCFGS, get("a"), status=True))
    version = get("a")["metadata"]["resourceVersion"]
    stale = {"metadata": {"resourceVersion": start}, "spec": {"vmname": "p"}}
    call("patch stale", lambda: kube.patch(VMNETCFGS, "a", stale, namespace=ns))
    fresh = {"metadata": {"resourceVersion": version, "annotations": {"note": None}},
             "spec": {"vmname": "patched"}}  # fmt: skip
    call("patch", lambda: kube.patch(VMNETCFGS, "a", fresh, namespace=ns))
    call("patch unchanged", lambda: kube.patch(VMNETCFGS, "a", {"spec": {"vmname": "patched"}},
                                               namespace=ns))  # fmt: skip
    call("patch status", lambda: kube.patch(VMNETCFGS, "a", {"status": {"networkconfig": []}},
                                            namespace=ns, status=True))  # fmt: skip
    call("patch missing", lambda: kube.patch(VMNETCFGS, "zz", {"spec": {}}, namespace=ns))
    call("delete (finalizer)", lambda: kube.delete(VMNETCFGS, "a", namespace=ns))
    call("get deleting", lambda: get("a"))
    call("delete again (deleting)", lambda: kube.delete(VMNETCFGS, "a", namespace=ns))
    deleting = get("a")
    more = {**deleting, "metadata": {**deleting["metadata"],
                                     "finalizers": [FINALIZER, "example.com/other"]}}  # fmt: skip
    call("add a finalizer while deleting", lambda: kube.replace(VMNETCFGS, more))
    call("spec change while deleting", lambda: kube.replace(
        VMNETCFGS, {**deleting, "spec": {**deleting["spec"], "vmname": "late"}}))  # fmt: skip
    version = get("a")["metadata"]["resourceVersion"]
    drop = {"metadata": {"finalizers": [], "resourceVersion": version}}
    call("drop the last finalizer", lambda: kube.patch(VMNETCFGS, "a", drop, namespace=ns))
    call("get deleted", lambda: get("a"))
    call("delete deleted", lambda: kube.delete(VMNETCFGS, "a", namespace=ns))
    plain = {**cfg_body(ns, "b", "198.18.0.12")}
    plain["metadata"] = {"name": "b", "namespace": ns}
    call("create without finalizer", lambda: kube.create(VMNETCFGS, plain))
    call("delete without finalizer", lambda: kube.delete(VMNETCFGS, "b", namespace=ns))
    call("create again after delete", lambda: kube.create(VMNETCFGS, plain))
    items, listed = kube.list(VMNETCFGS)
    names = sorted(i["metadata"]["name"] for i in items if i["metadata"]["namespace"] == ns)
    out.append(("list", (names, int(listed) >= last)))
    out.append(("watch from the start", watch(VMNETCFGS, start)))
    pool = objects.ippool(f"{ns}-pool", "ns/net", selector="sim-conformance=yes")
    call("create labelled pool", lambda: kube.create(IPPOOLS, pool))
    _, before = kube.list(IPPOOLS, label_selector="sim-conformance=yes")
    unlabel = {"metadata": {"labels": {"sim-conformance": "no"}}}
    call("unlabel pool", lambda: kube.patch(IPPOOLS, pool["metadata"]["name"], unlabel))
    selected, _ = kube.list(IPPOOLS, label_selector="sim-conformance=yes")
    out.append(("list by label", [i["metadata"]["name"] for i in selected]))
    out.append(("watch by label", watch(IPPOOLS, before)))
    call("delete pool", lambda: kube.delete(IPPOOLS, pool["metadata"]["name"]))
    compact()
    out.append(("watch from before a compaction", watch(VMNETCFGS, start)))
    _, now = kube.list(VMNETCFGS)
    out.append(("watch from after it", watch(VMNETCFGS, now)))
    return out


# -- the double -------------------------------------------------------------------------


def double_watch(double: ApiDouble, namespace: str | None, selector: str | None = None) -> WatchFn:
    def watch(resource: Resource, version: str) -> list[tuple[str, str]] | str:
        async def collect() -> list[tuple[str, str]] | str:
            events: list[tuple[str, str]] = []
            try:
                with trio.move_on_after(0.2):
                    async for kind, obj in double.watch(resource, version, selector_for(resource)):
                        if obj["metadata"].get("namespace") in (namespace, None):
                            events.append((kind, obj["metadata"]["name"]))
            except KubeError as exc:
                return f"{type(exc).__name__} {exc.status}"
            return events

        return trio.run(collect)

    def selector_for(resource: Resource) -> str | None:
        return selector if resource == IPPOOLS else None

    return watch


# -- the real API server ----------------------------------------------------------------


@pytest.fixture(scope="module")
def real() -> Iterator[tuple[ApiServer, Kube]]:
    _ensure_binaries(controller_manager=False)
    with ApiServer(watch_cache=False) as api:
        api_client = config.new_client_from_config(config_file=str(api.kubeconfig))  # type: ignore[no-untyped-call]
        install_crds(api_client, KVIP_CRDS, KUBEVIRT_CRDS)
        kube = Kube(api_client, request_timeout=10)
        yield api, kube
        kube.close()


def real_watch(kube: Kube, namespace: str, selector: str) -> WatchFn:
    def watch(resource: Resource, version: str) -> list[tuple[str, str]] | str:
        kwargs: dict[str, Any] = {"watch": True, "resource_version": version, "timeout_seconds": 1,
                                  "_preload_content": False}  # fmt: skip
        if resource == IPPOOLS:
            kwargs["label_selector"] = selector
        response = kube.custom.list_cluster_custom_object(
            resource.group, resource.version, resource.plural, **kwargs
        )
        events: list[tuple[str, str]] = []
        for line in iter_resp_lines(response):  # type: ignore[no-untyped-call]
            if not line:
                continue
            event = json.loads(line)
            obj = event["object"]
            if event["type"] == "ERROR":
                return {410: "Gone 410"}.get(obj.get("code"), f"ERROR {obj.get('code')}")
            if obj["metadata"].get("namespace") in (namespace, None):
                events.append((event["type"], obj["metadata"]["name"]))
        return events

    return watch


SELECTOR = "sim-conformance=yes"


def test_the_double_does_what_the_real_api_server_does(real: tuple[ApiServer, Kube]) -> None:
    api, kube = real
    namespace = create_namespace(kube.api_client, prefix="sim")
    expected = script(kube, namespace, real_watch(kube, namespace, SELECTOR), api.etcd_compact)
    double = ApiDouble()
    got = script(double, namespace, double_watch(double, namespace, SELECTOR), double.compact)
    assert [label for label, _ in got] == [label for label, _ in expected]
    differences = [
        f"{label}:\n  the double gave  {have!r}\n  the API server:  {want!r}"
        for (label, want), (_, have) in zip(expected, got, strict=True)
        if have != want
    ]
    assert not differences, "\n".join(differences)
