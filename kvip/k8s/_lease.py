"""coordination.k8s.io/v1 Leases, as dicts, for leader election."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, cast

from kubernetes import client

from kvip.k8s._client import Body, Kube
from kvip.k8s._errors import translate


class Leases:
    """get/create/replace of Lease objects, with resourceVersion preconditions.

    Each request times out after `request_timeout` seconds (default: the
    Kube's), raising `Unavailable`."""

    def __init__(self, kube: Kube, *, request_timeout: float | None = None) -> None:
        self.kube = kube
        self.api = client.CoordinationV1Api(kube.api_client)
        self.request_timeout = kube.request_timeout if request_timeout is None else request_timeout

    def _call(self, fn: Callable[..., Any], *args: Any) -> Body:
        try:
            response = fn(*args, _preload_content=False, _request_timeout=self.request_timeout)
        except Exception as exc:
            raise translate(exc) from exc
        body: Body = json.loads(response.data)
        return body

    def get(self, namespace: str, name: str) -> Body:
        return self._call(self.api.read_namespaced_lease, name, namespace)

    def create(self, namespace: str, body: Body) -> Body:
        # The client serializes a dict as it is.
        return self._call(self.api.create_namespaced_lease, namespace, cast(Any, body))

    def replace(self, namespace: str, body: Body) -> Body:
        """PUT with the body's resourceVersion: Conflict when someone else wrote first."""
        name = body["metadata"]["name"]
        return self._call(self.api.replace_namespaced_lease, name, namespace, cast(Any, body))
