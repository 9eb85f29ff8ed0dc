"""kvip's validating admission webhook: HTTPS for the API server's AdmissionReviews.

The decisions are `kvip.serving.review_ippool` and `review_vmnetcfg`; this
module reads what they need from the API (every IPPool and every vmnetcfg,
per IPPool request: pools change rarely, and a stale cache would judge
wrongly), answers, and keeps the TLS credentials and the caBundle of kvip's
ValidatingWebhookConfiguration current (see `_certs`).

Requests from `trusted_user` (kvip's own service account) are always
allowed: the controller rewrites vmnetcfgs itself. When an answer cannot be
given (the API server cannot be read), the webhook answers 500 and the
configuration's failurePolicy decides.
"""

from __future__ import annotations

import base64
import json
import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import trio

from kvip.app._certs import (
    DEFAULT_LIFETIME,
    Credentials,
    issue,
    merged_bundle,
    renewal_due,
    server_context,
    utc_now,
)
from kvip.k8s import IPPOOLS, VMNETCFGS, Kube, KubeError, WebhookConfiguration
from kvip.k8s._bodies import network_key, normalize_mac, object_key, vmnetcfg_records
from kvip.serving import Recorded, Verdict, admission_response, review_ippool, review_vmnetcfg

log = logging.getLogger(__name__)

#: An AdmissionReview holds the object twice (old and new); a big pool's status is MBs.
MAX_REQUEST = 64 * 1024 * 1024
REQUEST_TIMEOUT = 10.0
#: Between a new CA in the caBundle and serving with a certificate it signed:
#: time for the API server to see the new bundle.
SWITCH_DELAY = 10.0
#: After a failed caBundle update, the next try.
RETRY_DELAY = 30.0
RECHECK = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookOptions:
    port: int = 9443
    address: str = "0.0.0.0"
    #: Names (and addresses) the API server reaches the webhook by: the
    #: serving certificate's subject alternative names.
    hosts: tuple[str, ...]
    #: The ValidatingWebhookConfiguration whose caBundle kvip keeps; None: none.
    configuration: str | None = "kvip"
    #: `userInfo.username` of kvip itself, never refused.
    trusted_user: str
    lifetime: timedelta = DEFAULT_LIFETIME
    switch_delay: float = SWITCH_DELAY
    #: Seconds between checks that this replica's CA is still in the caBundle.
    recheck: float = RECHECK


SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


def own_user(namespace: str, *, token_file: str = SERVICE_ACCOUNT_TOKEN) -> str:
    """kvip's own `userInfo.username`: the subject of the pod's service-account
    token, else the service account 'kvip' of `namespace` (deploy/'s)."""
    try:
        with open(token_file) as file:
            payload = file.read().strip().split(".")[1]
        subject = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"]
    except (OSError, IndexError, ValueError, KeyError, TypeError):
        return f"system:serviceaccount:{namespace}:kvip"
    return str(subject)


def service_hosts(service: str, namespace: str) -> tuple[str, ...]:
    """The names the API server may use for a Service (the serving certificate's)."""
    return (
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
        f"{service}.{namespace}",
        service,
    )


class BadRequest(Exception):
    """The request is not an AdmissionReview kvip can judge."""


def _ipv6_addresses(body: Mapping[str, Any]) -> dict[tuple[str, str], str]:
    """(network, MAC) -> the `ipv6address` of each NIC that has one (the first
    entry of a NIC listed twice, as `vmnetcfg_records` reads them)."""
    namespace = str((body.get("metadata") or {}).get("namespace", "default"))
    found: dict[tuple[str, str], str] = {}
    for entry in (body.get("spec") or {}).get("networkconfig") or []:
        if not isinstance(entry, Mapping):
            continue
        mac, network, ip6 = (
            normalize_mac(entry.get("macaddress")),
            entry.get("networkname"),
            entry.get("ipv6address"),
        )
        if mac is not None and isinstance(network, str) and network and ip6:
            found.setdefault((network_key(network, namespace=namespace), mac), str(ip6))
    return found


def _records(body: Mapping[str, Any] | None) -> list[Recorded]:
    if not body:
        return []
    key = object_key(body)
    ip6 = _ipv6_addresses(body)
    return [
        Recorded(key, r.network, r.mac, r.ip, ip6.get((r.network, r.mac)))
        for r in vmnetcfg_records(body)
    ]


def _response(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class Webhook:
    """The webhook server of one replica; `run` serves until cancelled."""

    def __init__(self, kube: Kube, options: WebhookOptions) -> None:
        self.kube = kube
        self.options = options
        self.credentials: Credentials | None = None
        self._context: ssl.SSLContext | None = None
        #: The port actually bound (useful with port 0).
        self.bound_port: int | None = None
        self.configuration = (
            WebhookConfiguration(kube, options.configuration) if options.configuration else None
        )
        self._publish_failed = False

    # -- credentials ---------------------------------------------------------------------

    async def _publish(self, credentials: Credentials, *, replacing: Credentials | None) -> bool:
        """Put the CA of `credentials` into the caBundle (and the one it replaces
        out); False when the API server could not be told."""
        if self.configuration is None:
            return True
        now = utc_now()
        drop = [replacing.ca_pem] if replacing is not None else []

        def change(bundle: bytes) -> bytes:
            return merged_bundle(bundle, add=credentials.ca_pem, drop=drop, now=now)

        try:
            if await self.kube.run(self.configuration.update_ca_bundle, change):
                log.info("webhook: caBundle of %s updated", self.options.configuration)
        except KubeError as exc:
            # Until it can, the API server does not trust this replica's webhook.
            # Said once as an error, then at every retry as DEBUG: no log storm.
            log.log(
                logging.DEBUG if self._publish_failed else logging.ERROR,
                "webhook: cannot update the caBundle of ValidatingWebhookConfiguration %s "
                "(deploy/components/webhook makes it and grants the rights): %s",
                self.options.configuration,
                exc,
            )
            self._publish_failed = True
            return False
        if self._publish_failed:
            log.info("webhook: caBundle of %s is current again", self.options.configuration)
            self._publish_failed = False
        return True

    async def rotate(self) -> None:
        """New credentials: published first, served once the API server has had
        `switch_delay` to see them; then the old CA leaves the bundle."""
        old = self.credentials
        new = await trio.to_thread.run_sync(
            lambda: issue(self.options.hosts, now=utc_now(), lifetime=self.options.lifetime)
        )
        while not await self._publish(new, replacing=None):
            if old is None:
                break  # serve anyway at start-up: the caBundle follows when it can
            await trio.sleep(RETRY_DELAY)
        if old is not None:
            await trio.sleep(self.options.switch_delay)
        self._context = server_context(new)
        self.credentials = new
        log.info("webhook: serving with a certificate valid until %s", new.not_after.isoformat())
        if old is not None:
            await self._publish(new, replacing=old)

    async def _keep_current(self) -> None:
        """Renew the credentials when due; re-add this replica's CA to the
        bundle every `recheck` seconds (another replica may have pruned it, or
        an operator re-created the configuration without a caBundle)."""
        while True:
            assert self.credentials is not None
            due = renewal_due(self.credentials)
            if utc_now() >= due:
                await self.rotate()
                continue
            await trio.sleep(min(self.options.recheck, (due - utc_now()).total_seconds()))
            await self._publish(self.credentials, replacing=None)

    # -- serving -------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self.rotate()
        listeners = await trio.open_tcp_listeners(self.options.port, host=self.options.address)
        self.bound_port = listeners[0].socket.getsockname()[1]
        log.info("admission webhook on https://%s:%d/", self.options.address, self.bound_port)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._keep_current)
            task_status.started()
            await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        assert self._context is not None
        tls = trio.SSLStream(stream, self._context, server_side=True)
        try:
            with trio.move_on_after(REQUEST_TIMEOUT):
                await tls.send_all(await self._answer(tls))
        except (trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError, OSError) as exc:
            log.debug("webhook: connection failed: %s", exc)
        finally:
            await trio.aclose_forcefully(tls)

    async def _answer(self, tls: trio.SSLStream[trio.SocketStream]) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await tls.receive_some(65536)
            if not chunk or len(data) > 65536:
                return _response("400 Bad Request", b"incomplete request\n", "text/plain")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        if not lines[0].startswith("POST "):
            return _response("405 Method Not Allowed", b"POST AdmissionReviews\n", "text/plain")
        headers = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
        length = int({k.strip().lower(): v for k, v in headers.items()}.get("content-length", 0))
        if length > MAX_REQUEST:
            return _response("413 Payload Too Large", b"request too large\n", "text/plain")
        while len(body) < length:
            chunk = await tls.receive_some(min(1 << 20, length - len(body)))
            if not chunk:
                return _response("400 Bad Request", b"incomplete body\n", "text/plain")
            body += chunk
        try:
            answer = await self.review(json.loads(body))
        except (BadRequest, ValueError) as exc:
            return _response("400 Bad Request", f"{exc}\n".encode(), "text/plain")
        except KubeError as exc:
            log.error("webhook: cannot judge a request: %s", exc)
            return _response("500 Internal Server Error", f"{exc}\n".encode(), "text/plain")
        return _response("200 OK", json.dumps(answer).encode())

    async def review(self, review: Mapping[str, Any]) -> dict[str, Any]:
        """The AdmissionReview response to `review`."""
        request = review.get("request")
        if not isinstance(request, Mapping) or not isinstance(request.get("uid"), str):
            raise BadRequest("not an AdmissionReview request")
        verdict = await self._decide(request)
        what = f"{request.get('operation')} {request.get('resource', {}).get('resource')}"
        name = request.get("name")
        if not verdict.allowed:
            log.info("webhook: refused %s %s: %s", what, name, verdict.message)
        for warning in verdict.warnings:
            log.warning("webhook: %s %s by %s: %s", what, name,
                        request.get("userInfo", {}).get("username"), warning)  # fmt: skip
        return admission_response(request["uid"], verdict)

    async def _decide(self, request: Mapping[str, Any]) -> Verdict:
        user = (request.get("userInfo") or {}).get("username")
        if user == self.options.trusted_user:
            return Verdict(True)
        operation = str(request.get("operation"))
        resource = (request.get("resource") or {}).get("resource")
        new, old = request.get("object"), request.get("oldObject")
        if resource == IPPOOLS.plural:
            others: list[dict[str, Any]] = []
            if operation != "DELETE":
                others, _ = await self.kube.run(self.kube.list, IPPOOLS)
            reservations: list[Recorded] = []
            if operation in ("UPDATE", "DELETE"):
                cfgs, _ = await self.kube.run(self.kube.list, VMNETCFGS)
                reservations = [record for cfg in cfgs for record in _records(cfg)]
            return review_ippool(
                operation, new=new, old=old, others=others, reservations=reservations
            )
        if resource == VMNETCFGS.plural and operation == "UPDATE":
            return review_vmnetcfg(new=new, old_records=_records(old), new_records=_records(new))
        return Verdict(True)
