"""deploy/components/webhook: added to deploy/, it runs kvip with the webhook on,
points the API server at it through a Service, and grants kvip the one
ValidatingWebhookConfiguration it keeps; the API server accepts all of it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kvip.app import WebhookOptions
from kvip.cli import build_parser
from kvip.k8s import Kube, WebhookConfiguration
from tests.lab.apiserver import ApiServer
from tests.lab.apiserver_pki import write_kubeconfig
from tests.lab.deploy_manifests import (
    BASE,
    DEPLOY,
    NAMESPACE,
    KubectlMissing,
    Manifest,
    find,
    kubectl,
    kubectl_path,
    kustomize,
)
from tests.lab.fixtures_apiserver import new_client
from tests.lab.webhook_rig import webhook_configuration

COMPONENT = DEPLOY / "components" / "webhook"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> list[Manifest]:
    """deploy/ with the component, as a user's kustomization would have it."""
    try:
        kubectl_path()
    except KubectlMissing as exc:
        pytest.skip(str(exc))
    directory = tmp_path_factory.mktemp("with-webhook")
    (directory / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "resources": [os.path.relpath(DEPLOY, directory)],
                "components": [os.path.relpath(COMPONENT, directory)],
            }
        )
    )
    return kustomize(directory)


def test_the_component_turns_the_webhook_on(rendered: list[Manifest]) -> None:
    defaults = build_parser().parse_args(["run"])
    container = find(rendered, "Deployment", "kvip")["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item.get("value") for item in container["env"]}
    port = int(env["WEBHOOK_PORT"])
    assert {"name": "webhook", "containerPort": port, "protocol": "TCP"} in container["ports"]
    service = find(rendered, "Service", defaults.webhook_service)
    assert service["metadata"]["namespace"] == NAMESPACE
    assert service["spec"]["ports"][0]["targetPort"] == "webhook"
    config = find(rendered, "ValidatingWebhookConfiguration", defaults.webhook_configuration)
    for hook in config["webhooks"]:
        assert "caBundle" not in hook["clientConfig"]  # kvip's to write
        assert hook["clientConfig"]["service"] == {
            "name": defaults.webhook_service, "namespace": NAMESPACE,
            "path": "/validate", "port": service["spec"]["ports"][0]["port"],
        }  # fmt: skip
    hooks = config["webhooks"]
    policies = {hook["rules"][0]["resources"][0]: hook["failurePolicy"] for hook in hooks}
    assert policies == {"ippools": "Fail", "virtualmachinenetworkconfigs": "Ignore"}
    # Without the component: no webhook.
    base = find(kustomize(BASE), "Deployment", "kvip")["spec"]["template"]["spec"]
    assert "WEBHOOK_PORT" not in {item["name"] for item in base["containers"][0]["env"]}


def test_kvip_may_keep_only_its_own_configuration(rendered: list[Manifest]) -> None:
    role = find(rendered, "ClusterRole", "kvip-webhook")
    assert role["rules"] == [
        {
            "apiGroups": ["admissionregistration.k8s.io"],
            "resources": ["validatingwebhookconfigurations"],
            "resourceNames": [build_parser().parse_args(["run"]).webhook_configuration],
            "verbs": ["get", "update", "patch"],
        }
    ]
    binding = find(rendered, "ClusterRoleBinding", "kvip-webhook")
    subject = {"kind": "ServiceAccount", "name": "kvip", "namespace": NAMESPACE}
    assert binding["subjects"] == [subject]


@pytest.mark.apiserver
def test_the_api_server_accepts_the_component(
    apiserver: ApiServer, kube_client: client.ApiClient, rendered: list[Manifest]
) -> None:
    """A server-side dry run: nothing is stored (a stored configuration would
    send every IPPool of the session's other tests to a Service that is not there)."""
    try:
        client.CoreV1Api(kube_client).create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE))
        )
    except ApiException as exc:
        if exc.status != 409:
            raise
    kinds = {"Service", "ValidatingWebhookConfiguration", "ClusterRole", "ClusterRoleBinding"}
    objects = [o for o in rendered if o["kind"] in kinds or o["kind"] == "Deployment"]
    result = kubectl(
        "apply", "--dry-run=server", "-f", "-",
        kubeconfig=apiserver.kubeconfig, stdin=yaml.safe_dump_all(objects),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for applied in (
        "clusterrole.rbac.authorization.k8s.io/kvip-webhook",
        "clusterrolebinding.rbac.authorization.k8s.io/kvip-webhook",
        "service/kvip-webhook",
        "deployment.apps/kvip",
        "validatingwebhookconfiguration.admissionregistration.k8s.io/kvip",
    ):
        assert f"{applied} created (server dry run)" in result.stdout, result.stdout


@pytest.mark.apiserver
def test_the_service_account_updates_its_ca_bundle_and_nothing_else(
    apiserver: ApiServer,
    crds: list[str],
    kube_client: client.ApiClient,
    rendered: list[Manifest],
    tmp_path: Path,
) -> None:
    """deploy/'s RBAC applied for real: kvip's token writes the caBundle of the
    configuration 'kvip' (made harmless here: it selects no object) and is
    refused any other."""
    rbac = [o for o in rendered if o["kind"] in ("Namespace", "ServiceAccount")]
    rbac += [o for o in rendered if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    result = kubectl(
        "apply", "-f", "-", kubeconfig=apiserver.kubeconfig, stdin=yaml.safe_dump_all(rbac)
    )
    assert result.returncode == 0, result.stderr
    token = client.CoreV1Api(kube_client).create_namespaced_service_account_token(
        "kvip", NAMESPACE,
        client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[])),
    )  # fmt: skip
    assert token.status is not None
    kubeconfig = tmp_path / "kubeconfig"
    write_kubeconfig(
        kubeconfig, url=apiserver.url, ca_file=apiserver.ca_file, token=str(token.status.token)
    )
    registration = client.AdmissionregistrationV1Api(kube_client)
    for name in ("kvip", "kvip-other"):
        body = webhook_configuration(name, "no-object-has-this-label")
        registration.create_validating_webhook_configuration(cast(Any, body))
    kube = Kube(new_client(apiserver))
    own = Kube.connect(kubeconfig=str(kubeconfig))
    try:
        assert WebhookConfiguration(own, "kvip").update_ca_bundle(lambda _: b"pem")
        assert WebhookConfiguration(kube, "kvip").ca_bundles() == [b"pem", b"pem"]
        with pytest.raises(Exception, match="403"):
            WebhookConfiguration(own, "kvip-other").update_ca_bundle(lambda _: b"pem")
        assert WebhookConfiguration(kube, "kvip-other").ca_bundles() == [b"", b""]
    finally:
        own.close()
        kube.close()
        for name in ("kvip", "kvip-other"):
            registration.delete_validating_webhook_configuration(name)
        rbac_api = client.RbacAuthorizationV1Api(kube_client)
        rbac_api.delete_cluster_role_binding("kvip-webhook")
        rbac_api.delete_cluster_role("kvip-webhook")


def test_the_options_default_to_the_components_names() -> None:
    """WebhookOptions' own default configuration is the component's too."""
    rendered_default = build_parser().parse_args(["run"]).webhook_configuration
    assert WebhookOptions(hosts=("x",), trusted_user="u").configuration == rendered_default
