"""deploy/monitoring: the PrometheusRule's alerts pass their promtool unit tests,
name only metrics (and label values) that kvip exports, and the ServiceMonitor
scrapes the kvip-metrics Service.

promtool is Debian's `prometheus` package (scripts/install-system-deps.sh,
`make deps`); without it the promtool test skips, which fails under CI=true
(tests/conftest.py).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.registry import CollectorRegistry

from kvip.actors import PoolActor
from kvip.actors._status_render import NicStatus
from kvip.actors._supervisor import PoolHandle
from kvip.actors._vm_state import VmState
from kvip.app._metrics import LogCounter, registry_for
from kvip.k8s import ApiHealth
from tests.lab.deploy_manifests import (
    BASE,
    DEPLOY,
    KubectlMissing,
    find,
    kubectl_path,
    kustomize,
)
from tests.lab.deploy_manifests import load as manifests
from tests.lab.pool_harness import FakeSocketFactory, pool_config
from tests.test_metrics import controller_like

MONITORING = DEPLOY / "monitoring"
RULE = MONITORING / "prometheusrule.yaml"
SERVICE_MONITOR = MONITORING / "servicemonitor.yaml"
UNIT_TESTS = Path(__file__).parent / "fixtures" / "monitoring" / "alerts-test.yaml"
README = DEPLOY.parent / "README.md"


def load(path: Path) -> Any:
    with open(path) as file:
        return yaml.safe_load(file)


def rules() -> list[dict[str, Any]]:
    rule = load(RULE)
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def alerts() -> list[str]:
    return [rule["alert"] for rule in rules()]


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool not found: install Debian's prometheus package (make deps)")
    return found


def test_the_alerts_pass_their_promtool_unit_tests(promtool: str, tmp_path: Path) -> None:
    """The rule groups as Prometheus loads them from the PrometheusRule, checked
    and then run against the unit tests' series."""
    groups = load(RULE)["spec"]["groups"]
    (tmp_path / "kvip-rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    shutil.copy(UNIT_TESTS, tmp_path / UNIT_TESTS.name)
    for args in (["check", "rules", "kvip-rules.yaml"], ["test", "rules", UNIT_TESTS.name]):
        result = subprocess.run(
            [promtool, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120,
            check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_quiet() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in load(UNIT_TESTS)["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert set(alerts()) == firing == quiet
    assert len(alerts()) == len(set(alerts())) == 6


def replica_registry() -> CollectorRegistry:
    """A replica's registry with a pool, NICs OK and in ERROR, the API server's health."""
    actor = PoolActor(pool_config(), socket_factory=FakeSocketFactory())
    handle = PoolHandle(actor.name, config=actor.config, actor=actor)
    states = {
        "ns/vm1": VmState(nics=[NicStatus("ns/a", "02:00:00:00:00:01", True, "", ip="1.2.3.4")]),
        "ns/vm2": VmState(nics=[NicStatus("ns/a", "02:00:00:00:00:02", False, "declined")]),
    }
    controller = controller_like(pools={actor.name: handle}, states=states)
    return registry_for(controller=lambda: controller, elector=None, logs=LogCounter(),
                        health=ApiHealth())  # fmt: skip


def exported() -> dict[str, list[dict[str, str]]]:
    """Sample name -> the label sets kvip exports it with."""
    found: dict[str, list[dict[str, str]]] = {}
    for family in replica_registry().collect():
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample.labels)
    return found


SELECTOR = re.compile(r"\b((?:kvip|kubevirtiphelper)_\w+)(?:\{([^}]*)\})?")
MATCHER = re.compile(r'(\w+)\s*=\s*"([^"]*)"')


def test_the_rules_name_only_metrics_and_label_values_kvip_exports() -> None:
    samples = exported()
    named = 0
    for rule in rules():
        for name, matchers in SELECTOR.findall(rule["expr"]):
            named += 1
            assert name in samples, f"{rule['alert']}: kvip exports no {name}"
            for label, value in MATCHER.findall(matchers):
                assert any(labels.get(label) == value for labels in samples[name]), (
                    f'{rule["alert"]}: no {name} with {label}="{value}"'
                )
    assert named >= len(rules())


def test_the_service_monitor_scrapes_the_metrics_service() -> None:
    monitor = load(SERVICE_MONITOR)
    service = find(manifests(BASE / "service.yaml"), "Service", "kvip-metrics")
    assert (monitor["apiVersion"], monitor["kind"]) == (
        "monitoring.coreos.com/v1",
        "ServiceMonitor",
    )
    spec = monitor["spec"]
    assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert service["metadata"]["namespace"] in spec["namespaceSelector"]["matchNames"]
    ports = {port["name"] for port in service["spec"]["ports"]}
    assert [(e["port"], e["path"]) for e in spec["endpoints"]] == [("metrics", "/metrics")]
    assert spec["endpoints"][0]["port"] in ports


def test_deploy_monitoring_renders_with_kustomize() -> None:
    try:
        kubectl_path()
    except KubectlMissing as exc:
        pytest.skip(str(exc))
    rendered = kustomize(MONITORING)
    assert sorted((o["kind"], o["metadata"]["namespace"]) for o in rendered) == [
        ("PrometheusRule", "kvip-system"),
        ("ServiceMonitor", "kvip-system"),
    ]


def test_the_readme_lists_every_alert() -> None:
    text = README.read_text()
    section = text[text.index("### Alerts") :]
    section = section[: section.index("\n#", 1)]
    listed = re.findall(r"^- `(Kvip\w+)`", section, flags=re.MULTILINE)
    assert listed == alerts()


def test_the_readme_metrics_table_lists_every_kvip_metric() -> None:
    families = {
        family.name + ("_total" if family.type == "counter" else "")
        for family in replica_registry().collect()
        if family.name.startswith(("kvip_", "kubevirtiphelper_"))
    }
    text = README.read_text()
    table = text[text.index("| metric | labels | meaning |") :].split("\n\n")[0]
    listed = set(re.findall(r"^\| `((?:kvip|kubevirtiphelper)_\w+)`", table, flags=re.MULTILINE))
    assert listed == families
