"""kvip's own ValidatingWebhookConfiguration: the caBundle its webhooks trust.

kvip reads and replaces one named object (RBAC grants get, update and patch
on that name only), as a dict: the caBundle is base64 PEM text there.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any, cast

from kubernetes import client

from kvip.k8s._client import Body, Kube
from kvip.k8s._errors import Conflict, translate

#: Tries of a read-modify-replace that lost to another replica's write.
CONFLICT_TRIES = 5


class WebhookConfiguration:
    """One admissionregistration.k8s.io/v1 ValidatingWebhookConfiguration."""

    def __init__(self, kube: Kube, name: str) -> None:
        self.kube = kube
        self.name = name
        self.api = client.AdmissionregistrationV1Api(kube.api_client)

    def _call(self, fn: Callable[..., Any], *args: Any) -> Body:
        try:
            response = fn(*args, _preload_content=False, _request_timeout=self.kube.request_timeout)
        except Exception as exc:
            raise translate(exc) from exc
        body: Body = json.loads(response.data)
        return body

    def get(self) -> Body:
        return self._call(self.api.read_validating_webhook_configuration, self.name)

    def ca_bundles(self) -> list[bytes]:
        """The PEM caBundle of each webhook, in order (empty when unset)."""
        return [
            base64.b64decode((hook.get("clientConfig") or {}).get("caBundle") or "")
            for hook in self.get().get("webhooks") or []
        ]

    def update_ca_bundle(self, change: Callable[[bytes], bytes]) -> bool:
        """Set every webhook's caBundle to `change(its bundle)`; False when
        nothing changed. Replaces with the resourceVersion read, and reads
        again when another replica wrote in between."""
        for attempt in range(CONFLICT_TRIES):
            body = self.get()
            changed = False
            for hook in body.get("webhooks") or []:
                config = hook.setdefault("clientConfig", {})
                old = base64.b64decode(config.get("caBundle") or "")
                new = change(old)
                if new != old:
                    config["caBundle"] = base64.b64encode(new).decode()
                    changed = True
            if not changed:
                return False
            try:
                self._call(
                    self.api.replace_validating_webhook_configuration, self.name, cast(Any, body)
                )
            except Conflict:
                if attempt == CONFLICT_TRIES - 1:
                    raise
                continue
            return True
        return False  # not reached: the last conflict is raised
