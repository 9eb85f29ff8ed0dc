"""The webhook's HTTPS door, without an API server: what it answers to a
client that trusts its CA, and that it answers 500 (the configuration's
failurePolicy then decides) when it cannot read the cluster."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable

import trio
from kubernetes import client

from kvip.app import Webhook, WebhookOptions
from kvip.k8s import Kube
from tests.lab.objects import ippool


def _unreachable_kube() -> Kube:
    configuration = client.Configuration()
    configuration.host = "https://127.0.0.1:1"  # nothing listens on port 1
    configuration.retries = False
    return Kube(client.ApiClient(configuration), request_timeout=5)


def _review(operation: str, body: dict[str, object], user: str = "someone") -> bytes:
    request = {
        "uid": "u-1", "operation": operation, "userInfo": {"username": user},
        "resource": {"group": "kubevirtiphelper.k8s.binbash.org", "version": "v1",
                     "resource": "ippools"},
        "object": body, "oldObject": body if operation != "CREATE" else None,
    }  # fmt: skip
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
    return json.dumps(review).encode()


def _with_webhook(check: Callable[[Webhook, ssl.SSLContext], None]) -> None:
    """Run `check(webhook, a client context trusting its CA)` in a thread while it serves."""
    options = WebhookOptions(
        port=0, address="127.0.0.1", hosts=("127.0.0.1",), configuration=None,
        trusted_user="system:serviceaccount:kvip-system:kvip",
    )  # fmt: skip
    kube = _unreachable_kube()
    webhook = Webhook(kube, options)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(webhook.run)
            assert webhook.credentials is not None
            trusting = ssl.create_default_context(cadata=webhook.credentials.ca_pem.decode())
            await trio.to_thread.run_sync(check, webhook, trusting)
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        kube.close()


def _post(webhook: Webhook, context: ssl.SSLContext, data: bytes) -> tuple[int, bytes]:
    url = f"https://127.0.0.1:{webhook.bound_port}/validate"
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, context=context, timeout=20) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_the_answers_of_the_door() -> None:
    def check(webhook: Webhook, context: ssl.SSLContext) -> None:
        # A CREATE reads the other pools (one pool per network): with the
        # cluster unreadable, 500, and failurePolicy decides.
        status, body = _post(webhook, context, _review("CREATE", ippool("p", "ns/n")))
        assert status == 500 and b"API server unreachable" in body
        # kvip's own writes need no read: allowed.
        own = _review("UPDATE", ippool("p", "ns/n"), "system:serviceaccount:kvip-system:kvip")
        status, body = _post(webhook, context, own)
        assert status == 200
        assert json.loads(body)["response"] == {"uid": "u-1", "allowed": True}
        status, body = _post(webhook, context, b"{not json")
        assert status == 400
        status, body = _post(webhook, context, json.dumps({"request": {}}).encode())
        assert (status, body) == (400, b"not an AdmissionReview request\n")
        plain = urllib.request.Request(f"https://127.0.0.1:{webhook.bound_port}/validate")
        try:
            urllib.request.urlopen(plain, context=context, timeout=20)
        except urllib.error.HTTPError as error:
            assert error.code == 405
        else:
            raise AssertionError("a GET was answered")

    _with_webhook(check)
