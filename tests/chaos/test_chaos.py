"""Randomized fault scenarios against kvip as a process (see README.md here).

CHAOS_SCENARIOS scenarios run (default 50 in CI, 10 elsewhere), seeds from
CHAOS_BASE_SEED on (default fixed, so CI runs the same scripts each time);
CHAOS_SEED=N runs only scenario N (the replay a failure prints).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from kubernetes import config

from tests.chaos.driver import run_scenario
from tests.chaos.results import Summary
from tests.chaos.rig import Rig, open_rig
from tests.lab.apiserver import ApiServer
from tests.lab.e2e_world import _require_tools
from tests.lab.fixtures_apiserver import _ensure_binaries
from tests.lab.k8s_crds import KUBEVIRT_CRDS, KVIP_CRDS, install_crds

pytestmark = [pytest.mark.netns, pytest.mark.apiserver, pytest.mark.slow]

IN_CI = os.environ.get("CI", "").lower() == "true"
BASE_SEED = 7000


def seeds() -> list[int]:
    if os.environ.get("CHAOS_SEED"):
        return [int(os.environ["CHAOS_SEED"])]
    count = int(os.environ.get("CHAOS_SCENARIOS") or (50 if IN_CI else 10))
    base = int(os.environ.get("CHAOS_BASE_SEED") or BASE_SEED)
    return list(range(base, base + count))


def replay_command(seed: int) -> str:
    return f"CHAOS_SEED={seed} pytest tests/chaos   (or: python -m tests.chaos.run --seed {seed})"


@pytest.fixture(scope="module")
def chaos_rig() -> Iterator[Rig]:
    _require_tools()
    _ensure_binaries(controller_manager=False)
    # Its own API server without the watch cache: an etcd compaction then
    # reaches kvip's watches as 410 Gone, and restarting it disturbs no other test.
    with ApiServer(watch_cache=False) as api:
        api_client = config.new_client_from_config(config_file=str(api.kubeconfig))  # type: ignore[no-untyped-call]
        with api_client:
            install_crds(api_client, KVIP_CRDS, KUBEVIRT_CRDS)
        with open_rig(api) as rig:
            yield rig


def test_no_address_is_lost_or_duplicated_under_faults(chaos_rig: Rig) -> None:
    summary = Summary()
    for seed in seeds():
        result = run_scenario(chaos_rig, seed)
        summary.add(result)
        verdict = "FAILED" if result.violations else "ok"
        print(f"chaos seed {seed}: {verdict}, {result.operations} operations, "
              f"faults {dict(result.faults)}")  # fmt: skip
    print(f"\n--- chaos summary\n{summary.render()}")
    reports = [
        f"{result.report(replay_command(result.seed))}\n"
        f"full report with kvip's logs: {result.save(replay_command(result.seed))}"
        for result in summary.failed
    ]
    assert not summary.failed, "\n\n".join(reports)
    # The run must have exercised what it claims to.
    assert summary.operations >= 10 * summary.scenarios
    assert sum(summary.faults.values()) >= summary.scenarios
