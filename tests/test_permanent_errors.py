"""A write the API server refuses for good (403, 422) is reported once, in the
vmnetcfg status and a Warning Event, and retried with a longer, capped backoff:
not logged and retried at the 30 s cap forever."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from kvip.actors._workqueue import WorkQueue
from kvip.k8s import VMNETCFGS, Invalid
from tests.lab.apiserver_pki import write_kubeconfig
from tests.lab.deploy_manifests import BASE
from tests.lab.e2e_world import World
from tests.lab.kvip_rig import RunningKvip, unique, wait_for
from tests.lab.objects import CFGS, FINALIZER, GROUP


def test_a_permanent_failure_backs_off_up_to_its_own_cap_and_never_overflows() -> None:
    queue = WorkQueue(base_delay=0.2, max_delay=30.0, permanent_max_delay=300.0)
    delays = []
    for _ in range(2000):  # a week of retries at the cap; 0.2 * 2**2000 overflows a float
        queue.add("ns/vm")
        assert queue.pending("ns/vm")
        delays.append(queue.done("ns/vm", failed=True, permanent=True))
    assert delays[:3] == [0.2, 0.4, 0.8]
    assert max(d for d in delays if d is not None) == 300.0 == delays[-1]
    # A temporary failure keeps the short cap; a success resets the backoff.
    assert queue.done("ns/vm", failed=True) == 30.0
    assert queue.done("ns/vm") is None
    assert queue.done("ns/vm", failed=True) == 0.2


def events(w: World, name: str, reason: str) -> list[Any]:
    core: Any = client.CoreV1Api(w.custom.api_client)
    found = core.list_namespaced_event(w.namespace, field_selector=f"involvedObject.name={name}")
    return [e for e in found.items if e.reason == reason]


@contextlib.contextmanager
def kvip_that_may_not_write_vmnetcfgs(w: World, tmp_path: Path) -> Iterator[RunningKvip]:
    """kvip as a ServiceAccount with deploy/'s ClusterRole, less the right to write
    vmnetcfgs: the API server's RBAC answers every write with 403 Forbidden."""
    core: Any = client.CoreV1Api(w.custom.api_client)
    rbac: Any = client.RbacAuthorizationV1Api(w.custom.api_client)
    [role] = [d for d in yaml.safe_load_all((BASE / "rbac.yaml").read_text())
              if d["kind"] == "ClusterRole"]  # fmt: skip
    for rule in role["rules"]:
        if rule["resources"] == [CFGS]:
            rule["verbs"] = ["get", "list", "watch"]
    name = unique("kvip-read-only")
    role["metadata"] = {"name": name}
    core.create_namespaced_service_account(w.namespace, {"metadata": {"name": "kvip"}})
    rbac.create_cluster_role(role)
    subject = {"kind": "ServiceAccount", "name": "kvip", "namespace": w.namespace}
    binding = {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [subject],
    }
    rbac.create_cluster_role_binding(binding)
    try:
        request = {"spec": {"audiences": [], "expirationSeconds": 3600}}
        token = core.create_namespaced_service_account_token("kvip", w.namespace, request)
        kubeconfig = tmp_path / "kubeconfig"
        write_kubeconfig(kubeconfig, url=w.api.url, ca_file=w.api.ca_file,
                         token=str(token.status.token))  # fmt: skip
        with RunningKvip(kubeconfig, selector=w.selector, netns=w.lab.server) as kvip:
            yield kvip
    finally:
        rbac.delete_cluster_role_binding(name)
        rbac.delete_cluster_role(name)


def allow_vmnetcfg_writes(w: World) -> None:
    rbac: Any = client.RbacAuthorizationV1Api(w.custom.api_client)
    rule = {"apiGroups": [GROUP], "resources": [CFGS],
            "verbs": ["create", "update", "patch", "delete"]}  # fmt: skip
    rbac.create_namespaced_role(w.namespace, {"metadata": {"name": "write"}, "rules": [rule]})
    subject = {"kind": "ServiceAccount", "name": "kvip", "namespace": w.namespace}
    binding = {
        "metadata": {"name": "write"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "write"},
        "subjects": [subject],
    }
    rbac.create_namespaced_role_binding(w.namespace, binding)


@pytest.mark.netns
@pytest.mark.apiserver
def test_a_refused_vmnetcfg_create_is_one_warning_event_and_no_held_address(
    world: World, tmp_path: Path
) -> None:
    """Before the fix every retry (at most 30 s apart, for ever) logged a warning and
    nothing told the operator; now one Warning Event, however many retries."""
    w = world
    pool = w.create_pool(w.net("net-a"))
    with kvip_that_may_not_write_vmnetcfgs(w, tmp_path) as kvip:
        assert kvip.controller is not None
        kube = kvip.controller.kube
        create = kube.create
        attempts: dict[str, int] = {}

        def counting(resource: Any, body: Any) -> Any:
            if resource == VMNETCFGS:
                name = body["metadata"]["name"]
                attempts[name] = attempts.get(name, 0) + 1
            return create(resource, body)

        kube.create = counting  # type: ignore[method-assign]
        w.create_vm("vm", [("nic", "net-a", "52:54:00:00:50:01")])
        wait_for(lambda: attempts.get("vm", 0) >= 4, what="four refused creates")
        # Events are written in order: once the later VM's is there, all of vm's are.
        w.create_vm("later", [("nic", "net-a", "52:54:00:00:50:02")])
        wait_for(lambda: events(w, "later", "RecordRefused"), what="the later VM's event")
        [event] = events(w, "vm", "RecordRefused")
        assert event.type == "Warning" and event.count == 1
        assert "403" in event.message and "forbidden" in event.message
        # Refused: the claim is given back, nothing is held for an unrecorded NIC.
        assert kvip.pool_state(pool).used == 0
        # Allowed: the next change goes through at once (no waiting out the backoff).
        # The later VM goes first, so that it cannot take the lowest address.
        w.delete_vm("later")
        controller = kvip.controller
        wait_for(lambda: f"{w.namespace}/later" not in controller.vms, what="later gone")
        allow_vmnetcfg_writes(w)
        w.patch_vm("vm", {"metadata": {"labels": {"retry": "now"}}})
        assert w.ips("vm") == {"52:54:00:00:50:01": "198.18.0.10"}


@pytest.mark.netns
@pytest.mark.apiserver
def test_a_refused_removal_of_a_deleted_vms_vmnetcfg_is_told_on_the_vmnetcfg(
    world: World, tmp_path: Path
) -> None:
    """The VM is gone, so the Event goes on the vmnetcfg kvip may not remove; the
    VM's address is free at once all the same."""
    w = world
    pool = w.create_pool(w.net("net-a"))
    mac = "52:54:00:00:52:01"
    cfg = {
        "apiVersion": f"{GROUP}/v1",
        "kind": "VirtualMachineNetworkConfig",
        "metadata": {"name": "gone", "namespace": w.namespace, "finalizers": [FINALIZER]},
        "spec": {"vmname": "gone", "networkconfig": [
            {"networkname": w.net("net-a"), "macaddress": mac, "ipaddress": "198.18.0.20"}]},
    }  # fmt: skip
    w.custom.create_namespaced_custom_object(GROUP, "v1", w.namespace, CFGS, cfg)
    w.create_vm("gone", [("nic", "net-a", mac)])
    with kvip_that_may_not_write_vmnetcfgs(w, tmp_path) as kvip:
        assert kvip.controller is not None
        kube = kvip.controller.kube
        patch = kube.patch
        patches: list[str] = []

        def counting(resource: Any, name: str, body: Any, **kw: Any) -> Any:
            patches.append(name)
            return patch(resource, name, body, **kw)

        kube.patch = counting  # type: ignore[method-assign,assignment]
        wait_for(lambda: kvip.pool_state(pool).used == 1, what="the recorded address restored")
        w.delete_vm("gone")
        wait_for(lambda: kvip.pool_state(pool).used == 0, what="the address released")
        wait_for(lambda: patches.count("gone") >= 4, what="four refused finalizer removals")
        # Events are written in order: once the later VM's is there, all of gone's are.
        w.create_vm("later", [("nic", "net-a", "52:54:00:00:52:02")])
        wait_for(lambda: events(w, "later", "RecordRefused"), what="the later VM's event")
        found = events(w, "gone", "RecordRefused")
        [event] = [e for e in found if e.involved_object.kind == "VirtualMachineNetworkConfig"
                   and "cannot patch" in e.message]  # fmt: skip
        assert "403" in event.message and event.type == "Warning" and event.count == 1
        assert FINALIZER in (w.cfg("gone") or {})["metadata"]["finalizers"]


@pytest.mark.netns
@pytest.mark.apiserver
def test_a_refused_vmnetcfg_update_shows_in_its_status(world: World) -> None:
    """The spec update is refused (a 422 injected into the client: the local API
    server has no admission policy that refuses it); the status subresource is
    still writable and says why the new NIC has no address."""
    w = world
    w.create_pool(w.net("net-a"))
    first, second = "52:54:00:00:51:01", "52:54:00:00:51:02"
    with w.kvip() as kvip:
        w.create_vm("vm", [("nic", "net-a", first)])
        assert w.ips("vm") == {first: "198.18.0.10"}
        assert kvip.controller is not None
        kube = kvip.controller.kube
        replace = kube.replace
        refused: list[str] = []

        def refusing(resource: Any, body: Any, *, status: bool = False) -> Any:
            if resource == VMNETCFGS and not status:
                refused.append(body["metadata"]["name"])
                raise Invalid("422: spec.networkconfig: refused by the test's policy")
            return replace(resource, body, status=status)

        kube.replace = refusing  # type: ignore[method-assign]
        w.patch_vm("vm", {"spec": _two_nics(w, first, second)})

        def refused_status() -> list[dict[str, Any]] | None:
            status = ((w.cfg("vm") or {}).get("status") or {}).get("networkconfig") or []
            found = [e for e in status if e["macaddress"] == second and e["status"] == "ERROR"]
            return found or None

        [entry] = wait_for(refused_status, what="the refusal in the vmnetcfg status")
        assert "refused" in entry["message"] and "policy" in entry["message"]
        wait_for(lambda: len(refused) >= 4, what="four refused updates")
        # Events are written in order: once the later VM's is there, all of vm's are.
        # It gets .11: the refused NIC's claim was given back.
        w.create_vm("later", [("nic", "net-a", "52:54:00:00:51:03")])
        assert w.ips("later") == {"52:54:00:00:51:03": "198.18.0.11"}
        wait_for(lambda: events(w, "later", "Allocated"), what="the later VM's event")
        [event] = events(w, "vm", "RecordRefused")
        assert event.type == "Warning" and event.count == 1
        kube.replace = replace  # type: ignore[method-assign]
        w.patch_vm("vm", {"metadata": {"labels": {"retry": "now"}}})
        assert w.ips("vm", count=2) == {first: "198.18.0.10", second: "198.18.0.12"}


def _two_nics(w: World, first: str, second: str) -> dict[str, Any]:
    vm = w.custom.get_namespaced_custom_object("kubevirt.io", "v1", w.namespace,
                                               "virtualmachines", "vm")  # fmt: skip
    spec: dict[str, Any] = vm["spec"]
    template = spec["template"]["spec"]
    template["domain"]["devices"]["interfaces"].append(
        {"name": "nic2", "bridge": {}, "macAddress": second}
    )
    template["networks"].append({"name": "nic2", "multus": {"networkName": "net-a"}})
    return spec
