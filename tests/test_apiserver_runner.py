"""The local API server runner (tests/lab/apiserver.py) itself: it listens on
127.0.0.1 only, survives restarts with its data, compaction produces 410 Gone,
the controller manager collects garbage, and nothing is left behind."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.lab.apiserver import ApiServer, BinaryMissingError
from tests.lab.fixtures_apiserver import create_namespace, new_client

pytestmark = pytest.mark.apiserver


def _listening_ports(pid: int) -> set[tuple[str, int]]:
    """(address, port) of the TCP sockets `pid` listens on, from /proc."""
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = set()
    for table in ("tcp", "tcp6"):
        lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            address, port = local.split(":")
            if table == "tcp":
                octets = bytes.fromhex(address)[::-1]
                found.add((".".join(str(b) for b in octets), int(port, 16)))
            else:
                found.add((address, int(port, 16)))
    return found


@pytest.fixture(scope="module")
def private_apiserver(apiserver: ApiServer) -> Iterator[ApiServer]:
    """An API server of this module's own, for tests that restart or compact,
    without the watch cache so old resource versions reach etcd. (Depends on
    `apiserver` only for its skip-or-build logic.)"""
    with ApiServer(watch_cache=False) as api:
        yield api


def _assert_loopback_only(api: ApiServer) -> None:
    for name, pid in api.pids().items():
        addresses = {address for address, _ in _listening_ports(pid)}
        assert addresses <= {"127.0.0.1"}, (name, addresses)


def test_every_process_listens_on_loopback_only(apiserver: ApiServer) -> None:
    pids = apiserver.pids()
    assert set(pids) == {"etcd", "kube-apiserver"}
    for name, pid in pids.items():
        assert _listening_ports(pid), f"{name} listens nowhere?"
    _assert_loopback_only(apiserver)


def test_kubeconfig_gives_admin_access(apiserver: ApiServer) -> None:
    with new_client(apiserver) as api_client:
        review = client.AuthorizationV1Api(api_client).create_self_subject_access_review(
            client.V1SelfSubjectAccessReview(
                spec=client.V1SelfSubjectAccessReviewSpec(
                    resource_attributes=client.V1ResourceAttributes(verb="*", resource="*")
                )
            )
        )
    assert review.status is not None
    assert review.status.allowed


def test_unauthenticated_requests_are_refused(apiserver: ApiServer) -> None:
    configuration = client.Configuration()
    configuration.host = apiserver.url
    configuration.ssl_ca_cert = str(apiserver.ca_file)
    with client.ApiClient(configuration) as anonymous, pytest.raises(ApiException) as info:
        client.CoreV1Api(anonymous).list_namespace()
    assert info.value.status in (401, 403)


def test_restart_keeps_data_and_url(private_apiserver: ApiServer) -> None:
    url = private_apiserver.url
    with new_client(private_apiserver) as api_client:
        name = create_namespace(api_client)
    private_apiserver.restart()
    assert private_apiserver.url == url
    with new_client(private_apiserver) as api_client:
        namespace = client.CoreV1Api(api_client).read_namespace(name)
    assert namespace.metadata is not None
    assert namespace.metadata.name == name


def test_compaction_makes_old_resource_versions_gone(private_apiserver: ApiServer) -> None:
    with new_client(private_apiserver) as api_client:
        core = client.CoreV1Api(api_client)
        old = core.list_namespace().metadata
        assert old is not None
        create_namespace(api_client)
        private_apiserver.etcd_compact()
        with pytest.raises(ApiException) as info:
            core.list_namespace(
                resource_version=old.resource_version, resource_version_match="Exact"
            )
    assert info.value.status == 410


def test_stop_removes_processes_and_files(apiserver: ApiServer) -> None:
    api = ApiServer().start()
    pids = api.pids()
    workdir = api.workdir
    api.stop()
    assert not workdir.exists()
    # Stopped and reaped.
    assert not [pid for pid in pids.values() if Path(f"/proc/{pid}").exists()]


@pytest.mark.slow
def test_controller_manager_collects_orphans_and_deletes_namespaces(
    apiserver_gc: ApiServer,
) -> None:
    assert set(apiserver_gc.pids()) == {"etcd", "kube-apiserver", "kube-controller-manager"}
    _assert_loopback_only(apiserver_gc)
    with new_client(apiserver_gc) as api_client:
        core = client.CoreV1Api(api_client)
        namespace = create_namespace(api_client)
        owner = core.create_namespaced_config_map(
            namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
        )
        assert owner.metadata is not None
        assert owner.metadata.uid is not None
        dependent_name = f"dependent-{uuid.uuid4().hex[:6]}"
        dependent = client.V1ConfigMap(
            metadata=client.V1ObjectMeta(
                name=dependent_name,
                owner_references=[
                    client.V1OwnerReference(
                        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
                    )
                ],
            )
        )
        core.create_namespaced_config_map(namespace, dependent)
        core.delete_namespaced_config_map("owner", namespace)
        assert _wait_gone(lambda: core.read_namespaced_config_map(dependent_name, namespace))
        core.delete_namespace(namespace)
        assert _wait_gone(lambda: core.read_namespace(namespace))


def _wait_gone(read: Callable[[], object], *, timeout: float = 60.0) -> bool:
    """Polls `read` until it raises 404. Behaviour, not timing: the timeout
    only stops a hung test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            read()
        except ApiException as error:
            if error.status == 404:
                return True
            raise
        time.sleep(0.2)
    return False


def test_missing_binaries_are_reported_and_leave_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KVIP_CACHE", str(tmp_path))
    api = ApiServer()
    with pytest.raises(BinaryMissingError, match="kube-apiserver not found: run scripts/build"):
        api.start()
    assert not api.workdir.exists()
