"""A typed view of one custom resource type through the official client's
CustomObjectsApi (whose methods return `object`): tests read as
`pools.create(...)`, `cfgs.replace_status(...)`, and mypy sees dicts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from tests.lab.objects import GROUP, VERSION

IPPOOLS = "ippools"
VMNETCFGS = "virtualmachinenetworkconfigs"

Obj = dict[str, Any]
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def _obj(value: object) -> Obj:
    assert isinstance(value, dict), f"expected a JSON object, got {type(value).__name__}"
    return value


@dataclass(frozen=True, slots=True)
class Resource:
    """One plural of one group/version; `namespace` None for cluster scope."""

    api: client.CustomObjectsApi
    plural: str
    namespace: str | None = None
    group: str = GROUP
    version: str = VERSION

    def _call(self, verb: str, *args: Any, **kwargs: Any) -> Obj:
        if self.namespace is None:
            method = getattr(self.api, f"{verb}_cluster_custom_object{kwargs.pop('_sub', '')}")
            return _obj(method(self.group, self.version, self.plural, *args, **kwargs))
        method = getattr(self.api, f"{verb}_namespaced_custom_object{kwargs.pop('_sub', '')}")
        return _obj(method(self.group, self.version, self.namespace, self.plural, *args, **kwargs))

    def create(self, body: Obj) -> Obj:
        return self._call("create", body)

    def get(self, name: str) -> Obj:
        return self._call("get", name)

    def list(self, **kwargs: Any) -> Obj:
        return self._call("list", **kwargs)

    def replace(self, name: str, body: Obj) -> Obj:
        return self._call("replace", name, body)

    def replace_status(self, name: str, body: Obj) -> Obj:
        return self._call("replace", name, body, _sub="_status")

    def patch(self, name: str, body: Obj) -> Obj:
        """A JSON merge patch (the client's default for a dict body)."""
        return self._call("patch", name, body)

    def patch_status(self, name: str, body: Obj) -> Obj:
        return self._call("patch", name, body, _sub="_status")

    def delete(self, name: str) -> Obj:
        return self._call("delete", name)

    def table(self, name: str) -> Obj:
        """The object as `kubectl get` sees it: a meta.k8s.io Table with the
        CRD's printer columns."""
        return self._call("get", name, _headers={"Accept": TABLE})

    def watch(self, **kwargs: Any) -> Iterator[Obj]:
        """Watch events ({"type", "object", "raw_object"}) until the server
        ends the watch (pass timeout_seconds)."""
        if self.namespace is None:
            method: Callable[..., object] = self.api.list_cluster_custom_object
            args: tuple[str, ...] = (self.group, self.version, self.plural)
        else:
            method = self.api.list_namespaced_custom_object
            args = (self.group, self.version, self.namespace, self.plural)
        watcher = watch.Watch()  # type: ignore[no-untyped-call]
        for event in watcher.stream(method, *args, **kwargs):  # type: ignore[no-untyped-call]
            yield _obj(event)


def rejection(call: Callable[[], object]) -> tuple[int, str]:
    """Runs `call`, which must fail with an API error: (HTTP status, body)."""
    try:
        call()
    except ApiException as error:
        return error.status, error.body or ""
    raise AssertionError("the API server accepted what it should have rejected")


def crd_resource(api: client.CustomObjectsApi) -> Resource:
    """CustomResourceDefinitions themselves, as plain dicts."""
    return Resource(api, "customresourcedefinitions", group="apiextensions.k8s.io")
