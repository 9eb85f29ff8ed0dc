"""Run chaos scenarios outside pytest and print the counts.

    python -m tests.chaos.run --scenarios 1000      # `make chaos N=1000`
    python -m tests.chaos.run --seed 123            # replay one scenario

Starts its own API server (no watch cache, so that etcd compaction reaches
the watches as 410 Gone) and its own lab; needs root, udhcpc and the
binaries of scripts/build-apiserver.sh.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

from kubernetes import config

from tests.chaos.driver import run_scenario
from tests.chaos.results import FAULTS, Summary
from tests.chaos.rig import open_rig
from tests.lab.apiserver import ApiServer
from tests.lab.k8s_crds import KUBEVIRT_CRDS, KVIP_CRDS, install_crds


def replay_command(seed: int) -> str:
    return f"python -m tests.chaos.run --seed {seed}   (or: CHAOS_SEED={seed} pytest tests/chaos)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", type=int, default=10)
    parser.add_argument("--seed", type=int, help="replay this one scenario")
    parser.add_argument("--base-seed", type=int, help="first seed (default: random)")
    parser.add_argument(
        "--faults", help=f"comma-separated fault kinds to draw from (default: all of {FAULTS})"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print every op log")
    args = parser.parse_args(argv)
    if args.seed is not None:
        seeds = [args.seed]
    else:
        base = args.base_seed if args.base_seed is not None else random.randrange(10**6)
        seeds = list(range(base, base + args.scenarios))
    faults = {k: FAULTS[k] for k in args.faults.split(",")} if args.faults else FAULTS
    summary = Summary()
    began = time.monotonic()
    with ApiServer(watch_cache=False) as api:
        api_client = config.new_client_from_config(config_file=str(api.kubeconfig))  # type: ignore[no-untyped-call]
        with api_client:
            install_crds(api_client, KVIP_CRDS, KUBEVIRT_CRDS)
        with open_rig(api) as rig:
            for seed in seeds:
                result = run_scenario(rig, seed, faults=faults)
                summary.add(result)
                verdict = "ok" if not result.violations else "FAILED"
                print(
                    f"seed {seed}: {verdict} ({result.operations} operations, "
                    f"faults {dict(result.faults)})",
                    flush=True,
                )
                if result.violations or args.verbose:
                    print(result.report(replay_command(seed)), flush=True)
                if result.violations:
                    print(f"full report: {result.save(replay_command(seed))}", flush=True)
    print(f"--- chaos summary ({time.monotonic() - began:.0f} s)")
    print(summary.render())
    return 1 if summary.violations else 0


if __name__ == "__main__":
    sys.exit(main())
