"""The rules of the API server the double (apidouble.py) is built from: merge
patches, label selectors, what a watch with a selector sees, the metadata the
server leaves out, and the errors a fault raises (through the facade's own
`translate`, so they are what kvip sees from the real client)."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any, cast

from kubernetes.client.exceptions import ApiException

from kvip.k8s import Body, KubeError, Resource, translate_error

#: What a fault does to the call it strikes.
ERRORS = ("conflict", "unavailable", "timeout", "timeout-applied", "gone", "forbidden")
OPS = ("list", "get", "create", "replace", "replace_status", "patch", "delete", "watch", "event")


@dataclass(frozen=True, slots=True)
class Fault:
    """The next call of `op` (on `plural`, if given) fails with `error`.

    "timeout" fails after the request timeout without applying the call;
    "timeout-applied" applies it and then fails the same way (the answer was
    lost: the caller cannot know that it landed)."""

    op: str
    error: str
    plural: str | None = None

    def __post_init__(self) -> None:
        assert self.op in OPS and self.error in ERRORS, self


class TimedOut(Exception):
    """Raised by a call that must look like a request timeout; `run` waits the
    request timeout out and raises what the facade raises then."""


def api_error(status: int, reason: str, message: str) -> KubeError:
    """What the facade raises for an HTTP error status."""
    body = json.dumps(
        {
            "kind": "Status",
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": status,
        }
    )
    exc = ApiException(status=status, reason=reason)
    exc.body = body
    return translate_error(exc)


def fault_error(error: str, what: str) -> BaseException:
    if error == "conflict":
        return api_error(409, "Conflict", f"Operation cannot be fulfilled on {what}: injected")
    if error == "unavailable":
        return api_error(500, "InternalError", f"injected server error on {what}")
    if error == "gone":
        return api_error(410, "Expired", "too old resource version: injected")
    if error == "forbidden":
        return api_error(403, "Forbidden", f"injected: forbidden {what}")
    return TimedOut(what)


@dataclass(slots=True)
class Entry:
    """One write, as a watch sees it."""

    revision: int
    plural: str
    kind: str  # ADDED, MODIFIED, DELETED
    obj: Body
    old: Body | None


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def selector_matches(selector: str | None, body: Body) -> bool:
    if not selector:
        return True
    labels = body.get("metadata", {}).get("labels") or {}
    for term in selector.split(","):
        key, sep, value = term.partition("=")
        if not sep or value.startswith("=") or key.endswith("!"):
            raise NotImplementedError(f"the double knows only k=v selectors, not {term!r}")
        if labels.get(key.strip()) != value.strip():
            return False
    return True


def copy_body(body: Body) -> Body:
    return cast(Body, json.loads(json.dumps(body)))


EVENTS = Resource("", "v1", "events", "Event", namespaced=True)


def omit_empty(body: Body) -> None:
    """The API server stores no empty metadata lists or maps."""
    meta = body["metadata"]
    for name in ("finalizers", "labels", "annotations", "ownerReferences"):
        if name in meta and not meta[name]:
            del meta[name]


def without_meta(body: Body) -> Body:
    return {k: v for k, v in body.items() if k not in ("metadata", "status")}


def as_seen(entry: Entry, selector: str | None) -> tuple[str, Body] | None:
    """The event a watch with `selector` sees for one write: an object that
    starts or stops matching is ADDED or DELETED for it."""
    was = entry.old is not None and selector_matches(selector, entry.old)
    if entry.kind == "DELETED":
        return ("DELETED", copy_body(entry.obj)) if was else None
    now = selector_matches(selector, entry.obj)
    if now:
        return ("MODIFIED" if was else "ADDED", copy_body(entry.obj))
    if was:
        return "DELETED", copy_body(entry.obj)
    return None
