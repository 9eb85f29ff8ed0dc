"""The end-to-end world: a real API server, a lab of network namespaces, and
helpers to create pools and VMs and to watch what kvip does with them.
Registered as a pytest plugin (conftest.py), so `world` is a fixture everywhere."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.lab import objects
from tests.lab.apiserver import ApiServer
from tests.lab.dhcpclients import run_udhcpc
from tests.lab.kvip_rig import RunningKvip, unique, wait_for
from tests.lab.netlab import Client, Lab, netlab
from tests.lab.objects import CFGS, GROUP, VERSION, VMS


@dataclass
class World:
    lab: Lab
    api: ApiServer
    #: The client's methods return `object`; tests index into the JSON they return.
    custom: Any
    namespace: str
    selector: str
    pools: list[str]

    def kvip(self) -> RunningKvip:
        return RunningKvip(self.api.kubeconfig, selector=self.selector, netns=self.lab.server)

    def create_pool(self, network: str, *, only6: bool = False, **kwargs: Any) -> str:
        """An IPPool (objects.ippool); `only6`: without its ipv4config."""
        name = unique("pool")
        body = objects.ippool(name, network, selector=self.selector, **kwargs)
        if only6:
            del body["spec"]["ipv4config"]
        self.custom.create_cluster_custom_object(GROUP, VERSION, "ippools", body)
        self.pools.append(name)
        return name

    def pool(self, name: str) -> dict[str, Any]:
        body: dict[str, Any] = self.custom.get_cluster_custom_object(
            GROUP, VERSION, "ippools", name
        )
        return body

    def create_vm(self, name: str, nics: list[tuple[str, str, str | None]], **kw: Any) -> None:
        body = objects.vm(name, self.namespace, nics, **kw)
        self.custom.create_namespaced_custom_object(*VMS[:2], self.namespace, VMS[2], body)

    def patch_vm(self, name: str, patch: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            *VMS[:2], self.namespace, VMS[2], name, patch,
            _content_type="application/merge-patch+json",
        )  # fmt: skip

    def delete_vm(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(*VMS[:2], self.namespace, VMS[2], name)

    def cfg(self, name: str) -> dict[str, Any] | None:
        try:
            body: dict[str, Any] = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, CFGS, name
            )
            return body
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def ips(self, name: str, *, count: int = 1) -> dict[str, str]:
        """mac -> ip of a VM's vmnetcfg, once it has `count` addresses."""

        def check() -> dict[str, str] | None:
            cfg = self.cfg(name)
            entries = (cfg or {}).get("spec", {}).get("networkconfig", [])
            found = {e["macaddress"]: e["ipaddress"] for e in entries if e.get("ipaddress")}
            return found if len(found) >= count else None

        return wait_for(check, what=f"{count} address(es) in vmnetcfg {name}")

    def net(self, name: str) -> str:
        return f"{self.namespace}/{name}"


def _require_tools() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    if shutil.which("udhcpc") is None:
        pytest.skip("udhcpc is not installed (scripts/install-system-deps.sh)")


@pytest.fixture
def world(apiserver: ApiServer, crds: list[str], kube_client: client.ApiClient) -> Iterator[World]:
    _require_tools()
    custom: Any = client.CustomObjectsApi(kube_client)
    namespace = unique("kvip-e2e")
    client.CoreV1Api(kube_client).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace))
    )
    with netlab("kve", veth=True) as lab:
        lab.add_server_port("eth2", "198.19.0.1/16", veth=True)
        w = World(lab, apiserver, custom, namespace, f"kvip-test={unique('sel')}", [])
        try:
            yield w
        finally:
            for item in custom.list_namespaced_custom_object(*VMS[:2], namespace, VMS[2])["items"]:
                w.delete_vm(item["metadata"]["name"])
            for item in custom.list_namespaced_custom_object(GROUP, VERSION, namespace, CFGS)[
                "items"
            ]:
                custom.patch_namespaced_custom_object(
                    GROUP, VERSION, namespace, CFGS, item["metadata"]["name"],
                    {"metadata": {"finalizers": None}},
                    _content_type="application/merge-patch+json",
                )  # fmt: skip
                custom.delete_namespaced_custom_object(
                    GROUP, VERSION, namespace, CFGS, item["metadata"]["name"]
                )
            for name in w.pools:
                try:
                    custom.delete_cluster_custom_object(GROUP, VERSION, "ippools", name)
                except ApiException as exc:
                    if exc.status != 404:
                        raise
            client.CoreV1Api(kube_client).delete_namespace(namespace)


def lease_ip(c: Client, **kwargs: Any) -> str:
    return str(run_udhcpc(c, timeout=kwargs.pop("timeout", 10), **kwargs).ip)
