"""kvip's admission webhook, running for tests against the local API server.

`RunningWebhook` runs `kvip.app.Webhook` in a trio loop of its own thread,
registers a ValidatingWebhookConfiguration that sends the API server's
AdmissionReviews for objects labelled `LABEL=<its id>` to it (so the other
tests sharing the API server are never judged), with failurePolicy Fail and
no caBundle: the webhook writes that itself. `service_account_kubeconfig`
makes an identity that kvip trusts.
"""

from __future__ import annotations

import base64
import threading
import uuid
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import trio
from kubernetes import client

from kvip.app import Webhook, WebhookOptions
from kvip.k8s import GROUP, Kube
from tests.lab.apiserver import ApiServer
from tests.lab.apiserver_pki import write_kubeconfig
from tests.lab.fixtures_apiserver import new_client

LABEL = "kvip-test/webhook"
CFGS = "virtualmachinenetworkconfigs"


def webhook_configuration(
    name: str, selector: str, *, url: str = "https://127.0.0.1:1/validate"
) -> dict[str, Any]:
    """kvip's webhooks for objects labelled LABEL=`selector`, at `url`, no caBundle."""

    def hook(kind: str, resource: str, operations: list[str]) -> dict[str, Any]:
        return {
            "name": f"{kind}.{GROUP}",
            "clientConfig": {"url": url},
            "rules": [
                {
                    "apiGroups": [GROUP],
                    "apiVersions": ["v1"],
                    "resources": [resource],
                    "operations": operations,
                }
            ],
            "objectSelector": {"matchLabels": {LABEL: selector}},
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 10,
        }

    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            hook("ippools", "ippools", ["CREATE", "UPDATE", "DELETE"]),
            hook("vmnetcfgs", CFGS, ["UPDATE"]),
        ],
    }


class RunningWebhook:
    """The webhook serving on 127.0.0.1, and its configuration registered."""

    def __init__(
        self, api: ApiServer, *, trusted_user: str, switch_delay: float = 2.0, recheck: float = 0.5
    ) -> None:
        self.id = uuid.uuid4().hex[:8]
        self.name = f"kvip-test-{self.id}"
        #: The label (key, value) that puts an object under this webhook.
        self.label = (LABEL, self.id)
        self.admin = new_client(api)
        self.registration = client.AdmissionregistrationV1Api(self.admin)
        self.kube = Kube(new_client(api))
        options = WebhookOptions(
            port=0, address="127.0.0.1", hosts=("127.0.0.1",), configuration=self.name,
            trusted_user=trusted_user, lifetime=timedelta(hours=1), switch_delay=switch_delay,
            recheck=recheck,
        )  # fmt: skip
        self.webhook = Webhook(self.kube, options)
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._started = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="webhook", daemon=True)

    def labels(self) -> dict[str, str]:
        return {LABEL: self.id}

    def ca_bundles(self) -> list[bytes]:
        """The PEM caBundle of each webhook of the configuration, as stored."""
        body = self.registration.read_validating_webhook_configuration(self.name)
        return [
            base64.b64decode(hook.client_config.ca_bundle or "") for hook in body.webhooks or []
        ]

    def _serve(self) -> None:
        async def main() -> None:
            self._token = trio.lowlevel.current_trio_token()
            with trio.CancelScope() as self._scope:
                async with trio.open_nursery() as nursery:
                    await nursery.start(self.webhook.run)
                    self._started.set()

        try:
            trio.run(main)
        except BaseException as exc:
            self._failure = exc
        finally:
            self._started.set()

    def run_in_loop(self, fn: Any, *args: Any) -> Any:
        """Run the async `fn(*args)` in the webhook's trio loop and return its result."""
        assert self._token is not None
        return trio.from_thread.run(fn, *args, trio_token=self._token)

    def __enter__(self) -> RunningWebhook:
        self.registration.create_validating_webhook_configuration(
            # Port 1 until the webhook has bound its own.
            cast(Any, webhook_configuration(self.name, self.id))
        )
        try:
            self._thread.start()
            self._started.wait(60)
            if self._failure is not None or self.webhook.bound_port is None:
                raise RuntimeError(f"the webhook did not start: {self._failure!r}")
            url = f"https://127.0.0.1:{self.webhook.bound_port}/validate"
            body = self.registration.read_validating_webhook_configuration(self.name)
            for hook in body.webhooks or []:
                hook.client_config.url = url
            self.registration.replace_validating_webhook_configuration(self.name, body)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None and self._scope is not None:
            scope = self._scope
            trio.from_thread.run_sync(scope.cancel, trio_token=self._token)
        self._thread.join(30)
        try:
            self.registration.delete_validating_webhook_configuration(self.name)
        except client.ApiException as error:
            if error.status != 404:
                raise
        self.kube.close()
        self.admin.close()  # type: ignore[no-untyped-call]


def service_account_kubeconfig(
    api: ApiServer, admin: client.ApiClient, namespace: str, path: Path
) -> str:
    """A ServiceAccount 'kvip' in `namespace` that may edit vmnetcfgs, a
    kubeconfig with its token at `path`; returns its user name. Its
    ClusterRole and binding are named after the namespace: see
    `remove_service_account_rights`."""
    core = client.CoreV1Api(admin)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="kvip"))
    )
    # Cluster-wide, as deploy/base/rbac.yaml grants kvip; named after the namespace.
    rbac = client.RbacAuthorizationV1Api(admin)
    verbs = ["get", "update", "patch"]
    rule = client.V1PolicyRule(api_groups=[GROUP], resources=[CFGS], verbs=verbs)
    meta = client.V1ObjectMeta(name=namespace)
    rbac.create_cluster_role(client.V1ClusterRole(metadata=meta, rules=[rule]))
    subject = client.RbacV1Subject(kind="ServiceAccount", name="kvip", namespace=namespace)
    role = client.V1RoleRef(
        api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=namespace
    )
    binding = client.V1ClusterRoleBinding(metadata=meta, role_ref=role, subjects=[subject])
    rbac.create_cluster_role_binding(binding)
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
    )
    token = core.create_namespaced_service_account_token("kvip", namespace, request)
    assert token.status is not None
    write_kubeconfig(path, url=api.url, ca_file=api.ca_file, token=str(token.status.token))
    return f"system:serviceaccount:{namespace}:kvip"


def remove_service_account_rights(admin: client.ApiClient, namespace: str) -> None:
    rbac = client.RbacAuthorizationV1Api(admin)
    for delete in (rbac.delete_cluster_role_binding, rbac.delete_cluster_role):
        try:
            delete(namespace)
        except client.ApiException as error:
            if error.status != 404:
                raise
