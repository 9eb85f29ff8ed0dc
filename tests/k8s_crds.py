"""Installing CRDs into the local API server: kvip's own (deploy/crds.yaml)
and the KubeVirt/Multus stand-ins a bare API server lacks."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

REPO = Path(__file__).resolve().parent.parent
KVIP_CRDS = REPO / "deploy" / "crds.yaml"
KUBEVIRT_CRDS = REPO / "tests" / "fixtures" / "kubevirt-crds.yaml"

GROUP = "kubevirtiphelper.k8s.binbash.org"
VERSION = "v1"
IPPOOLS = "ippools"
VMNETCFGS = "virtualmachinenetworkconfigs"


class CrdNotEstablishedError(Exception):
    """A CRD was created but the API server did not start serving it in time."""


def load_manifests(*paths: Path) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in paths:
        docs.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return docs


def _established(crd: Any) -> bool:
    conditions = (crd.status.conditions if crd.status else None) or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


def install_crds(api_client: client.ApiClient, *paths: Path, timeout: float = 60.0) -> list[str]:
    """Creates (or replaces) every CRD in `paths` and waits until all are
    Established. Returns their names."""
    api = client.ApiextensionsV1Api(api_client)
    names = []
    for doc in load_manifests(*paths):
        name = doc["metadata"]["name"]
        names.append(name)
        try:
            api.create_custom_resource_definition(doc)
        except ApiException as error:
            if error.status != 409:
                raise
            current = api.read_custom_resource_definition(name)
            doc = {
                **doc,
                "metadata": {
                    **doc["metadata"],
                    "resourceVersion": current.metadata.resource_version,
                },
            }
            api.replace_custom_resource_definition(name, doc)
    deadline = time.monotonic() + timeout
    pending = list(names)
    while pending:
        pending = [n for n in pending if not _established(api.read_custom_resource_definition(n))]
        if pending and time.monotonic() > deadline:
            raise CrdNotEstablishedError(f"not Established after {timeout:.0f} s: {pending}")
        if pending:
            time.sleep(0.1)
    return names
