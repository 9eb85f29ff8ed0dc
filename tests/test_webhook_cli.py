"""`kvip run --webhook-port`: the options an operator gives, and the whole path
from the command line to the API server refusing a bad IPPool."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kvip.app import own_user
from kvip.cli import _webhook_options, build_parser
from tests.lab import objects
from tests.lab.apiserver import ApiServer, free_port
from tests.lab.kvip_rig import unique
from tests.lab.objects import GROUP, VERSION
from tests.lab.webhook_rig import LABEL, webhook_configuration


def test_run_help_shows_the_webhook_options() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kvip", "run", "--help"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for option in ("--webhook-port", "WEBHOOK_PORT", "--webhook-configuration", "--webhook-user"):
        assert option in result.stdout


def test_without_a_port_there_is_no_webhook() -> None:
    assert _webhook_options(build_parser().parse_args(["run"])) is None


def test_the_webhook_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAMESPACE", "kvip-system")
    args = ["run", "--webhook-port", "9443", "--webhook-host", "127.0.0.1"]
    options = _webhook_options(build_parser().parse_args(args))
    assert options is not None
    assert options.port == 9443
    assert options.hosts == (
        "kvip-webhook.kvip-system.svc",
        "kvip-webhook.kvip-system.svc.cluster.local",
        "kvip-webhook.kvip-system",
        "kvip-webhook",
        "127.0.0.1",
    )
    assert options.configuration == "kvip"
    assert options.trusted_user == "system:serviceaccount:kvip-system:kvip"
    args += ["--webhook-configuration", "", "--webhook-user", "someone"]
    options = _webhook_options(build_parser().parse_args(args))
    assert options is not None
    assert (options.configuration, options.trusted_user) == (None, "someone")


def test_kvips_own_user_is_its_tokens_subject(tmp_path: Path) -> None:
    claims = {"sub": "system:serviceaccount:infra:kvip-a", "iss": "x"}
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    token = tmp_path / "token"
    token.write_text(f"eyJhbGciOiJSUzI1NiJ9.{payload}.c2ln\n")
    assert own_user("kvip-system", token_file=str(token)) == "system:serviceaccount:infra:kvip-a"
    token.write_text("not a token")
    assert own_user("ns", token_file=str(token)) == "system:serviceaccount:ns:kvip"
    assert own_user("ns", token_file=str(tmp_path / "none")) == "system:serviceaccount:ns:kvip"


@pytest.mark.apiserver
def test_kvip_run_serves_the_webhook(
    apiserver: ApiServer, crds: list[str], kube_client: client.ApiClient, tmp_path: Path
) -> None:
    name, selector, port = unique("kvip-run"), unique("sel"), free_port()
    url = f"https://127.0.0.1:{port}/validate"
    registration = client.AdmissionregistrationV1Api(kube_client)
    registration.create_validating_webhook_configuration(
        cast(Any, webhook_configuration(name, selector, url=url))
    )
    argv = [
        sys.executable, "-m", "kvip", "run", "--kubeconfig", str(apiserver.kubeconfig),
        # No pool of this kvip: no DHCP socket, nothing else touched.
        "--pool-selector", f"kvip-test={unique('none')}", "--no-leader-elect",
        "--metrics-address", "127.0.0.1", "--metrics-port", "0",
        "--webhook-port", str(port), "--webhook-address", "127.0.0.1",
        "--webhook-host", "127.0.0.1", "--webhook-configuration", name,
    ]  # fmt: skip
    log = (tmp_path / "kvip.log").open("w")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    kvip = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    custom: Any = client.CustomObjectsApi(kube_client)
    pool = objects.ippool(unique("pool"), "ns/net", start="198.18.0.99", end="198.18.0.10")
    pool["metadata"]["labels"] = {LABEL: selector}
    try:
        deadline, refusal = time.monotonic() + 60, ""
        while not refusal:  # until kvip has published its CA and serves
            assert kvip.poll() is None, (tmp_path / "kvip.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "kvip.log").read_text()
            try:
                custom.create_cluster_custom_object(GROUP, VERSION, "ippools", pool)
            except ApiException as exc:
                if "denied the request" in str(exc.body):
                    refusal = str(exc.body)
                    continue
                time.sleep(0.2)  # not yet: the call failed, failurePolicy Fail
                continue
            custom.delete_cluster_custom_object(GROUP, VERSION, "ippools", pool["metadata"]["name"])
            pytest.fail("kvip let a reversed range in")
        assert "spec.ipv4config.pool.start 198.18.0.99 is after" in refusal
    finally:
        kvip.terminate()
        kvip.wait(30)
        log.close()
        registration.delete_validating_webhook_configuration(name)
