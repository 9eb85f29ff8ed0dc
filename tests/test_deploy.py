"""deploy/: the kustomize base and overlay render, a real API server accepts
them, and the pod's security context is enough to serve DHCP on port 67."""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kvip.actors import open_dhcp_socket
from tests.lab.apiserver import ApiServer
from tests.lab.deploy_manifests import (
    BASE,
    DEPLOY,
    EXAMPLES,
    NAMESPACE,
    OVERLAY,
    KubectlMissing,
    Manifest,
    attachments,
    find,
    kubectl,
    kubectl_path,
    kustomize,
    load,
    static_addresses,
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


@pytest.mark.apiserver
def test_the_api_server_accepts_everything_in_deploy(
    kubectl_ok: None, apiserver: ApiServer, crds: list[str], kvip_namespace: str
) -> None:
    out = dry_run(apiserver, "-k", str(DEPLOY))
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
        "service/kvip-metrics",
    ):
        assert applied in out, out
    assert out.count("(server dry run)") == 10
    # The example pool fits the CRD's schema, and so does the overlay's.
    dry_run(apiserver, "-f", str(EXAMPLES / "ippool.yaml"))
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
    assert static_addresses(nad) == ["10.100.0.2/24"]
    deployment = find(objects, "Deployment", "kvip")
    assert attachments(deployment) == [
        {"name": "kvip-vlan100", "namespace": NAMESPACE, "interface": "eth1"}
    ]
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.example.com/kvip:0.1.0"
    pool = load(OVERLAY / "ippool.yaml")[0]
    assert_pool_matches_nad(pool, nad)
    # Nothing of the base is lost on the way.
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted(
        ["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
         "RoleBinding", "Deployment", "Service", "NetworkAttachmentDefinition"]
    )  # fmt: skip
    out = dry_run(apiserver, "-k", str(OVERLAY))
    assert "networkattachmentdefinition.k8s.cni.cncf.io/kvip-vlan100 created" in out


def assert_pool_matches_nad(pool: Manifest, nad: Manifest) -> None:
    """The pool answers as the address the NAD gives eth1, inside its subnet."""
    [address] = static_addresses(nad)
    iface = ipaddress.IPv4Interface(address)
    config = pool["spec"]["ipv4config"]
    assert pool["spec"]["bindinterface"] == "eth1"
    assert ipaddress.IPv4Address(config["serverip"]) == iface.ip
    assert iface.ip in ipaddress.IPv4Network(config["subnet"])


def test_the_examples_agree_with_the_base(kubectl_ok: None) -> None:
    nad = find(load(EXAMPLES / "nad.yaml"), "NetworkAttachmentDefinition")
    deployment = find(kustomize(BASE), "Deployment")
    [selected] = attachments(deployment)
    assert (selected["name"], selected["namespace"]) == (
        nad["metadata"]["name"],
        nad["metadata"]["namespace"],
    )
    assert_pool_matches_nad(load(EXAMPLES / "ippool.yaml")[0], nad)


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
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert "LOGLEVEL" in env
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]


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
