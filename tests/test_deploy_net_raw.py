"""deploy/components/net-raw: added to deploy/, kvip runs as root with NET_RAW
as its one capability in a namespace at the "privileged" Pod Security level;
the API server accepts it; and on a real kernel that security context opens
what dual-stack pools need CAP_NET_RAW for (the DHCPv6 packet socket, the
Router Advertisement socket) besides port 67, while the base's opens DHCPv6
on its UDP socket alone and is refused the raw one."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kvip.actors import open_dhcp_socket
from kvip.actors._dhcp6_socket import Dhcp6Sockets
from kvip.actors._router_adv import open_router_socket
from tests.lab.apiserver import ApiServer
from tests.lab.capabilities import CAP_NET_RAW
from tests.lab.deploy_manifests import (
    BASE,
    DEPLOY,
    NAMESPACE,
    KubectlMissing,
    Manifest,
    find,
    kubectl,
    kubectl_path,
    kustomize,
)
from tests.lab.dhcp6lab import enable_ipv6
from tests.lab.netlab import netlab, run_in

COMPONENT = DEPLOY / "components" / "net-raw"
_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38
_CAP_LAST = 40


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> list[Manifest]:
    """deploy/ with the component, as a user's kustomization would have it."""
    try:
        kubectl_path()
    except KubectlMissing as exc:
        pytest.skip(str(exc))
    directory = tmp_path_factory.mktemp("with-net-raw")
    (directory / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "resources": [os.path.relpath(DEPLOY, directory)],
                "components": [os.path.relpath(COMPONENT, directory)],
            }
        )
    )
    return kustomize(directory)


def _pod(objects: list[Manifest]) -> dict[str, Any]:
    spec: dict[str, Any] = find(objects, "Deployment", "kvip")["spec"]["template"]["spec"]
    return spec


def test_the_component_gives_root_net_raw_and_nothing_else(rendered: list[Manifest]) -> None:
    pod = _pod(rendered)
    assert pod["securityContext"]["runAsUser"] == 0
    assert pod["securityContext"]["runAsNonRoot"] is False
    [container] = pod["containers"]
    security = container["securityContext"]
    assert security["capabilities"] == {"drop": ["ALL"], "add": ["NET_RAW"]}
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["runAsNonRoot"] is False
    assert not security.get("privileged") and not pod.get("hostNetwork")
    # The rest of the pod is the base's: the sysctl, seccomp, probes.
    base = _pod(kustomize(BASE))
    assert pod["securityContext"]["sysctls"] == base["securityContext"]["sysctls"]
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["readinessProbe"] == base["containers"][0]["readinessProbe"]
    labels = find(rendered, "Namespace", NAMESPACE)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"
    assert labels["pod-security.kubernetes.io/audit"] == "baseline"
    # Without the component: restricted, no capability.
    base_labels = find(kustomize(BASE), "Namespace", NAMESPACE)["metadata"]["labels"]
    assert base_labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert base["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}


@pytest.mark.apiserver
def test_the_api_server_accepts_the_component(
    apiserver: ApiServer, kube_client: client.ApiClient, rendered: list[Manifest]
) -> None:
    try:
        client.CoreV1Api(kube_client).create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE))
        )
    except ApiException as exc:
        if exc.status != 409:
            raise
    objects = [o for o in rendered if o["kind"] in {"Namespace", "Deployment"}]
    result = kubectl(
        "apply", "--dry-run=server", "-f", "-",
        kubeconfig=apiserver.kubeconfig, stdin=yaml.safe_dump_all(objects),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "deployment.apps/kvip created (server dry run)" in result.stdout, result.stdout
    assert f"namespace/{NAMESPACE} configured (server dry run)" in result.stdout, result.stdout


# -- the security contexts, for real --------------------------------------------------


def _become(security: dict[str, Any], libc: ctypes.CDLL) -> None:
    """What the runtime makes of a container's security context, in this
    (child) process: root keeps exactly the added capabilities (bounding,
    permitted, effective); another uid keeps none; no_new_privs either way."""
    uid, gid = security["uid"], security["gid"]
    if uid == 0:
        keep = {CAP_NET_RAW} if "NET_RAW" in security["add"] else set()
        for cap in range(_CAP_LAST + 1):
            if cap not in keep:
                libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)
        mask = sum(1 << cap for cap in keep)
        header = (ctypes.c_uint32 * 2)(0x20080522, 0)
        data = (ctypes.c_uint32 * 6)(
            mask & 0xFFFFFFFF, mask & 0xFFFFFFFF, 0, mask >> 32, mask >> 32, 0
        )
        if libc.capset(header, data) != 0:
            raise OSError(ctypes.get_errno(), "capset")
    else:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)  # drops every capability (no SECBIT_KEEP_CAPS)
    libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def _what_opens(netns: str, security: dict[str, Any]) -> dict[str, str]:
    """In a child process: enter `netns`, take on `security`, and open each of
    a dual-stack pool's sockets on eth1. Returns what became of each."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        os.close(read)
        outcome: dict[str, str] = {}
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
            if libc.setns(fd, 0x40000000) != 0:
                raise OSError(ctypes.get_errno(), "setns")
            _become(security, libc)
            outcome["capabilities"] = _effective_capabilities()
            open_dhcp_socket("eth1").close()
            outcome["dhcp"] = "ok"
            sockets = Dhcp6Sockets("eth1")
            outcome["dhcp6"] = sockets.mode.value
            sockets.close()
            try:
                open_router_socket("eth1")[0].close()
                outcome["router_advertisements"] = "ok"
            except PermissionError as exc:
                outcome["router_advertisements"] = str(exc)
        except BaseException as exc:
            outcome["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            os.write(write, json.dumps(outcome).encode())
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        found: dict[str, str] = json.loads(pipe.read())
    os.waitpid(pid, 0)
    return found


def _effective_capabilities() -> str:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return line.split()[1]
    return "?"


def _security(pod: dict[str, Any]) -> dict[str, Any]:
    container = pod["containers"][0]["securityContext"]
    return {
        "uid": pod["securityContext"]["runAsUser"],
        "gid": pod["securityContext"]["runAsGroup"],
        "add": container["capabilities"].get("add", []),
    }


@contextlib.contextmanager
def _server_namespace(pod: dict[str, Any]) -> Iterator[str]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 for a network namespace")
    with netlab("kvnr", veth=True) as lab:
        enable_ipv6(lab.server, "eth1")
        for sysctl in pod["securityContext"]["sysctls"]:
            run_in(lab.server, ["sysctl", "-qw", f"{sysctl['name']}={sysctl['value']}"])
        yield lab.server


@pytest.mark.netns
def test_only_the_components_security_context_reads_frames_and_advertises(
    rendered: list[Manifest],
) -> None:
    with_net_raw = _pod(rendered)
    base = _pod(kustomize(BASE))
    with _server_namespace(base) as netns:
        opened = _what_opens(netns, _security(with_net_raw))
        assert opened == {
            "capabilities": f"{1 << CAP_NET_RAW:016x}",
            "dhcp": "ok",
            "dhcp6": "packet",
            "router_advertisements": "ok",
        }
        opened = _what_opens(netns, _security(base))
        assert opened["capabilities"] == f"{0:016x}" and opened["dhcp"] == "ok"
        assert opened["dhcp6"] == "udp"
        assert "Operation not permitted" in opened["router_advertisements"]
