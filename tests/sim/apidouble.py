"""An in-memory Kubernetes API server for the simulation tier (tests/sim).

`ApiDouble` is a `Kube` whose calls never leave the process: `run` calls the
function inline (after a simulated latency, under the same limiter), so a
whole controller runs under trio's MockClock without threads or HTTP. It
keeps the semantics kvip relies on, pinned against the real kube-apiserver by
tests/sim/test_conformance.py:

- one global resourceVersion counter (like etcd's revision); a write that
  changes nothing is not a write (same resourceVersion, no watch event).
  managedFields are not kept (the real server may count a write that only
  moves its managedFields bookkeeping, e.g. after a plain patch naming the
  status), and nothing is validated against the CRD's schema (422);
- create: 409 AlreadyExists; status is dropped (the status subresource);
- replace: metadata.resourceVersion is required (422) and must be current
  (409); a plain replace keeps the old status, a status replace changes
  only the status; metadata.generation moves with the spec;
- merge patch (RFC 7386), with metadata.resourceVersion as a precondition;
- delete: an object with finalizers gets deletionTimestamp and goes when its
  last finalizer does; a deleting object takes no new finalizer (422);
- list answers the current resourceVersion; a watch from a resourceVersion
  delivers ADDED / MODIFIED / DELETED in order, and 410 Gone when that
  version is older than the last `compact()`;
- faults: `inject(Fault(...))` makes the next matching call fail the way the
  real facade fails (the client's exceptions through `translate`). Faults
  strike only calls made through `run` (and watches): the code under test's,
  not the test's own.
"""

from __future__ import annotations

import functools
import types
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import trio
from kubernetes import client
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from kvip.k8s import (
    ApiHealth,
    Body,
    Changed,
    Deleted,
    Kube,
    Resource,
    Watcher,
    translate_error,
)
from tests.sim.apirules import (
    EVENTS,
    Entry,
    Fault,
    TimedOut,
    api_error,
    as_seen,
    copy_body,
    fault_error,
    merge_patch,
    omit_empty,
    selector_matches,
    without_meta,
)

T = TypeVar("T")


class ApiDouble(Kube):
    """The Kubernetes API of kvip (custom objects and Events), in memory."""

    def __init__(
        self, *, latency: Callable[[], float] = lambda: 0.005, request_timeout: float = 30.0
    ) -> None:
        # No super().__init__(): there is no HTTP client behind this Kube.
        self.request_timeout = request_timeout
        self.call_limiter = trio.CapacityLimiter(8)
        self.health = ApiHealth()
        self.latency = latency
        self.revision = 0
        #: Watches from an older resourceVersion than this get 410 Gone.
        self.compacted = 0
        self.objects: dict[tuple[str, str | None, str], Body] = {}
        self.log: list[Entry] = []
        self.faults: list[Fault] = []
        #: Kubernetes Events written (best effort, like the real ones).
        self.events: list[Body] = []
        self.calls = 0
        #: Faults that struck a call.
        self.struck = 0
        self._uids = 0
        self._epoch = 0
        self._in_run = False
        self._changed = trio.Event()

    # -- what the tests use ---------------------------------------------------------

    def inject(self, fault: Fault) -> None:
        self.faults.append(fault)

    def compact(self) -> int:
        """Forget the history up to now: a watch from an older resourceVersion gets
        410 Gone. Open watches go on: etcd has sent them their events already."""
        self.compacted = self.revision
        return self.compacted

    def drop_watches(self) -> None:
        """Every open watch loses its connection (an API server restart)."""
        self._epoch += 1
        self._wake()

    def stored(self, resource: Resource) -> list[Body]:
        return [
            copy_body(body)
            for (plural, _, _), body in sorted(self.objects.items())
            if plural == resource.plural
        ]

    def close(self) -> None:
        pass

    # -- the Kube interface ---------------------------------------------------------

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        async with self.call_limiter:
            await trio.sleep(self.latency())
            self._in_run = True
            try:
                return fn(*args)
            except TimedOut as exc:
                self._in_run = False
                await trio.sleep(self.request_timeout)
                raise translate_error(
                    ReadTimeoutError(cast(Any, None), "", f"{exc}: read timed out")
                ) from None
            finally:
                self._in_run = False

    @functools.cached_property
    def core(self) -> client.CoreV1Api:
        """The two Event calls EventRecorder makes."""
        return cast(
            client.CoreV1Api,
            types.SimpleNamespace(
                create_namespaced_event=self._create_event,
                patch_namespaced_event=self._patch_event,
            ),
        )

    def list(
        self, resource: Resource, *, label_selector: str | None = None
    ) -> tuple[list[Body], str]:
        self._strike("list", resource, "list")
        items = [body for body in self.stored(resource) if selector_matches(label_selector, body)]
        return items, str(self.revision)

    def get(self, resource: Resource, name: str, *, namespace: str | None = None) -> Body:
        self._strike("get", resource, name)
        return copy_body(self._current(resource, namespace, name))

    def create(self, resource: Resource, body: Body) -> Body:
        meta = body.get("metadata") or {}
        name = str(meta.get("name"))
        namespace = meta.get("namespace") if resource.namespaced else None
        applied = self._strike("create", resource, name)
        key = (resource.plural, namespace, name)
        if key in self.objects:
            raise api_error(409, "AlreadyExists", f'{resource} "{name}" already exists')
        new = copy_body(body)
        new.pop("status", None)
        new_meta = new["metadata"]
        for server_side in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            new_meta.pop(server_side, None)
        self._uids += 1
        new_meta.update(
            uid=f"uid-{self._uids:06d}", generation=1, creationTimestamp="2026-01-01T00:00:00Z"
        )
        if namespace is None:
            new_meta.pop("namespace", None)
        return self._write(resource, key, None, new, applied)

    def replace(self, resource: Resource, body: Body, *, status: bool = False) -> Body:
        meta = body.get("metadata") or {}
        name = str(meta.get("name"))
        namespace = meta.get("namespace") if resource.namespaced else None
        applied = self._strike("replace_status" if status else "replace", resource, name)
        current = self._current(resource, namespace, name)
        if not meta.get("resourceVersion"):
            raise api_error(
                422, "Invalid", "metadata.resourceVersion: must be specified for an update"
            )
        self._precondition(resource, current, str(meta["resourceVersion"]))
        return self._update(resource, current, copy_body(body), status=status, applied=applied)

    def patch(
        self,
        resource: Resource,
        name: str,
        patch: Body,
        *,
        namespace: str | None = None,
        status: bool = False,
    ) -> Body:
        applied = self._strike("replace_status" if status else "patch", resource, name)
        current = self._current(resource, namespace if resource.namespaced else None, name)
        wanted = (patch.get("metadata") or {}).get("resourceVersion")
        if wanted is not None:
            self._precondition(resource, current, str(wanted))
        merged = merge_patch(copy_body(current), patch)
        merged["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        return self._update(resource, current, merged, status=status, applied=applied)

    def delete(self, resource: Resource, name: str, *, namespace: str | None = None) -> bool:
        applied = self._strike("delete", resource, name)
        key = (resource.plural, namespace if resource.namespaced else None, name)
        current = self.objects.get(key)
        if current is None:
            return False
        meta = current["metadata"]
        if meta.get("finalizers"):
            if not meta.get("deletionTimestamp"):
                new = copy_body(current)
                new["metadata"].update(
                    deletionTimestamp="2026-01-01T00:00:01Z",
                    deletionGracePeriodSeconds=0,
                    generation=int(meta.get("generation", 1)) + 1,
                )
                self._write(resource, key, current, new, applied)
            elif not applied:
                raise TimedOut(name)
            return True
        self._remove(resource, key, current, applied)
        return True

    # -- watching ------------------------------------------------------------------

    async def watch(
        self, resource: Resource, resource_version: str, label_selector: str | None = None
    ) -> AsyncIterator[tuple[str, Body]]:
        """The events after `resource_version`, forever; raises Gone (too old)
        and Unavailable (the connection dropped: `drop_watches`)."""
        await trio.sleep(self.latency())
        try:
            self._strike("watch", resource, "watch")
        except TimedOut:
            await trio.sleep(self.request_timeout)
            raise translate_error(
                ReadTimeoutError(cast(Any, None), "", "watch: read timed out")
            ) from None
        position = int(resource_version)
        if position < self.compacted:
            raise api_error(
                410, "Expired", f"too old resource version: {position} ({self.compacted})"
            )
        epoch = self._epoch
        while True:
            changed = self._changed
            # The log holds every revision (log[i].revision == i + 1).
            for entry in self.log[position:]:
                if self._epoch != epoch:
                    break  # what was on its way is lost with the connection
                position = entry.revision
                if entry.plural != resource.plural:
                    continue
                event = as_seen(entry, label_selector)
                if event is not None:
                    yield event
            if self._epoch != epoch:
                raise translate_error(ProtocolError("Connection broken: the API server went away"))
            await changed.wait()

    # -- the store ------------------------------------------------------------------

    def _strike(self, op: str, resource: Resource, what: str) -> bool:
        """Count the call and apply the first matching fault. Returns whether the
        call is to be applied and answered (False: applied, then timed out)."""
        if not self._in_run and op != "watch":
            return True  # the test's own calls (the user's): no faults
        self.calls += 1
        for fault in self.faults:
            if fault.op == op and fault.plural in (None, resource.plural):
                self.faults.remove(fault)
                self.struck += 1
                if fault.error == "timeout-applied":
                    return False
                raise fault_error(fault.error, f"{resource} {what}")
        return True

    def _current(self, resource: Resource, namespace: str | None, name: str) -> Body:
        body = self.objects.get((resource.plural, namespace if resource.namespaced else None, name))
        if body is None:
            raise api_error(404, "NotFound", f'{resource} "{name}" not found')
        return body

    def _precondition(self, resource: Resource, current: Body, version: str) -> None:
        if version != current["metadata"]["resourceVersion"]:
            name = current["metadata"]["name"]
            raise api_error(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {resource} "{name}": '
                "the object has been modified; please apply your changes to the "
                "latest version and try again",
            )

    def _update(
        self, resource: Resource, current: Body, new: Body, *, status: bool, applied: bool
    ) -> Body:
        old_meta = current["metadata"]
        if status:
            # The status subresource: everything but the status is the old object's.
            wanted = new.get("status")
            new = copy_body(current)
            new.pop("status", None)
            if wanted is not None:
                new["status"] = wanted
        else:
            new.pop("status", None)
            if "status" in current:
                new["status"] = copy_body(current["status"])
            meta = new.setdefault("metadata", {})
            for kept in (
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "namespace",
                "name",
            ):
                meta.pop(kept, None)
                if kept in old_meta:
                    meta[kept] = old_meta[kept]
            added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if old_meta.get("deletionTimestamp") and added:
                raise api_error(
                    422,
                    "Invalid",
                    "metadata.finalizers: Forbidden: no new "
                    "finalizers can be added if the object is being deleted",
                )
            if without_meta(new) != without_meta(current):
                meta["generation"] = int(old_meta.get("generation", 1)) + 1
        key = (resource.plural, old_meta.get("namespace"), str(old_meta["name"]))
        omit_empty(new)
        if new == current:
            if not applied:
                raise TimedOut(key[2])
            return copy_body(current)
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            # Answered with the object as it was last stored, less its finalizers.
            self._remove(resource, key, current, applied)
            return copy_body(new)
        return self._write(resource, key, current, new, applied)

    def _write(
        self,
        resource: Resource,
        key: tuple[str, str | None, str],
        old: Body | None,
        new: Body,
        applied: bool,
    ) -> Body:
        omit_empty(new)
        self.revision += 1
        new["metadata"]["resourceVersion"] = str(self.revision)
        self.objects[key] = new
        self.log.append(
            Entry(self.revision, resource.plural, "MODIFIED" if old else "ADDED", new, old)
        )
        self._wake()
        if not applied:
            raise TimedOut(key[2])
        return copy_body(new)

    def _remove(
        self, resource: Resource, key: tuple[str, str | None, str], current: Body, applied: bool
    ) -> None:
        self.revision += 1
        del self.objects[key]
        gone = copy_body(current)
        gone["metadata"]["resourceVersion"] = str(self.revision)
        self.log.append(Entry(self.revision, resource.plural, "DELETED", gone, current))
        self._wake()
        if not applied:
            raise TimedOut(key[2])

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    # -- Events ----------------------------------------------------------------------

    def _create_event(self, namespace: str, body: Any, **_: Any) -> Any:
        self._strike("event", EVENTS, "event")
        event = copy_body(cast(Body, body))
        name = f"{event['metadata'].pop('generateName', 'event.')}{len(self.events):05d}"
        event["metadata"].update(name=name, namespace=namespace)
        self.events.append(event)
        return types.SimpleNamespace(metadata=types.SimpleNamespace(name=name))

    def _patch_event(self, name: str, namespace: str, patch: Body, **_: Any) -> Any:
        self._strike("event", EVENTS, name)
        for event in self.events:
            if event["metadata"]["name"] == name and event["metadata"]["namespace"] == namespace:
                event.update(merge_patch(event, patch))
                return event
        raise api_error(404, "NotFound", f'events "{name}" not found')


@dataclass(slots=True)
class DoubleWatcher(Watcher):
    """kvip's Watcher with the double's watch in place of the HTTP stream.

    Everything else is the real Watcher: the list, the Snapshot, resuming
    from the last event seen, relisting on 410 Gone, the retry delays."""

    async def _watch_once(self, resource_version: str) -> str:
        # The double itself, or a replica's view of it (tests/sim/replicas.py).
        double = getattr(self.kube, "double", self.kube)
        assert isinstance(double, ApiDouble), "DoubleWatcher watches an ApiDouble"
        self._seen = None
        with trio.move_on_after(self.timeout_seconds):  # the server ends each watch
            async for kind, obj in double.watch(
                self.resource, resource_version, self.label_selector
            ):
                if kind == "DELETED":
                    await self.send.send(Deleted(self.resource, obj))
                else:
                    await self.send.send(Changed(self.resource, obj))
                resource_version = str(obj["metadata"]["resourceVersion"])
                self._seen = resource_version
        return resource_version
