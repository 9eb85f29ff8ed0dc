"""coordination.k8s.io/v1 Leases, as dicts, for leader election and replica heartbeats."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any, cast

from kubernetes import client

from kvip.k8s._client import Body, Kube
from kvip.k8s._errors import translate


class Leases:
    """get/list/create/replace/delete of Lease objects, with resourceVersion
    preconditions.

    Each request is tried once and fails with `Unavailable` after
    `request_timeout` seconds (default: the Kube's). The Kube's client would
    retry a timed-out request three times more, each try with a whole timeout
    of its own; the leader elector retries on its own schedule and must hear
    back within its renew deadline. Hence a client of its own (the Kube's
    configuration, its own connections); `close()` closes it."""

    def __init__(self, kube: Kube, *, request_timeout: float | None = None) -> None:
        self.kube = kube
        configuration = copy.deepcopy(kube.api_client.configuration)
        configuration.retries = False
        self.api_client = client.ApiClient(configuration)
        self.api = client.CoordinationV1Api(self.api_client)
        self.request_timeout = kube.request_timeout if request_timeout is None else request_timeout

    def close(self) -> None:
        self.api_client.close()

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Body:
        try:
            response = fn(
                *args, _preload_content=False, _request_timeout=self.request_timeout, **kwargs
            )
        except Exception as exc:
            raise translate(exc) from exc
        body: Body = json.loads(response.data)
        return body

    def get(self, namespace: str, name: str) -> Body:
        return self._call(self.api.read_namespaced_lease, name, namespace)

    def list(self, namespace: str, label_selector: str) -> list[Body]:
        """The Leases in `namespace` whose labels match `label_selector`."""
        found = self._call(self.api.list_namespaced_lease, namespace, label_selector=label_selector)
        items: list[Body] = found.get("items") or []
        return items

    def create(self, namespace: str, body: Body) -> Body:
        # The client serializes a dict as it is.
        return self._call(self.api.create_namespaced_lease, namespace, cast(Any, body))

    def replace(self, namespace: str, body: Body) -> Body:
        """PUT with the body's resourceVersion: Conflict when someone else wrote first."""
        name = body["metadata"]["name"]
        return self._call(self.api.replace_namespaced_lease, name, namespace, cast(Any, body))

    def delete(self, namespace: str, name: str, *, resource_version: str | None = None) -> None:
        """Delete a Lease; with `resource_version`, only that version of it (Conflict
        when it has been written since)."""
        preconditions = client.V1Preconditions(resource_version=resource_version)
        options = client.V1DeleteOptions(preconditions=preconditions)
        self._call(self.api.delete_namespaced_lease, name, namespace, body=options)
