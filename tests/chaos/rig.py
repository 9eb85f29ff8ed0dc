"""The long-lived part of a chaos run: one API server, one lab, kvip processes.

One API server and one lab serve every scenario; scenarios are isolated by
namespace, by pool names and by a pool selector of their own, and each runs
its own `kvip run` process (started, SIGKILLed and started again).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.lab.apiserver import ApiServer
from tests.lab.kvip_process import KvipProcess
from tests.lab.netlab import Client, Lab, netlab
from tests.lab.objects import CFGS, GROUP, VERSION, VMS

T = TypeVar("T")

#: A lease that outlives an API server restart: kvip stays the leader through the
#: outage and its watches resume from where they were (410 Gone after a compaction).
#: A SIGKILLed leader's Lease is deleted by the rig, so its successor need not wait.
LEASE = ("--lease-duration", "40", "--renew-deadline", "30", "--retry-period", "1")
LEASE_NAME = "kvip-chaos"
#: (interface, server address) of the lab's two wires, one pool each.
PORTS = (("eth1", "198.18.0.1/16"), ("eth2", "198.19.0.1/16"))
#: The API server may be restarting: the driver's own calls wait for it this long.
API_PATIENCE = 60.0


def new_custom(api: ApiServer) -> Any:
    """A CustomObjectsApi on an ApiClient of its own (threads do not share one)."""
    api_client = config.new_client_from_config(config_file=str(api.kubeconfig))  # type: ignore[no-untyped-call]
    return client.CustomObjectsApi(api_client)


def patiently(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`call(*args, **kwargs)`, retried while the API server is away (connection
    errors, 5xx) for up to API_PATIENCE seconds."""
    deadline = time.monotonic() + API_PATIENCE
    while True:
        try:
            return call(*args, **kwargs)
        except ApiException as exc:
            if exc.status and exc.status < 500 and exc.status != 429:
                raise
            if time.monotonic() > deadline:
                raise
        except (urllib3.exceptions.HTTPError, OSError):
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)


@dataclass
class Rig:
    """One API server, one lab, and the `kvip run` process that serves every
    scenario's pools (selected by `selector`); a scenario may SIGKILL it."""

    api: ApiServer
    lab: Lab
    custom: Any
    core: client.CoreV1Api
    #: One client namespace per wire; its MAC is changed to play each VM.
    clients: dict[str, Client]
    selector: str = field(default_factory=lambda: f"kvip-chaos={uuid.uuid4().hex[:8]}")
    #: Where kvip's Lease lives (created by `start_kvip`).
    lease_namespace: str = field(default_factory=lambda: f"chaos-lease-{uuid.uuid4().hex[:6]}")
    kvip: KvipProcess | None = None
    #: The logs of the kvip processes that ended, oldest first.
    finished_logs: list[str] = field(default_factory=list)

    def start_kvip(self) -> KvipProcess:
        if self.kvip is None:
            self.create_namespace(self.lease_namespace)
        self.kvip = KvipProcess(
            self.api.kubeconfig,
            "--socket-netns", self.lab.server,
            "--pool-selector", self.selector,
            "--lease-name", LEASE_NAME,
            "--lease-namespace", self.lease_namespace,
            *LEASE,
        )  # fmt: skip
        return self.kvip

    def revive_kvip(self) -> str | None:
        """Start kvip again if it died on its own; say how it ended."""
        if self.kvip is None or self.kvip.proc.poll() is None:
            return None
        code = self.kvip.proc.returncode
        tail = "\n".join(self.kvip.log().splitlines()[-20:])
        self._retire()
        self.start_kvip()
        return f"kvip exited on its own with {code}:\n{tail}"

    def kill_kvip(self) -> None:
        """SIGKILL, then a new process, which rebuilds everything from the API server."""
        assert self.kvip is not None
        self.kvip.kill()
        self._retire()
        # Lease expiry is test_operations.py's subject; here it would only cost time.
        with contextlib.suppress(ApiException):
            patiently(
                client.CoordinationV1Api(self.core.api_client).delete_namespaced_lease,
                LEASE_NAME,
                self.lease_namespace,
            )
        self.start_kvip()

    def stop_kvip(self) -> None:
        if self.kvip is not None:
            self.kvip.stop()
            self._retire()
            self.kvip = None

    def _retire(self) -> None:
        assert self.kvip is not None
        self.kvip.stop()
        self.finished_logs.append(self.kvip.log())
        self.kvip.log_file.unlink(missing_ok=True)

    def log_mark(self) -> tuple[int, int]:
        return len(self.finished_logs), len(self.kvip.log()) if self.kvip else 0

    def logs_since(self, mark: tuple[int, int]) -> list[str]:
        """What kvip logged since `log_mark()` returned `mark`, one text per process."""
        index, offset = mark
        texts = self.finished_logs[index:] + ([self.kvip.log()] if self.kvip else [])
        if texts:
            texts[0] = texts[0][offset:]
        return texts

    def leading(self) -> bool:
        """kvip answers /readyz as the leader with every pool loaded."""
        if self.kvip is None:
            return False
        try:
            status, body = self.kvip.get("/readyz")
        except OSError:
            return False
        return status == 200 and "leader" in body

    def create_namespace(self, name: str) -> None:
        body = client.V1Namespace(metadata=client.V1ObjectMeta(name=name))
        patiently(self.core.create_namespace, body)

    def cleanup(self, namespace: str, pools: list[str]) -> None:
        """Remove what a scenario left (kvip is stopped by then): VMs, vmnetcfgs
        (finalizers stripped), pools, the namespace."""
        custom = self.custom
        vms = patiently(custom.list_namespaced_custom_object, *VMS[:2], namespace, VMS[2])
        for item in vms["items"]:
            with contextlib.suppress(ApiException):
                patiently(
                    custom.delete_namespaced_custom_object,
                    *VMS[:2], namespace, VMS[2], item["metadata"]["name"],
                )  # fmt: skip
        cfgs = patiently(custom.list_namespaced_custom_object, GROUP, VERSION, namespace, CFGS)
        for item in cfgs["items"]:
            name = item["metadata"]["name"]
            with contextlib.suppress(ApiException):
                patiently(
                    custom.patch_namespaced_custom_object,
                    GROUP, VERSION, namespace, CFGS, name, {"metadata": {"finalizers": None}},
                    _content_type="application/merge-patch+json",
                )  # fmt: skip
                patiently(
                    custom.delete_namespaced_custom_object, GROUP, VERSION, namespace, CFGS, name
                )
        for name in pools:
            with contextlib.suppress(ApiException):
                patiently(custom.delete_cluster_custom_object, GROUP, VERSION, "ippools", name)
        # Without kube-controller-manager the namespace stays Terminating: harmless.
        with contextlib.suppress(ApiException):
            patiently(self.core.delete_namespace, namespace)


@contextlib.contextmanager
def open_rig(api: ApiServer) -> Iterator[Rig]:
    """A lab with two wires (eth1, eth2) and a client namespace on each."""
    api_client = config.new_client_from_config(config_file=str(api.kubeconfig))  # type: ignore[no-untyped-call]
    with api_client, netlab("kvc", server_ifname=None) as lab:
        clients = {}
        for index, (ifname, address) in enumerate(PORTS, start=1):
            lab.add_server_port(ifname, address, veth=True)
            clients[ifname] = lab.add_client(f"02:00:00:00:00:{index:02x}", port=ifname)
        rig = Rig(
            api=api,
            lab=lab,
            custom=client.CustomObjectsApi(api_client),
            core=client.CoreV1Api(api_client),
            clients=clients,
        )
        try:
            rig.start_kvip()
            yield rig
        finally:
            rig.stop_kvip()
