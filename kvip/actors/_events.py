"""Kubernetes Events on VMs and pools: what an operator sees in `kubectl describe`.

Events are best effort by nature: the recorder never blocks the controller
(a full queue drops the event and counts it) and repeats of the same event
within a while are folded into one with a count, as kubectl shows them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import trio

from kvip.k8s import Kube, KubeError, translate_error

log = logging.getLogger(__name__)

QUEUE_SIZE = 512
#: Identical events within this window are counted, not repeated.
FOLD_WINDOW = 600.0
#: Cluster-scoped objects (IPPools) have their events in this namespace.
CLUSTER_EVENTS_NAMESPACE = "default"


@dataclass(frozen=True, slots=True)
class ObjectRef:
    api_version: str
    kind: str
    name: str
    namespace: str | None = None
    uid: str | None = None


@dataclass(frozen=True, slots=True)
class Event:
    ref: ObjectRef
    reason: str
    message: str
    warning: bool = False


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class EventRecorder:
    kube: Kube
    component: str = "kvip"
    instance: str = ""
    #: Whether this replica may write now (it holds the Lease); events recorded
    #: while it may not are dropped (the log has them).
    may_write: Callable[[], bool] = lambda: True
    dropped: int = 0
    written: int = 0
    _send: trio.MemorySendChannel[Event] = field(init=False)
    _receive: trio.MemoryReceiveChannel[Event] = field(init=False)
    #: (ref, reason, message) -> (event name, namespace, count, first seen)
    _recent: dict[tuple[ObjectRef, str, str], tuple[str, str, int, float]] = field(
        default_factory=dict
    )

    def __post_init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[Event](QUEUE_SIZE)

    def record(self, event: Event) -> None:
        """Queue an event; never waits (a full queue drops it)."""
        if not self.may_write():
            return
        try:
            self._send.send_nowait(event)
        except trio.WouldBlock:
            self.dropped += 1

    async def run(self) -> None:
        async for event in self._receive:
            try:
                await self._write(event)
                self.written += 1
            except KubeError as exc:
                log.debug("event %s on %s not written: %s", event.reason, event.ref.name, exc)

    async def _write(self, event: Event) -> None:
        key = (event.ref, event.reason, event.message)
        namespace = event.ref.namespace or CLUSTER_EVENTS_NAMESPACE
        now = time.monotonic()
        seen = self._recent.get(key)
        if seen is not None and now - seen[3] < FOLD_WINDOW:
            name, namespace, count, first = seen
            patch = {"count": count + 1, "lastTimestamp": _now()}
            await self.kube.run(self._patch, namespace, name, patch)
            self._recent[key] = (name, namespace, count + 1, first)
            return
        body = self._body(event, namespace)
        created = await self.kube.run(self._create, namespace, body)
        if len(self._recent) > 4096:
            self._recent.clear()
        self._recent[key] = (created, namespace, 1, now)

    def _body(self, event: Event, namespace: str) -> dict[str, Any]:
        ref = event.ref
        involved: dict[str, Any] = {
            "apiVersion": ref.api_version,
            "kind": ref.kind,
            "name": ref.name,
        }
        if ref.namespace:
            involved["namespace"] = ref.namespace
        if ref.uid:
            involved["uid"] = ref.uid
        stamp = _now()
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{ref.name}.", "namespace": namespace},
            "involvedObject": involved,
            "reason": event.reason,
            "message": event.message,
            "type": "Warning" if event.warning else "Normal",
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "reportingInstance": self.instance or self.component,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }

    def _create(self, namespace: str, body: dict[str, Any]) -> str:
        try:
            created = self.kube.core.create_namespaced_event(
                namespace,
                cast(Any, body),  # the client serializes a dict as it is
                _request_timeout=self.kube.request_timeout,
            )
        except Exception as exc:
            raise translate_error(exc) from exc
        return str(created.metadata.name)

    def _patch(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        try:
            self.kube.core.patch_namespaced_event(
                name, namespace, patch, _request_timeout=self.kube.request_timeout
            )
        except Exception as exc:
            raise translate_error(exc) from exc
