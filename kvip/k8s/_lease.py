"""coordination.k8s.io/v1 Leases, as dicts, for leader election."""

from __future__ import annotations

import json
from typing import Any, cast

from kubernetes import client

from kvip.k8s._client import Body, Kube
from kvip.k8s._errors import translate


def _json(response: Any) -> Body:
    data: Body = json.loads(response.data)
    return data


class Leases:
    """get/create/replace of Lease objects, with resourceVersion preconditions."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.api = client.CoordinationV1Api(kube.api_client)

    def get(self, namespace: str, name: str) -> Body:
        try:
            return _json(
                self.api.read_namespaced_lease(
                    name,
                    namespace,
                    _preload_content=False,
                    _request_timeout=self.kube.request_timeout,
                )
            )
        except Exception as exc:
            raise translate(exc) from exc

    def create(self, namespace: str, body: Body) -> Body:
        try:
            return _json(
                self.api.create_namespaced_lease(
                    namespace,
                    cast(Any, body),  # the client serializes a dict as it is
                    _preload_content=False,
                    _request_timeout=self.kube.request_timeout,
                )
            )
        except Exception as exc:
            raise translate(exc) from exc

    def replace(self, namespace: str, body: Body) -> Body:
        """PUT with the body's resourceVersion: Conflict when someone else wrote first."""
        try:
            return _json(
                self.api.replace_namespaced_lease(
                    body["metadata"]["name"],
                    namespace,
                    cast(Any, body),  # the client serializes a dict as it is
                    _preload_content=False,
                    _request_timeout=self.kube.request_timeout,
                )
            )
        except Exception as exc:
            raise translate(exc) from exc
