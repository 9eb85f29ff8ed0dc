"""The controller bench's cluster side: a dedicated local API server, the
objects the bench makes in bulk, and a vmnetcfg watch that notes when each
VM's address first appears.

Everything here talks to the API server only (127.0.0.1); the pools' DHCP
sockets are kvip's business (ctl_kvip.py opens them in a lab namespace).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from tests.lab import objects
from tests.lab.apiserver import ApiServer
from tests.lab.k8s_crds import KUBEVIRT_CRDS, KVIP_CRDS, install_crds
from tests.lab.objects import CFGS, GROUP, VERSION, VMS

REPO = Path(__file__).resolve().parent.parent

T = TypeVar("T")
R = TypeVar("R")

MERGE = "application/merge-patch+json"
#: Parallel API callers: about what a busy cluster's clients throw at it.
CREATORS = 16


@dataclass(frozen=True, slots=True)
class BenchPool:
    """One IPPool of the bench and the lab port its socket binds to."""

    name: str
    network: str
    interface: str
    subnet: IPv4Network

    @property
    def server(self) -> IPv4Address:
        return self.subnet.network_address + 1

    @property
    def start(self) -> IPv4Address:
        return self.subnet.network_address + 10

    @property
    def end(self) -> IPv4Address:
        return self.subnet.broadcast_address - 5

    def body(self, selector: str) -> dict[str, Any]:
        return objects.ippool(
            self.name,
            self.network,
            selector=selector,
            interface=self.interface,
            server=str(self.server),
            subnet=str(self.subnet),
            start=str(self.start),
            end=str(self.end),
        )


@dataclass(frozen=True, slots=True)
class Nic:
    """One VM's single Multus NIC, and the address it holds (if seeded)."""

    vm: str
    network: str
    mac: str
    ip: str | None = None

    @property
    def owner(self) -> str:
        return f"{self.network.partition('/')[0]}/{self.vm} [{self.mac}]"


def mac_of(prefix: int, index: int) -> str:
    """A locally administered, unique MAC per (prefix, index)."""
    return f"52:54:{prefix:02x}:{index >> 16 & 255:02x}:{index >> 8 & 255:02x}:{index & 255:02x}"


def parallel(fn: Callable[[T], R], items: Iterable[T], *, workers: int = CREATORS) -> list[R]:
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bench") as pool:
        return list(pool.map(fn, items))


class Cluster:
    """A dedicated etcd + kube-apiserver with kvip's CRDs, and a client sized
    for `CREATORS` threads."""

    def __init__(self) -> None:
        self.api = ApiServer()
        self.custom: Any = None
        self._client: client.ApiClient | None = None

    def __enter__(self) -> Cluster:
        self.api.start()
        try:
            configuration = client.Configuration()
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(self.api.kubeconfig), client_configuration=configuration
            )
            # One pooled connection per thread, plus the watch: no reconnect churn.
            configuration.connection_pool_maxsize = CREATORS * 2
            self._client = client.ApiClient(configuration)
            self.custom = client.CustomObjectsApi(self._client)
            install_crds(self._client, KVIP_CRDS, KUBEVIRT_CRDS)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()  # type: ignore[no-untyped-call]
        self.api.stop()

    @property
    def kubeconfig(self) -> Path:
        return self.api.kubeconfig

    def create_namespace(self, name: str) -> None:
        assert self._client is not None
        client.CoreV1Api(self._client).create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=name))
        )

    def create_pool(self, pool: BenchPool, *, selector: str) -> None:
        self.custom.create_cluster_custom_object(GROUP, VERSION, "ippools", pool.body(selector))

    def delete_pool(self, name: str) -> None:
        self.custom.delete_cluster_custom_object(GROUP, VERSION, "ippools", name)

    def pools(self, selector: str) -> list[dict[str, Any]]:
        found = self.custom.list_cluster_custom_object(
            GROUP, VERSION, "ippools", label_selector=selector
        )
        items: list[dict[str, Any]] = found["items"]
        return items

    def clear_pool_statuses(self, names: Iterable[str]) -> None:
        for name in names:
            self.custom.patch_cluster_custom_object_status(
                GROUP, VERSION, "ippools", name, {"status": None}, _content_type=MERGE
            )

    def create_vm(self, namespace: str, nic: Nic) -> dict[str, Any]:
        body = objects.vm(nic.vm, namespace, [("nic1", nic.network, nic.mac)])
        created: dict[str, Any] = self.custom.create_namespaced_custom_object(
            *VMS[:2], namespace, VMS[2], body
        )
        return created

    def seed(self, namespace: str, nic: Nic) -> None:
        """A VM and the vmnetcfg kvip would have written for it: finalizer,
        ownerReference to the VM, the address in spec, an OK status."""
        assert nic.ip is not None
        vm = self.create_vm(namespace, nic)
        cfg = objects.vmnetcfg(
            nic.vm,
            [(nic.network, nic.mac, nic.ip)],
            namespace=namespace,
            owner_uid=vm["metadata"]["uid"],
            managed=True,
        )
        self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, CFGS, cfg)
        status = {
            "networkname": nic.network,
            "macaddress": nic.mac,
            "status": "OK",
            "message": f"{nic.ip} reserved",
        }
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, CFGS, nic.vm,
            {"status": {"networkconfig": [status]}}, _content_type=MERGE,
        )  # fmt: skip

    def cfg_addresses(self, namespace: str) -> dict[str, dict[str, str]]:
        """vmnetcfg name -> {mac: ip} as stored now."""
        found = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, CFGS)
        return {item["metadata"]["name"]: _addresses(item) for item in found["items"]}

    def empty_namespace(self, namespace: str) -> None:
        """Every VM and vmnetcfg of `namespace` gone (finalizers dropped first:
        kvip is stopped by then)."""
        self.custom.delete_collection_namespaced_custom_object(*VMS[:2], namespace, VMS[2])
        names = list(self.cfg_addresses(namespace))

        def unfinalize(name: str) -> None:
            with contextlib.suppress(ApiException):
                self.custom.patch_namespaced_custom_object(
                    GROUP, VERSION, namespace, CFGS, name,
                    {"metadata": {"finalizers": None}}, _content_type=MERGE,
                )  # fmt: skip

        parallel(unfinalize, names)
        self.custom.delete_collection_namespaced_custom_object(GROUP, VERSION, namespace, CFGS)


def _addresses(cfg: dict[str, Any]) -> dict[str, str]:
    entries = (cfg.get("spec") or {}).get("networkconfig") or []
    return {e["macaddress"]: e["ipaddress"] for e in entries if e.get("ipaddress")}


@dataclass
class AddressWatch:
    """Watches the vmnetcfgs of one namespace from a thread of its own and
    notes, per vmnetcfg, when it was first seen with an address (monotonic
    clock) and which addresses it had then."""

    custom: Any
    namespace: str
    seen: dict[str, float] = field(default_factory=dict)
    addresses: dict[str, dict[str, str]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    error: BaseException | None = None

    @contextlib.contextmanager
    def running(self) -> Iterator[AddressWatch]:
        version = self._list()
        self._thread = threading.Thread(target=self._run, args=(version,), daemon=True)
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(10)

    def _note(self, cfg: dict[str, Any], when: float) -> None:
        name = cfg["metadata"]["name"]
        found = _addresses(cfg)
        if found and name not in self.seen:
            self.seen[name] = when
            self.addresses[name] = found

    def _list(self) -> str:
        found = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, CFGS)
        now = time.monotonic()
        for item in found["items"]:
            self._note(item, now)
        return str(found["metadata"]["resourceVersion"])

    def _run(self, version: str) -> None:
        try:
            while not self._stop.is_set():
                stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
                    self.custom.list_namespaced_custom_object,
                    GROUP, VERSION, self.namespace, CFGS,
                    resource_version=version, timeout_seconds=2, _request_timeout=30,
                )  # fmt: skip
                try:
                    for event in stream:
                        obj = event["object"]
                        version = obj["metadata"]["resourceVersion"]
                        if event["type"] in ("ADDED", "MODIFIED"):
                            self._note(obj, time.monotonic())
                        if self._stop.is_set():
                            break
                except ApiException as exc:
                    if exc.status != 410:
                        raise
                    version = self._list()
        except BaseException as exc:  # reported to the bench's main thread
            self.error = exc

    def wait_for(self, names: set[str], *, deadline: float) -> set[str]:
        """Waits until every name was seen with an address, or the deadline;
        returns the names still missing."""
        while time.monotonic() < deadline:
            if self.error is not None:
                raise self.error
            missing = names - self.seen.keys()
            if not missing:
                return missing
            time.sleep(0.05)
        return names - self.seen.keys()
