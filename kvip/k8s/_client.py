"""A small, typed facade over the official kubernetes client.

Every method is synchronous and blocking, as the client is; the actors call
them through `Kube.run` (a worker thread under a CapacityLimiter). Every
request carries a timeout, and every failure comes out as a `KubeError`.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar, cast

import trio
from kubernetes import client, config

from kvip.k8s._errors import Gone, KubeError, NotFound, translate
from kvip.k8s._health import ApiHealth
from kvip.k8s._resources import Resource

log = logging.getLogger(__name__)

T = TypeVar("T")
Body = dict[str, Any]
#: (Kube.list shadows the builtin inside the class.)
Bodies = list[Body]

MERGE_PATCH = "application/merge-patch+json"
#: Ordinary API calls in flight at once (watches have threads of their own).
MAX_THREADS = 8
#: Objects per LIST request (client-go's page size). Unpaged, listing 65,000 VMs
#: made the API server work longer than the request timeout before it answered.
LIST_PAGE = 500
#: Times a list starts again when its snapshot expires midway (410).
LIST_ATTEMPTS = 3


class Kube:
    """The Kubernetes API as kvip uses it: custom objects, events and leases."""

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        request_timeout: float = 30.0,
        max_threads: int = MAX_THREADS,
        health: ApiHealth | None = None,
    ) -> None:
        self.api_client = api_client
        #: Whether the API server answers: `run`, the watchers and the leader
        #: elector report their requests' outcomes here.
        self.health = health or ApiHealth()
        self.request_timeout = request_timeout
        self.list_page = LIST_PAGE
        self.custom = client.CustomObjectsApi(api_client)
        # Watches hold a thread for their whole life; ordinary calls get their own
        # pool so that a burst of writes can never starve the watches (or back).
        self.call_limiter = trio.CapacityLimiter(max_threads)

    @functools.cached_property
    def core(self) -> client.CoreV1Api:
        """Made on first use (by a worker thread, for Events): the client imports
        CoreV1Api's module and its hundreds of models lazily, which takes seconds,
        and a start-up that paid for it would serve its pools that much later."""
        return client.CoreV1Api(self.api_client)

    @functools.cached_property
    def coordination(self) -> client.CoordinationV1Api:
        """Leases, for operator commands (made on first use, like `core`)."""
        return client.CoordinationV1Api(self.api_client)

    @classmethod
    def connect(cls, *, kubeconfig: str | None = None, context: str | None = None) -> Kube:
        """In-cluster config inside a pod, else the kubeconfig (file, KUBECONFIG, ~/.kube)."""
        configuration = client.Configuration()
        if kubeconfig is None and context is None and "KUBERNETES_SERVICE_HOST" in os.environ:
            config.load_incluster_config(client_configuration=configuration)
        else:
            config.load_kube_config(
                config_file=kubeconfig, context=context, client_configuration=configuration
            )
        # Tried once: urllib3 retried a timed-out request three more times on new
        # connections (four timeouts per call); kvip's callers retry on their own.
        configuration.retries = False
        # One connection per call thread, per watch, and a few to spare: a smaller
        # pool discarded connections under a burst and opened new ones (TLS again).
        configuration.connection_pool_maxsize = MAX_THREADS + 8
        return cls(client.ApiClient(configuration))

    def close(self) -> None:
        self.api_client.close()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking call in a worker thread. Not cancellable once started:
        a request always ends within its own timeout. Its outcome (an answer, or
        an error that says whether the server answered) goes to `health`."""
        try:
            result = await trio.to_thread.run_sync(fn, *args, limiter=self.call_limiter)
        except KubeError as exc:
            self.health.observe(exc)
            raise
        self.health.succeeded()
        return result

    # -- custom objects ---------------------------------------------------------

    def _call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Body:
        try:
            result = fn(*args, _request_timeout=self.request_timeout, **kwargs)
        except Exception as exc:
            raise translate(exc) from exc
        return cast(Body, result)

    def list(
        self, resource: Resource, *, label_selector: str | None = None
    ) -> tuple[list[Body], str]:
        """All objects of a resource (all namespaces) and the list's resourceVersion,
        read in pages of `list_page` objects from one snapshot; a snapshot that
        expires midway (etcd compacted it: 410) is read again from the start."""
        for attempt in range(1, LIST_ATTEMPTS + 1):
            try:
                return self._list_pages(resource, label_selector)
            except Gone as exc:
                if attempt == LIST_ATTEMPTS:
                    raise
                log.info("listing %s: the snapshot expired midway (%s); again", resource, exc)
        raise AssertionError("unreachable")

    def _list_pages(self, resource: Resource, label_selector: str | None) -> tuple[Bodies, str]:
        kwargs: dict[str, Any] = {"limit": self.list_page}
        if label_selector:
            kwargs["label_selector"] = label_selector
        items: Bodies = []
        while True:
            body = self._call(
                self.custom.list_cluster_custom_object,
                resource.group,
                resource.version,
                resource.plural,
                **kwargs,
            )
            items.extend(cast(Bodies, body.get("items") or []))
            token = body["metadata"].get("continue")
            if not token:
                return items, str(body["metadata"]["resourceVersion"])
            kwargs["_continue"] = token

    def get(self, resource: Resource, name: str, *, namespace: str | None = None) -> Body:
        if resource.namespaced:
            return self._call(
                self.custom.get_namespaced_custom_object,
                resource.group,
                resource.version,
                namespace,
                resource.plural,
                name,
            )
        return self._call(
            self.custom.get_cluster_custom_object,
            resource.group,
            resource.version,
            resource.plural,
            name,
        )

    def create(self, resource: Resource, body: Body) -> Body:
        if resource.namespaced:
            return self._call(
                self.custom.create_namespaced_custom_object,
                resource.group,
                resource.version,
                body["metadata"]["namespace"],
                resource.plural,
                body,
            )
        return self._call(
            self.custom.create_cluster_custom_object,
            resource.group,
            resource.version,
            resource.plural,
            body,
        )

    def replace(self, resource: Resource, body: Body, *, status: bool = False) -> Body:
        """PUT the whole object; with its metadata.resourceVersion set, a stale
        copy raises Conflict instead of overwriting somebody else's change."""
        meta = body["metadata"]
        if resource.namespaced:
            fn: Callable[..., Any] = (
                self.custom.replace_namespaced_custom_object_status
                if status
                else self.custom.replace_namespaced_custom_object
            )
            return self._call(
                fn,
                resource.group,
                resource.version,
                meta["namespace"],
                resource.plural,
                meta["name"],
                body,
            )
        cluster_fn: Callable[..., Any] = (
            self.custom.replace_cluster_custom_object_status
            if status
            else self.custom.replace_cluster_custom_object
        )
        return self._call(
            cluster_fn, resource.group, resource.version, resource.plural, meta["name"], body
        )

    def patch(
        self,
        resource: Resource,
        name: str,
        patch: Body,
        *,
        namespace: str | None = None,
        status: bool = False,
    ) -> Body:
        """A JSON merge patch (RFC 7386): keys set to None are removed."""
        if resource.namespaced:
            fn: Callable[..., Any] = (
                self.custom.patch_namespaced_custom_object_status
                if status
                else self.custom.patch_namespaced_custom_object
            )
            return self._call(
                fn,
                resource.group,
                resource.version,
                namespace,
                resource.plural,
                name,
                patch,
                _content_type=MERGE_PATCH,
            )
        cluster_fn: Callable[..., Any] = (
            self.custom.patch_cluster_custom_object_status
            if status
            else self.custom.patch_cluster_custom_object
        )
        return self._call(
            cluster_fn,
            resource.group,
            resource.version,
            resource.plural,
            name,
            patch,
            _content_type=MERGE_PATCH,
        )

    def delete(self, resource: Resource, name: str, *, namespace: str | None = None) -> bool:
        """Delete an object; False when it was already gone."""
        try:
            if resource.namespaced:
                self._call(
                    self.custom.delete_namespaced_custom_object,
                    resource.group,
                    resource.version,
                    namespace,
                    resource.plural,
                    name,
                )
            else:
                self._call(
                    self.custom.delete_cluster_custom_object,
                    resource.group,
                    resource.version,
                    resource.plural,
                    name,
                )
        except NotFound:
            return False
        return True
