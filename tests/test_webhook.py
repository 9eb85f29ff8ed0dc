"""kvip's admission webhook on the real API server: every rule refuses at the
door (an API call as `kubectl apply` makes it) with a message naming the
field, and lets the good case in; kvip writes the caBundle the API server
trusts, rotates its certificate without a refusal, and its own service
account's writes are never refused."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kvip.app import Webhook, WebhookOptions
from kvip.k8s import Kube
from tests.lab import objects
from tests.lab.apiserver import ApiServer
from tests.lab.fixtures_apiserver import create_namespace, delete_namespace, new_client
from tests.lab.kvip_rig import unique, wait_for
from tests.lab.objects import CFGS, GROUP, VERSION
from tests.lab.webhook_rig import (
    RunningWebhook,
    remove_service_account_rights,
    service_account_kubeconfig,
)

pytestmark = [pytest.mark.apiserver]

FORCE = "kubevirtiphelper.k8s.binbash.org/force"
MERGE: dict[str, Any] = {"_content_type": "application/merge-patch+json"}


@pytest.fixture(scope="module")
def kvip_account(
    apiserver: ApiServer, kube_client: client.ApiClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """kvip's service account: its user name and a kubeconfig with its token."""
    namespace = create_namespace(kube_client, prefix="kvip-webhook")
    path = tmp_path_factory.mktemp("kvip-sa") / "kubeconfig"
    user = service_account_kubeconfig(apiserver, kube_client, namespace, path)
    yield user, path
    remove_service_account_rights(kube_client, namespace)
    delete_namespace(kube_client, namespace)


@pytest.fixture(scope="module")
def webhook(
    apiserver: ApiServer, crds: list[str], kvip_account: tuple[str, Path]
) -> Iterator[RunningWebhook]:
    with RunningWebhook(apiserver, trusted_user=kvip_account[0]) as running:
        yield running


@pytest.fixture
def pools(custom: Any, webhook: RunningWebhook) -> Iterator[list[str]]:
    """Names of the IPPools a test made; removed afterwards (forced)."""
    names: list[str] = []
    yield names
    for name in names:
        try:
            custom.patch_cluster_custom_object(
                GROUP,
                VERSION,
                "ippools",
                name,
                {"metadata": {"annotations": {FORCE: "true"}}},
                **MERGE,
            )
            custom.delete_cluster_custom_object(GROUP, VERSION, "ippools", name)
        except ApiException as exc:
            if exc.status != 404:
                raise


def _pool(webhook: RunningWebhook, name: str, network: str, **fields: Any) -> dict[str, Any]:
    body = objects.ippool(name, network, **fields)
    body["metadata"]["labels"] = webhook.labels()
    return body


def _refused(call: Any, *args: Any, **kwargs: Any) -> str:
    """The message of the refusal `call` must get from the webhook."""
    with pytest.raises(ApiException) as refused:
        call(*args, **kwargs)
    body = str(refused.value.body)
    assert refused.value.status == 403, body
    assert "admission webhook" in body and "denied the request" in body, body
    return body


def _create(custom: Any, pools: list[str], body: dict[str, Any]) -> None:
    custom.create_cluster_custom_object(GROUP, VERSION, "ippools", body)
    pools.append(body["metadata"]["name"])


def test_kvip_writes_the_ca_bundle_that_the_api_server_trusts(
    webhook: RunningWebhook, custom: Any, pools: list[str]
) -> None:
    assert webhook.webhook.credentials is not None
    # Created without one: kvip wrote it.
    assert webhook.ca_bundles() == [webhook.webhook.credentials.ca_pem] * 2
    # The API server reached the webhook over TLS and got its answer.
    reversed_range = _pool(webhook, unique("pool"), "ns/a", start="198.18.0.9", end="198.18.0.1")
    _refused(custom.create_cluster_custom_object, GROUP, VERSION, "ippools", reversed_range)


def test_kvip_puts_its_ca_back_when_the_bundle_loses_it(
    webhook: RunningWebhook, custom: Any, pools: list[str]
) -> None:
    """An operator re-applies the configuration with an empty caBundle: kvip
    writes its CA back (every `recheck`), and the API server trusts it again."""
    assert webhook.webhook.credentials is not None
    ca = webhook.webhook.credentials.ca_pem
    config = webhook.registration.read_validating_webhook_configuration(webhook.name)
    for hook in config.webhooks or []:
        hook.client_config.ca_bundle = None
    webhook.registration.replace_validating_webhook_configuration(webhook.name, config)
    wait_for(lambda: webhook.ca_bundles() == [ca, ca], what="the caBundle written again")
    body = _pool(webhook, unique("pool"), "ns/c", router="10.0.0.1")
    message = _refused(custom.create_cluster_custom_object, GROUP, VERSION, "ippools", body)
    assert "spec.ipv4config.router" in message


def test_ippools_against_the_range_rules_are_refused(
    webhook: RunningWebhook, custom: Any, pools: list[str]
) -> None:
    network = f"ns/{unique('net')}"
    for fields, named in [
        ({"start": "198.18.0.250", "end": "198.18.0.10"},
         "spec.ipv4config.pool.start 198.18.0.250 is after spec.ipv4config.pool.end"),
        ({"end": "198.19.0.1"}, "spec.ipv4config.pool.end 198.19.0.1 is outside the subnet"),
        ({"server": "10.0.0.1"}, "spec.ipv4config.serverip 10.0.0.1 is outside the subnet"),
        ({"router": "10.0.0.1"}, "spec.ipv4config.router 10.0.0.1 is outside the subnet"),
    ]:  # fmt: skip
        body = _pool(webhook, unique("pool"), network, **fields)
        message = _refused(custom.create_cluster_custom_object, GROUP, VERSION, "ippools", body)
        assert named in message
    _create(custom, pools, _pool(webhook, unique("pool"), network))


def test_a_second_pool_on_a_network_is_refused(
    webhook: RunningWebhook, custom: Any, pools: list[str]
) -> None:
    network = f"ns/{unique('net')}"
    first = unique("pool")
    _create(custom, pools, _pool(webhook, first, network, start="198.18.0.10", end="198.18.0.99"))
    overlapping = _pool(webhook, unique("pool"), network, start="198.18.0.50", end="198.18.0.150")
    message = _refused(custom.create_cluster_custom_object, GROUP, VERSION, "ippools", overlapping)
    assert f"spec.ipv4config.pool 198.18.0.50-198.18.0.150 overlaps IPPool {first}" in message
    apart = _pool(webhook, unique("pool"), network, start="198.18.0.100", end="198.18.0.150")
    message = _refused(custom.create_cluster_custom_object, GROUP, VERSION, "ippools", apart)
    assert f"spec.networkname {network} is already served by IPPool {first}" in message
    # The same range on another network is fine.
    elsewhere = _pool(webhook, unique("pool"), f"ns/{unique('net')}", start="198.18.0.50")
    _create(custom, pools, elsewhere)


def _record(webhook: RunningWebhook, namespace: str, network: str, ip: str) -> dict[str, Any]:
    cfg = objects.vmnetcfg("vm", [(network, "52:54:00:00:77:01", ip)], namespace=namespace)
    cfg["metadata"]["labels"] = webhook.labels()
    admin: Any = client.CustomObjectsApi(webhook.admin)
    created: dict[str, Any] = admin.create_namespaced_custom_object(
        GROUP, VERSION, namespace, CFGS, cfg
    )
    return created


def test_an_update_that_strands_a_reservation_is_refused_unless_forced(
    webhook: RunningWebhook, custom: Any, pools: list[str], namespace: str
) -> None:
    network, name = f"{namespace}/net", unique("pool")
    _create(custom, pools, _pool(webhook, name, network))
    _record(webhook, namespace, network, "198.18.0.200")
    narrower = {"spec": {"ipv4config": {"pool": {"start": "198.18.0.10", "end": "198.18.0.99"}}}}
    message = _refused(
        custom.patch_cluster_custom_object, GROUP, VERSION, "ippools", name, narrower, **MERGE
    )
    assert (
        f"{namespace}/vm 198.18.0.200 (it is after spec.ipv4config.pool.end 198.18.0.99)" in message
    )
    assert FORCE in message
    excluded = {"spec": {"ipv4config": {"pool": {"exclude": ["198.18.0.200"]}}}}
    message = _refused(
        custom.patch_cluster_custom_object, GROUP, VERSION, "ippools", name, excluded, **MERGE
    )
    assert "spec.ipv4config.pool.exclude" in message
    # Widening keeps it; forcing lets the narrowing in.
    wider = {"spec": {"ipv4config": {"pool": {"start": "198.18.0.5", "end": "198.18.0.250"}}}}
    custom.patch_cluster_custom_object(GROUP, VERSION, "ippools", name, wider, **MERGE)
    forced = {**narrower, "metadata": {"annotations": {FORCE: "true"}}}
    pool = custom.patch_cluster_custom_object(GROUP, VERSION, "ippools", name, forced, **MERGE)
    assert pool["spec"]["ipv4config"]["pool"]["end"] == "198.18.0.99"


def test_deleting_a_pool_with_reservations_is_refused_unless_forced(
    webhook: RunningWebhook, custom: Any, pools: list[str], namespace: str
) -> None:
    network, name, empty = f"{namespace}/net", unique("pool"), unique("pool")
    _create(custom, pools, _pool(webhook, name, network))
    _create(custom, pools, _pool(webhook, empty, f"{namespace}/other"))
    _record(webhook, namespace, network, "198.18.0.20")
    message = _refused(custom.delete_cluster_custom_object, GROUP, VERSION, "ippools", name)
    assert f"IPPool {name} still holds 1 reservations" in message
    assert f"{namespace}/vm 198.18.0.20" in message
    custom.delete_cluster_custom_object(GROUP, VERSION, "ippools", empty)
    annotate = {"metadata": {"annotations": {FORCE: "true"}}}
    custom.patch_cluster_custom_object(GROUP, VERSION, "ippools", name, annotate, **MERGE)
    custom.delete_cluster_custom_object(GROUP, VERSION, "ippools", name)


def test_moving_a_nics_address_is_refused_except_to_kvip(
    webhook: RunningWebhook, kvip_account: tuple[str, Path], custom: Any, namespace: str
) -> None:
    cfg = _record(webhook, namespace, f"{namespace}/net", "198.18.0.20")
    nic = cfg["spec"]["networkconfig"][0]
    moved = {"spec": {"networkconfig": [{**nic, "ipaddress": "198.18.0.21"}]}}
    args = (GROUP, VERSION, namespace, CFGS, "vm")
    message = _refused(custom.patch_namespaced_custom_object, *args, moved, **MERGE)
    assert "spec.networkconfig[].ipaddress" in message
    assert (
        f"the NIC 52:54:00:00:77:01 on {namespace}/net from 198.18.0.20 to 198.18.0.21" in message
    )
    # An edit that moves nothing is let in.
    other = {"networkname": "n2", "macaddress": "52:54:00:00:77:02"}
    added = {"spec": {"networkconfig": [nic, other]}}
    custom.patch_namespaced_custom_object(*args, added, **MERGE)
    # kvip rewrites vmnetcfgs itself: its own service account is never refused.
    with new_client_from(kvip_account[1]) as kvip:
        own: Any = client.CustomObjectsApi(kvip)
        written = own.patch_namespaced_custom_object(*args, moved, **MERGE)
    assert written["spec"]["networkconfig"][0]["ipaddress"] == "198.18.0.21"


V6 = "spec.ipv6config"


def _dual_stack(webhook: RunningWebhook, name: str, network: str) -> dict[str, Any]:
    body = _pool(webhook, name, network)
    body["spec"]["ipv6config"] = {
        "subnet": "2001:db8:1::/64",
        "pool": {"start": "2001:db8:1::10", "end": "2001:db8:1::ffff"},
    }
    return body


def _record6(webhook: RunningWebhook, namespace: str, network: str) -> dict[str, Any]:
    cfg = objects.vmnetcfg(
        "vm", [(network, "52:54:00:00:77:01", "198.18.0.20")], namespace=namespace
    )
    cfg["spec"]["networkconfig"][0]["ipv6address"] = "2001:db8:1::200"
    cfg["metadata"]["labels"] = webhook.labels()
    admin: Any = client.CustomObjectsApi(webhook.admin)
    created: dict[str, Any] = admin.create_namespaced_custom_object(
        GROUP, VERSION, namespace, CFGS, cfg
    )
    return created


def test_an_update_that_strands_an_ipv6_reservation_is_refused_unless_forced(
    webhook: RunningWebhook, custom: Any, pools: list[str], namespace: str
) -> None:
    network, name = f"{namespace}/net", unique("pool")
    _create(custom, pools, _dual_stack(webhook, name, network))
    _record6(webhook, namespace, network)
    narrower = {"spec": {"ipv6config": {"pool": {"end": "2001:db8:1::1ff"}}}}
    args = (GROUP, VERSION, "ippools", name)
    message = _refused(custom.patch_cluster_custom_object, *args, narrower, **MERGE)
    assert f"{namespace}/vm 2001:db8:1::200 (it is after {V6}.pool.end 2001:db8:1::1ff)" in message
    assert "198.18.0.20" not in message
    forced = {**narrower, "metadata": {"annotations": {FORCE: "true"}}}
    pool = custom.patch_cluster_custom_object(*args, forced, **MERGE)
    assert pool["spec"]["ipv6config"]["pool"]["end"] == "2001:db8:1::1ff"


def test_moving_a_nics_ipv6_address_is_refused(
    webhook: RunningWebhook, custom: Any, namespace: str
) -> None:
    cfg = _record6(webhook, namespace, f"{namespace}/net")
    nic = cfg["spec"]["networkconfig"][0]
    moved = {"spec": {"networkconfig": [{**nic, "ipv6address": "2001:db8:1::201"}]}}
    args = (GROUP, VERSION, namespace, CFGS, "vm")
    message = _refused(custom.patch_namespaced_custom_object, *args, moved, **MERGE)
    assert "spec.networkconfig[].ipv6address" in message
    assert f"on {namespace}/net from 2001:db8:1::200 to 2001:db8:1::201" in message


def new_client_from(kubeconfig: Path) -> client.ApiClient:
    from kubernetes import config

    api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig)
    )
    return api


def test_a_rotated_certificate_is_published_and_served(
    webhook: RunningWebhook, custom: Any, pools: list[str]
) -> None:
    before = webhook.webhook.credentials
    assert before is not None
    webhook.run_in_loop(webhook.webhook.rotate)
    after = webhook.webhook.credentials
    assert after is not None and after.ca_pem != before.ca_pem
    # The new CA in, the replaced one out.
    assert webhook.ca_bundles() == [after.ca_pem] * 2
    body = _pool(webhook, unique("pool"), "ns/b", server="10.0.0.1")
    message = _refused(custom.create_cluster_custom_object, GROUP, VERSION, "ippools", body)
    assert "spec.ipv4config.serverip" in message


def test_a_missing_configuration_is_reported_once(
    apiserver: ApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    """kvip run with the webhook on but no ValidatingWebhookConfiguration: one
    ERROR that says what is missing, then the retries at DEBUG (no log storm)."""
    options = WebhookOptions(
        port=0, address="127.0.0.1", hosts=("127.0.0.1",), configuration=unique("absent"),
        trusted_user="kvip", recheck=0.05,
    )  # fmt: skip
    kube = Kube(new_client(apiserver))
    cannot = "cannot update the caBundle of ValidatingWebhookConfiguration"

    def said(level: int) -> int:
        return sum(r.levelno == level and cannot in r.getMessage() for r in caplog.records)

    async def main() -> None:
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                await nursery.start(Webhook(kube, options).run)
                while said(logging.DEBUG) < 3:
                    await trio.sleep(0.05)
                nursery.cancel_scope.cancel()

    caplog.set_level(logging.DEBUG, logger="kvip.app._webhook")
    try:
        trio.run(main)
    finally:
        kube.close()
    assert said(logging.ERROR) == 1
    assert "deploy/components/webhook" in caplog.text
