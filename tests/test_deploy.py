"""deploy/: the kustomize base and overlays render, a real API server accepts
them, the replicas never all go down and never share an address, and the
pod's security context is enough to serve DHCP on port 67."""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kvip.actors import open_dhcp_socket
from kvip.serving import parse_ippool
from tests.lab.apiserver import ApiServer
from tests.lab.deploy_manifests import (
    BASE,
    DEPLOY,
    EXAMPLES,
    NAMESPACE,
    OVERLAY,
    SINGLE_REPLICA,
    KubectlMissing,
    Manifest,
    attachments,
    find,
    kubectl,
    kubectl_path,
    kustomize,
    load,
    rbac_rules,
    readme_rbac_table,
    static_addresses,
    whereabouts_range,
)
from tests.lab.netlab import netlab, run_in


@pytest.fixture(scope="module")
def kubectl_ok() -> None:
    try:
        kubectl_path()
    except KubectlMissing as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def kvip_namespace(apiserver: ApiServer, kube_client: client.ApiClient) -> str:
    """kvip-system exists for real: a server-side dry run does not create the
    Namespace, so the namespaced objects of the same run would be refused."""
    try:
        client.CoreV1Api(kube_client).create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE))
        )
    except ApiException as exc:
        if exc.status != 409:
            raise
    return NAMESPACE


def dry_run(api: ApiServer, *args: str, stdin: str | None = None) -> str:
    result = kubectl("apply", "--dry-run=server", *args, kubeconfig=api.kubeconfig, stdin=stdin)
    assert result.returncode == 0, result.stderr
    return result.stdout


def dry_run_kustomization(api: ApiServer, directory: Path) -> str:
    """`kubectl apply -k directory --dry-run=server`, on the lab's API server.

    That server is Kubernetes 1.20, which serves PodDisruptionBudget only as
    policy/v1beta1 (policy/v1 came in 1.21, and deploy/ needs >= 1.22 for its
    sysctl anyway). The fields deploy/ uses, minAvailable and selector, are the
    same in both versions, so there the PDB is sent as v1beta1; on a server
    that has policy/v1 it is sent as it is."""
    objects = kustomize(directory)
    versions = kubectl("api-versions", kubeconfig=api.kubeconfig)
    assert versions.returncode == 0, versions.stderr
    if "policy/v1" not in versions.stdout.split():
        for o in objects:
            if o["kind"] == "PodDisruptionBudget":
                assert o["apiVersion"] == "policy/v1"
                assert set(o["spec"]) <= {"minAvailable", "maxUnavailable", "selector"}
                o["apiVersion"] = "policy/v1beta1"
    return dry_run(api, "-f", "-", stdin=yaml.safe_dump_all(objects))


@pytest.mark.apiserver
def test_the_api_server_accepts_everything_in_deploy(
    kubectl_ok: None, apiserver: ApiServer, crds: list[str], kvip_namespace: str
) -> None:
    out = dry_run_kustomization(apiserver, DEPLOY)
    for applied in (
        "customresourcedefinition.apiextensions.k8s.io/ippools.kubevirtiphelper.k8s.binbash.org",
        "customresourcedefinition.apiextensions.k8s.io/virtualmachinenetworkconfigs.",
        "namespace/kvip-system",
        "serviceaccount/kvip",
        "clusterrole.rbac.authorization.k8s.io/kvip",
        "clusterrolebinding.rbac.authorization.k8s.io/kvip",
        "role.rbac.authorization.k8s.io/kvip-leader-election",
        "rolebinding.rbac.authorization.k8s.io/kvip-leader-election",
        "deployment.apps/kvip",
        "poddisruptionbudget.policy/kvip",
        "service/kvip-metrics",
    ):
        assert applied in out, out
    assert out.count("(server dry run)") == 11
    # The example pool fits the CRD's schema, and so does the overlay's.
    dry_run(apiserver, "-f", str(EXAMPLES / "ippool.yaml"))
    dry_run(apiserver, "-f", str(EXAMPLES / "ippool-dualstack.yaml"))
    dry_run(apiserver, "-f", str(EXAMPLES / "ippool-ipv6only.yaml"))
    dry_run(apiserver, "-f", str(OVERLAY / "ippool.yaml"))


@pytest.mark.apiserver
def test_the_dry_run_does_validate(
    kubectl_ok: None, apiserver: ApiServer, crds: list[str], kvip_namespace: str
) -> None:
    """The check above can fail: the same dry run refuses a broken Deployment."""
    deployment = find(kustomize(BASE), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = 70000
    result = kubectl(
        "apply", "--dry-run=server", "-f", "-",
        kubeconfig=apiserver.kubeconfig, stdin=yaml.safe_dump(deployment),
    )  # fmt: skip
    assert result.returncode != 0
    assert "containerPort" in result.stderr


@pytest.mark.apiserver
def test_the_overlay_points_kvip_at_its_own_network(
    kubectl_ok: None, apiserver: ApiServer, crds: list[str], kvip_namespace: str
) -> None:
    objects = kustomize(OVERLAY)
    nad = find(objects, "NetworkAttachmentDefinition")
    assert nad["metadata"] == {"name": "kvip-vlan100", "namespace": NAMESPACE}
    assert whereabouts_range(nad) == (
        ipaddress.IPv4Network("10.100.0.0/24"),
        ipaddress.IPv4Address("10.100.0.2"),
        ipaddress.IPv4Address("10.100.0.9"),
    )
    deployment = find(objects, "Deployment", "kvip")
    assert attachments(deployment) == [
        {"name": "kvip-vlan100", "namespace": NAMESPACE, "interface": "eth1"}
    ]
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.example.com/kvip:0.1.0"
    pool = load(OVERLAY / "ippool.yaml")[0]
    assert_address_plan(pool, nad, deployment)
    # Nothing of the base is lost on the way.
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted(
        ["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
         "RoleBinding", "Deployment", "PodDisruptionBudget", "Service",
         "NetworkAttachmentDefinition"]
    )  # fmt: skip
    out = dry_run_kustomization(apiserver, OVERLAY)
    assert "networkattachmentdefinition.k8s.cni.cncf.io/kvip-vlan100 created" in out


def _pool_range(pool: Manifest) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    config = pool["spec"]["ipv4config"]["pool"]
    return ipaddress.IPv4Address(config["start"]), ipaddress.IPv4Address(config["end"])


def assert_address_plan(pool: Manifest, nad: Manifest, deployment: Manifest) -> None:
    """deploy/README.md's address plan: each replica gets an address of its own
    on eth1, with the pool's prefix, inside the subnet and outside the addresses
    the pool hands out (and apart from the router and DNS servers it announces);
    serverip is one of the replicas' addresses; there are enough for a rolling
    update."""
    config = pool["spec"]["ipv4config"]
    subnet = ipaddress.IPv4Network(config["subnet"])
    assert pool["spec"]["bindinterface"] == "eth1"
    network, first, last = whereabouts_range(nad)
    # eth1 gets the range's prefix: the pool's subnet is on-link, so unicast
    # answers to renewing clients leave by eth1.
    assert network == subnet
    assert first <= last and first in subnet and last in subnet
    assert first != subnet.network_address and last != subnet.broadcast_address
    start, end = _pool_range(pool)
    assert last < start or end < first, "kvip's range overlaps the pool's start..end"
    others = [config["router"], *config.get("dns", [])]
    assert not [a for a in others if first <= ipaddress.IPv4Address(a) <= last]
    # kvip never hands out serverip or the router; a DNS server inside
    # start..end must be excluded, or a VM could get its address.
    excluded = set(config["pool"].get("exclude", []))
    assert [a for a in config.get("dns", []) if a not in excluded
            and start <= ipaddress.IPv4Address(a) <= end] == []  # fmt: skip
    assert first <= ipaddress.IPv4Address(config["serverip"]) <= last
    rolling = deployment["spec"]["strategy"]["rollingUpdate"]
    assert int(last) - int(first) + 1 >= deployment["spec"]["replicas"] + rolling["maxSurge"]


def test_the_examples_agree_with_the_base(kubectl_ok: None) -> None:
    nad = find(load(EXAMPLES / "nad.yaml"), "NetworkAttachmentDefinition")
    deployment = find(kustomize(BASE), "Deployment")
    [selected] = attachments(deployment)
    assert (selected["name"], selected["namespace"]) == (
        nad["metadata"]["name"],
        nad["metadata"]["namespace"],
    )
    assert_address_plan(load(EXAMPLES / "ippool.yaml")[0], nad, deployment)
    # The dual-stack example is the same pool with an IPv6 half kvip serves.
    ipv4_only, dual_stack = (
        load(EXAMPLES / "ippool.yaml")[0],
        load(EXAMPLES / "ippool-dualstack.yaml")[0],
    )
    assert {**dual_stack["spec"], "ipv6config": None} == {**ipv4_only["spec"], "ipv6config": None}
    assert parse_ippool(dual_stack).v6 is not None
    # The IPv6-only one is the dual-stack pool without its IPv4 half.
    ipv6_only = load(EXAMPLES / "ippool-ipv6only.yaml")[0]
    assert ipv6_only["spec"] == {k: v for k, v in dual_stack["spec"].items() if k != "ipv4config"}
    assert parse_ippool(ipv6_only).spec is None


def test_the_plan_check_refuses_a_range_inside_the_pool(kubectl_ok: None) -> None:
    """assert_address_plan can fail: kvip's range moved into start..end."""
    nad = find(load(EXAMPLES / "nad.yaml"), "NetworkAttachmentDefinition")
    pool = load(EXAMPLES / "ippool.yaml")[0]
    deployment = find(kustomize(BASE), "Deployment")
    config = json.loads(nad["spec"]["config"])
    config["ipam"]["range_end"] = str(_pool_range(pool)[0])
    nad["spec"]["config"] = json.dumps(config)
    with pytest.raises(AssertionError, match="overlaps the pool"):
        assert_address_plan(pool, nad, deployment)


def _pod_labels(deployment: Manifest) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"] == {"matchLabels": labels}
    return labels


def test_two_replicas_never_go_down_together(kubectl_ok: None) -> None:
    """Every replica serves: two of them, a rolling update that starts a new
    one (Ready = serving) before it stops an old one, a PodDisruptionBudget
    that never lets an eviction take the last, and a preference (not a rule,
    so a 2-node cluster can still surge) for different nodes."""
    objects = kustomize(BASE)
    deployment = find(objects, "Deployment", "kvip")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    labels = _pod_labels(deployment)
    pdb = find(objects, "PodDisruptionBudget", "kvip")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["metadata"]["namespace"] == NAMESPACE
    assert pdb["spec"] == {"minAvailable": 1, "selector": {"matchLabels": labels}}
    affinity = deployment["spec"]["template"]["spec"]["affinity"]
    assert list(affinity) == ["podAntiAffinity"]
    [preferred] = affinity["podAntiAffinity"].pop("preferredDuringSchedulingIgnoredDuringExecution")
    assert affinity["podAntiAffinity"] == {}, "required anti-affinity would block the surge pod"
    assert preferred["podAffinityTerm"] == {
        "topologyKey": "kubernetes.io/hostname",
        "labelSelector": {"matchLabels": labels},
    }


def test_the_single_replica_overlay_keeps_the_static_address(kubectl_ok: None) -> None:
    """The documented fallback: one replica with the NAD's static address, which
    is the example pool's serverip; no surge pod (it would hold the same
    address) and no PodDisruptionBudget (minAvailable 1 of 1 blocks drains)."""
    objects = kustomize(SINGLE_REPLICA)
    deployment = find(objects, "Deployment", "kvip")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    assert not [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    nad = find(objects, "NetworkAttachmentDefinition")
    [selected] = attachments(deployment)
    assert selected["name"] == nad["metadata"]["name"]
    [address] = static_addresses(nad)
    iface = ipaddress.IPv4Interface(address)
    pool = load(EXAMPLES / "ippool.yaml")[0]
    config = pool["spec"]["ipv4config"]
    assert ipaddress.IPv4Address(config["serverip"]) == iface.ip
    assert iface.network == ipaddress.IPv4Network(config["subnet"])
    start, end = _pool_range(pool)
    assert not start <= iface.ip <= end
    # Everything else is the base's.
    base = {(o["kind"], o["metadata"]["name"]): o for o in kustomize(BASE)}
    del base[("PodDisruptionBudget", "kvip")]
    for o in objects:
        if o["kind"] not in ("Deployment", "NetworkAttachmentDefinition"):
            assert base.pop((o["kind"], o["metadata"]["name"])) == o
    assert list(base) == [("Deployment", "kvip")]


@pytest.mark.apiserver
def test_the_api_server_accepts_the_single_replica_overlay(
    kubectl_ok: None, apiserver: ApiServer, crds: list[str], kvip_namespace: str
) -> None:
    out = dry_run_kustomization(apiserver, SINGLE_REPLICA)
    assert "networkattachmentdefinition.k8s.cni.cncf.io/kvip-net created" in out
    assert "poddisruptionbudget" not in out


def test_the_pod_is_unprivileged_and_probed(kubectl_ok: None) -> None:
    deployment = find(kustomize(BASE), "Deployment")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "kvip"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert not pod.get("hostNetwork")
    [container] = pod["containers"]
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert not security.get("privileged")
    assert [port["containerPort"] for port in container["ports"] if port["name"] == "metrics"] == [
        8080
    ]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    env = {e["name"]: e for e in container["env"]}
    assert env["METRICS_PORT"]["value"] == "8080"
    # The downward API: the Lease's namespace, and the replica's identity
    # (Lease holder, heartbeat Lease name).
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert "LOGLEVEL" in env
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]


def test_leases_are_kvips_own_namespace_only(kubectl_ok: None) -> None:
    """The leader-election Lease and the replicas' heartbeat Leases: a Role in
    kvip-system (never cluster-wide), bound to kvip's ServiceAccount."""
    objects = kustomize(BASE)
    leases = {r for r in rbac_rules(objects) if r[2] == "leases"}
    assert leases == {
        ("Role", "coordination.k8s.io", "leases",
         frozenset({"get", "list", "watch", "create", "update", "delete"})),
    }  # fmt: skip
    role = find(objects, "Role", "kvip-leader-election")
    assert role["metadata"]["namespace"] == NAMESPACE
    binding = find(objects, "RoleBinding", "kvip-leader-election")
    assert binding["roleRef"]["name"] == "kvip-leader-election"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "kvip", "namespace": NAMESPACE}
    ]


def test_the_readme_states_the_rbac_that_deploy_grants(kubectl_ok: None) -> None:
    assert readme_rbac_table() == rbac_rules(kustomize(BASE))


# -- the security context, for real ------------------------------------------------

_PR_SET_NO_NEW_PRIVS = 38


def _effective_capabilities() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    raise AssertionError("no CapEff in /proc/self/status")


def _open_as(netns: str, *, uid: int, gid: int) -> str:
    """In a child process: enter `netns`, become uid/gid with no capabilities
    and no_new_privs (what the kubelet gives the container), then open a pool
    socket on eth1 as kvip does. Returns "ok" or the error."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        os.close(read)
        outcome = "child failed"
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
            if libc.setns(fd, 0x40000000) != 0:
                raise OSError(ctypes.get_errno(), "setns")
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)  # drops every capability (no SECBIT_KEEP_CAPS)
            libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
            if _effective_capabilities() != 0:
                raise AssertionError("capabilities left after setresuid")
            open_dhcp_socket("eth1").close()
            outcome = "ok"
        except BaseException as exc:
            outcome = f"{type(exc).__name__}: {exc}"
        finally:
            os.write(write, outcome.encode())
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        outcome = pipe.read()
    os.waitpid(pid, 0)
    return outcome


@contextlib.contextmanager
def _server_namespace() -> Iterator[str]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 for a network namespace")
    with netlab("kvcap", veth=True) as lab:
        yield lab.server


@pytest.mark.netns
def test_the_security_context_is_enough_to_serve_dhcp(kubectl_ok: None) -> None:
    """kvip binds UDP 67 with SO_BINDTODEVICE and SO_BROADCAST as uid 65532
    with no capability at all once the pod's sysctls are set; without them the
    bind is refused, so the sysctl (not some capability) is what makes it work."""
    pod = find(kustomize(BASE), "Deployment")["spec"]["template"]["spec"]
    uid, gid = pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]
    with _server_namespace() as netns:
        refused = _open_as(netns, uid=uid, gid=gid)
        assert "Permission denied" in refused, refused
        for sysctl in pod["securityContext"]["sysctls"]:
            run_in(netns, ["sysctl", "-qw", f"{sysctl['name']}={sysctl['value']}"])
        assert _open_as(netns, uid=uid, gid=gid) == "ok"
