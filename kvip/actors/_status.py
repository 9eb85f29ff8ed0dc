"""Status writers: one per resource, coalescing bursts, retrying on 409.

Callers say *that* an object's status changed (`mark(key)`); the writer asks
a `render` callback for the current status when it gets to the key, so ten
changes in a burst become one write of the latest state. Each write reads
the object (or takes the caller's cached copy), replaces its status, and PUTs
it with the resourceVersion it read: a concurrent writer makes that fail with
409, and the writer simply reads again (it never overwrites a newer status
with an older one).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import trio

from kvip.k8s import Conflict, Kube, KubeError, NotFound, Resource

log = logging.getLogger(__name__)

#: Render the status of `key` from the object's current one; None: write nothing.
Render = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any] | None]]


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class StatusWriter:
    kube: Kube
    resource: Resource
    render: Render
    #: The caller's latest copy of an object, if it keeps one (a watch cache):
    #: rendering against it first saves reading every object back before a write.
    cached: Callable[[str], dict[str, Any] | None] | None = None
    #: Whether this replica may write now (it holds the Lease). Marks made while
    #: it may not are dropped: a new leader renders every status again.
    may_write: Callable[[], bool] = lambda: True
    #: How long a burst may go on before the writer writes.
    window: float = 0.2
    max_attempts: int = 5
    _dirty: set[str] = field(default_factory=set)
    _wakeup: trio.Event = field(default_factory=trio.Event)
    #: key -> resourceVersion of this writer's last write (only with `cached`).
    _written: dict[str, str] = field(default_factory=dict)
    #: Writes done, 409s met, and other failed writes (refused, unreachable);
    #: tests and metrics read them.
    writes: int = 0
    conflicts: int = 0
    failures: int = 0
    idle: trio.Event = field(default_factory=trio.Event)

    def mark(self, key: str) -> None:
        self._dirty.add(key)
        self.idle = trio.Event() if self.idle.is_set() else self.idle
        self._wakeup.set()

    async def run(self) -> None:
        while True:
            if not self._dirty:
                self.idle.set()
                self._wakeup = trio.Event()
                await self._wakeup.wait()
            await trio.sleep(self.window)
            batch, self._dirty = self._dirty, set()
            for key in sorted(batch):
                if not self.may_write():
                    break
                await self._write(key)

    async def _write(self, key: str) -> None:
        namespace, _, name = key.rpartition("/")
        known = self._fresh_copy(key)
        for attempt in range(1, self.max_attempts + 1):
            try:
                if known is not None:
                    # First try: the cached copy. Unchanged means nothing to write;
                    # a stale one makes the PUT fail with 409 and the retry reads.
                    current, known = known, None
                else:
                    current = await self.kube.run(
                        lambda: self.kube.get(self.resource, name, namespace=namespace or None)
                    )
                status = await self.render(key, dict(current.get("status") or {}))
                if status is None or current.get("status") == status or not self.may_write():
                    return  # (not the leader any more: the new one renders it again)
                updated = {**current, "status": status}
                written = await self.kube.run(
                    functools.partial(self.kube.replace, self.resource, updated, status=True)
                )
                self.writes += 1
                if self.cached is not None:
                    self._written[key] = str(written["metadata"]["resourceVersion"])
                return
            except NotFound:
                return
            except Conflict:
                self.conflicts += 1
                log.debug("status of %s %s changed meanwhile (409); retrying", self.resource, key)
            except KubeError as exc:
                self.failures += 1
                log.warning(
                    "writing the status of %s %s failed (attempt %d): %s",
                    self.resource,
                    key,
                    attempt,
                    exc,
                )
                await trio.sleep(min(0.5 * 2**attempt, 10))
        # Out of attempts: keep it dirty so the next round tries again.
        self._dirty.add(key)

    def forget(self, key: str) -> None:
        """The object is gone: drop what this writer remembers of it, so that a
        long life of created and deleted objects does not grow its memory."""
        self._written.pop(key, None)

    def _fresh_copy(self, key: str) -> dict[str, Any] | None:
        """The cached copy of `key`, unless it predates this writer's own last
        write of it (the watch has not caught up: its status is not ours)."""
        known = self.cached(key) if self.cached is not None else None
        if known is None:
            self._written.pop(key, None)
            return None
        written = self._written.get(key)
        if written is None:
            return known
        try:
            if int(known["metadata"]["resourceVersion"]) >= int(written):
                return known
        except (KeyError, TypeError, ValueError):
            pass
        return None


def set_condition(
    conditions: list[dict[str, Any]],
    kind: str,
    *,
    status: bool,
    reason: str,
    message: str,
    generation: int | None = None,
) -> list[dict[str, Any]]:
    """`conditions` with the condition `kind` set; lastTransitionTime moves only
    when the status flips, so rewriting the same state is a no-op. `generation`:
    the object's metadata.generation the condition was computed from
    (observedGeneration), when known."""
    text = "True" if status else "False"
    previous = next((c for c in conditions if c.get("type") == kind), None)
    since = (
        previous["lastTransitionTime"]
        if previous is not None
        and previous.get("status") == text
        and "lastTransitionTime" in previous
        else now_rfc3339()
    )
    condition: dict[str, Any] = {"type": kind, "status": text}
    if generation is not None:
        condition["observedGeneration"] = generation
    condition |= {
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
    }
    return [c for c in conditions if c.get("type") != kind] + [condition]
