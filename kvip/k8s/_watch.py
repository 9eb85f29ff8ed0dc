"""List+watch of one resource, as a stream of messages on a trio channel.

The stream a consumer sees is: a `Snapshot` (every object that exists), then
`Changed` / `Deleted` events, and a new `Snapshot` whenever the watch had to
start over (410 Gone after an etcd compaction, or the API server was away).
A consumer that applies a Snapshot as "this is the whole truth" therefore
never misses a deletion, however long the gap.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio
from kubernetes.watch.watch import iter_resp_lines

from kvip.k8s._client import Body, Kube
from kvip.k8s._errors import Gone, KubeError, translate
from kvip.k8s._resources import Resource

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every object of the resource, as of one resourceVersion."""

    resource: Resource
    objects: tuple[Body, ...]


@dataclass(frozen=True, slots=True)
class Changed:
    """An object was added or modified."""

    resource: Resource
    object: Body


@dataclass(frozen=True, slots=True)
class Deleted:
    resource: Resource
    object: Body


WatchMessage = Snapshot | Changed | Deleted


@dataclass(slots=True)
class _OpenResponse:
    """The watch's HTTP response, shared so that cancellation can close it."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    response: Any = None
    closed: bool = False

    def set(self, response: Any) -> None:
        with self.lock:
            self.response = response
            if self.closed:
                self._shut()

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self._shut()

    def _shut(self) -> None:
        response, self.response = self.response, None
        if response is not None:
            # shutdown() unblocks a read that is waiting in another thread; it
            # refuses once the response has been read or its connection released.
            with contextlib.suppress(ValueError, RuntimeError, OSError):
                response.shutdown()
            response.release_conn()


@dataclass(slots=True)
class Watcher:
    """Watches one resource forever and sends what it sees into `send`.

    On cancellation the open watch request is closed, so the worker thread
    ends promptly. When `send` is full the watcher waits (back-pressure):
    the API server keeps the events until the consumer catches up.
    """

    kube: Kube
    resource: Resource
    send: trio.MemorySendChannel[WatchMessage]
    label_selector: str | None = None
    #: The server ends each watch after this long; the watcher then resumes it.
    timeout_seconds: int = 300
    retry_delay: float = 1.0
    max_retry_delay: float = 30.0
    limiter: trio.CapacityLimiter = field(default_factory=lambda: trio.CapacityLimiter(1))
    #: Called after every Snapshot is delivered; tests and readiness use it.
    on_synced: Callable[[], None] | None = None
    #: The last resourceVersion the open watch delivered (set by its worker thread),
    #: so that a watch cut off midway resumes from there, not from where it began.
    _seen: str | None = field(default=None, init=False)

    async def run(self) -> None:
        resource_version: str | None = None
        delay = self.retry_delay
        while True:
            try:
                if resource_version is None:
                    objects, listed_version = await self.kube.run(
                        lambda: self.kube.list(self.resource, label_selector=self.label_selector)
                    )
                    await self.send.send(Snapshot(self.resource, tuple(objects)))
                    if self.on_synced is not None:
                        self.on_synced()
                    resource_version = listed_version
                resource_version = await self._watch(resource_version)
                delay = self.retry_delay
            except Gone:
                log.info("watch of %s expired (410 Gone); listing again", self.resource)
                resource_version = None
            except KubeError as exc:
                log.warning("watch of %s failed: %s; retrying in %.0fs", self.resource, exc, delay)
                await trio.sleep(delay)
                delay = min(delay * 2, self.max_retry_delay)
                if not exc.temporary:
                    resource_version = None
                elif resource_version is not None and self._seen is not None:
                    resource_version = self._seen
            except Exception:
                # A bug or a surprise from the client must not end the watch for good.
                log.exception("watch of %s broke; listing again in %.0fs", self.resource, delay)
                await trio.sleep(delay)
                delay = min(delay * 2, self.max_retry_delay)
                resource_version = None

    async def _watch(self, resource_version: str) -> str:
        """One watch, its outcome reported to the Kube's `health` (the list is
        reported by `Kube.run`): a watch that the server ends at its timeout is
        an answer; one cut off or refused says the server is away."""
        health = self.kube.health
        try:
            resource_version = await self._watch_once(resource_version)
        except KubeError as exc:
            health.observe(exc)
            raise
        health.succeeded()
        return resource_version

    async def _watch_once(self, resource_version: str) -> str:
        holder = _OpenResponse()
        self._seen = None
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_close_on_cancel, holder)
                try:
                    return await trio.to_thread.run_sync(
                        self._stream, resource_version, holder, limiter=self.limiter
                    )
                finally:
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # The nursery wraps the worker's error; run() must see it bare to tell
            # 410 Gone (relist) and a lost connection (resume) from a bug.
            if len(group.exceptions) == 1 and isinstance(group.exceptions[0], KubeError):
                raise group.exceptions[0] from None
            raise

    def _stream(self, resource_version: str, holder: _OpenResponse) -> str:
        """The worker thread: one watch request, read until the server ends it."""
        custom = self.kube.custom
        kwargs: dict[str, Any] = {
            "watch": True,
            "allow_watch_bookmarks": True,
            "resource_version": resource_version,
            "timeout_seconds": self.timeout_seconds,
            # Connect timeout, then a read timeout a little past the server's own.
            "_request_timeout": (10, self.timeout_seconds + 30),
            "_preload_content": False,
        }
        if self.label_selector:
            kwargs["label_selector"] = self.label_selector
        try:
            response = custom.list_cluster_custom_object(
                self.resource.group, self.resource.version, self.resource.plural, **kwargs
            )
        except Exception as exc:
            raise translate(exc) from exc
        holder.set(response)
        # The watch is open: the server is there now, not only when it ends the watch.
        trio.from_thread.run_sync(self.kube.health.succeeded)
        try:
            for line in iter_resp_lines(response):
                if not line:
                    continue
                resource_version = self._handle(line, resource_version)
                self._seen = resource_version
        except KubeError:
            raise
        except Exception as exc:
            if holder.closed:
                return resource_version
            raise translate(exc) from exc
        finally:
            holder.close()
        return resource_version

    def _handle(self, line: str, resource_version: str) -> str:
        event = json.loads(line)
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            code = obj.get("code")
            message = obj.get("message", "watch error")
            if code == 410:
                raise Gone(message)
            error = KubeError(f"{code}: {message}")
            error.status = code
            raise error
        new_version = str(obj.get("metadata", {}).get("resourceVersion") or resource_version)
        if kind in ("ADDED", "MODIFIED"):
            trio.from_thread.run(self.send.send, Changed(self.resource, obj))
        elif kind == "DELETED":
            trio.from_thread.run(self.send.send, Deleted(self.resource, obj))
        # BOOKMARK: only the resourceVersion moves on.
        return new_version


async def _close_on_cancel(holder: _OpenResponse) -> None:
    try:
        await trio.sleep_forever()
    finally:
        holder.close()
