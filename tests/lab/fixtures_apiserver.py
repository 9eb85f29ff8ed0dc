"""pytest fixtures around the local API server (registered in conftest.py).

- `apiserver`: one etcd + kube-apiserver per test session (apiserver.ApiServer).
- `apiserver_gc`: a second one with kube-controller-manager (garbage
  collection, namespace deletion), started only by tests that ask for it.
- `kube_client`: a kubernetes.client.ApiClient for `apiserver`.
- `crds`: kvip's CRDs and the KubeVirt/Multus stand-ins, Established.
- `namespace`: a fresh namespace per test, deleted afterwards.
- `custom`: a CustomObjectsApi; `ippools`, `vmnetcfgs` (in `namespace`):
  tests.lab.crs.Resource views; `pool_name`: a unique IPPool name, the pool
  deleted afterwards.

Missing binaries: in CI (CI=true) they are built (scripts/build-apiserver.sh,
about 7 minutes once, cached); elsewhere the tests skip with that hint.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.lab.apiserver import BUILD_SCRIPT, REPO, ApiServer, build_binaries, missing_binaries
from tests.lab.crs import IPPOOLS, VMNETCFGS, Resource
from tests.lab.k8s_crds import KUBEVIRT_CRDS, KVIP_CRDS, install_crds

IN_CI = os.environ.get("CI", "").lower() == "true"


def _ensure_binaries(*, controller_manager: bool) -> None:
    missing = missing_binaries(controller_manager=controller_manager)
    if not missing:
        return
    hint = "; ".join(missing)
    if controller_manager:
        hint += f" (use {BUILD_SCRIPT.relative_to(REPO)} --with-controller-manager)"
    if not IN_CI or os.geteuid() != 0:
        pytest.skip(hint)
    build_binaries(controller_manager=controller_manager)


@pytest.fixture(scope="session")
def apiserver() -> Iterator[ApiServer]:
    _ensure_binaries(controller_manager=False)
    with ApiServer() as api:
        yield api


@pytest.fixture(scope="session")
def apiserver_gc() -> Iterator[ApiServer]:
    _ensure_binaries(controller_manager=True)
    with ApiServer(controller_manager=True) as api:
        yield api


def new_client(api: ApiServer) -> client.ApiClient:
    """An ApiClient of its own: no global kubernetes configuration is touched."""
    api_client: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(api.kubeconfig)
    )
    return api_client


@pytest.fixture(scope="session")
def kube_client(apiserver: ApiServer) -> Iterator[client.ApiClient]:
    api_client = new_client(apiserver)
    with api_client:
        yield api_client


@pytest.fixture(scope="session")
def crds(kube_client: client.ApiClient) -> list[str]:
    return install_crds(kube_client, KVIP_CRDS, KUBEVIRT_CRDS)


def create_namespace(api_client: client.ApiClient, *, prefix: str = "kvip-test") -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api_client).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name))
    )
    return name


def delete_namespace(api_client: client.ApiClient, name: str) -> None:
    # Without kube-controller-manager the namespace stays Terminating: harmless,
    # names are unique.
    try:
        client.CoreV1Api(api_client).delete_namespace(name)
    except ApiException as error:
        if error.status != 404:
            raise


@pytest.fixture
def namespace(kube_client: client.ApiClient) -> Iterator[str]:
    name = create_namespace(kube_client)
    yield name
    delete_namespace(kube_client, name)


@pytest.fixture
def custom(kube_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube_client)


@pytest.fixture
def ippools(custom: client.CustomObjectsApi) -> Resource:
    return Resource(custom, IPPOOLS)


@pytest.fixture
def vmnetcfgs(custom: client.CustomObjectsApi, namespace: str) -> Resource:
    """vmnetcfgs in this test's namespace."""
    return Resource(custom, VMNETCFGS, namespace=namespace)


@pytest.fixture
def pool_name(ippools: Resource) -> Iterator[str]:
    """A unique IPPool name (pools are cluster-scoped), deleted afterwards."""
    name = f"pool-{uuid.uuid4().hex[:8]}"
    yield name
    try:
        ippools.delete(name)
    except ApiException as error:
        if error.status != 404:
            raise
