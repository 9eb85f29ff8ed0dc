"""Installing CRDs into the local API server: kvip's own (deploy/crds.yaml)
and the KubeVirt/Multus stand-ins a bare API server lacks."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.lab.crs import Obj, crd_resource

REPO = Path(__file__).resolve().parents[2]
KVIP_CRDS = REPO / "deploy" / "crds.yaml"
KUBEVIRT_CRDS = REPO / "tests" / "fixtures" / "kubevirt-crds.yaml"


class CrdNotEstablishedError(Exception):
    """A CRD was created but the API server did not start serving it in time."""


def load_manifests(*paths: Path) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in paths:
        docs.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return docs


def condition(obj: Obj, kind: str) -> str | None:
    """The status ("True", "False", "Unknown") of condition `kind`, if present."""
    for cond in obj.get("status", {}).get("conditions") or []:
        if cond.get("type") == kind:
            status: str = cond.get("status", "Unknown")
            return status
    return None


def install_crds(api_client: client.ApiClient, *paths: Path, timeout: float = 60.0) -> list[str]:
    """Creates (or replaces) every CRD in `paths` and waits until all are
    Established. Returns their names."""
    crds = crd_resource(client.CustomObjectsApi(api_client))
    names = []
    for doc in load_manifests(*paths):
        name = doc["metadata"]["name"]
        names.append(name)
        try:
            crds.create(doc)
        except ApiException as error:
            if error.status != 409:
                raise
            version = crds.get(name)["metadata"]["resourceVersion"]
            crds.replace(name, {**doc, "metadata": {**doc["metadata"], "resourceVersion": version}})
    deadline = time.monotonic() + timeout
    pending = list(names)
    while pending:
        pending = [n for n in pending if condition(crds.get(n), "Established") != "True"]
        if pending and time.monotonic() > deadline:
            raise CrdNotEstablishedError(f"not Established after {timeout:.0f} s: {pending}")
        if pending:
            time.sleep(0.1)
    return names
