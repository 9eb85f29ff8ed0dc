"""HA lab (issue 12): does DHCP survive leader loss, a rolling upgrade, an API
server outage and a replica's link going down?

A Linux bridge in a network namespace is the VM network; three `kvip run`
replicas each open their sockets in a namespace of their own on it (own
address, 198.18.0.2-4), with a local etcd + kube-apiserver and short Lease
timings; the IPPool leases for 10 s. dhclient, dhcpcd and systemd-networkd
(those installed) keep their VMs' addresses for the whole run, and a scripted
client times every exchange (DORA, unicast RENEW, broadcast REBIND,
INIT-REBOOT) against a 1 s deadline. Faults, in order: SIGKILL the leader
(+ a new VM), a rolling restart, the API server hung, then stopped, the leader's link
down. Prints one row per fault window and the issue-12 targets; exit status
0 when every target is met, 1 when not, 2 when the lab cannot run.

    sudo .venv/bin/python -m bench.ha            # about 5 minutes
    sudo .venv/bin/python -m bench.ha --short    # about 2.5 minutes (CI)

Needs root (network namespaces) and the API server binaries
(scripts/build-apiserver.sh). Everything runs in namespaces it creates and
deletes, also on errors or Ctrl-C; addresses from 198.18.0.0/15 only.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

from kubernetes import config

from tests.lab.apiserver import ApiServer, missing_binaries
from tests.lab.hafaults import FULL, SHORT, Report, render, run_sequence
from tests.lab.halab import ELECTION, LEASE_TIME, open_ha_lab
from tests.lab.k8s_crds import KUBEVIRT_CRDS, KVIP_CRDS, install_crds
from tests.lab.netlab import cleanup_stale

REPO = Path(__file__).resolve().parent.parent


def commit() -> str:
    result = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or "unknown"


def run_lab(api: ApiServer, *, short: bool, log_dir: Path | None = None) -> Report:
    """The whole lab on a running API server (CRDs installed): the report."""
    with open_ha_lab(api, log_dir=log_dir) as ha:
        print(
            f"lab up: replicas {', '.join(f'{r.name}={r.address.ip}' for r in ha.replicas)}; "
            f"real clients {', '.join(w.name for w in ha.watched)}",
            flush=True,
        )
        return run_sequence(ha, SHORT if short else FULL, log=lambda s: print(s, flush=True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--short",
        action="store_true",
        help="shorter faults (API server stopped 20 s, link down 10 s), for CI",
    )
    parser.add_argument(
        "--keep-logs",
        type=Path,
        metavar="DIR",
        help="write every replica process's log to DIR (created), numbered by when it ended",
    )
    args = parser.parse_args()
    if args.keep_logs is not None:
        args.keep_logs.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        print("ha: needs root (network namespaces)", file=sys.stderr)
        return 2
    if missing := missing_binaries():
        print(f"ha: {'; '.join(missing)}", file=sys.stderr)
        return 2
    # SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C: every finally runs, so the
    # namespaces, kvip replicas, clients and the API server all go.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    cleanup_stale("kvha")
    began = time.monotonic()
    print(
        f"kvip HA lab ({'short' if args.short else 'full'}), commit {commit()}, "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{os.cpu_count()} CPUs; leasetime {LEASE_TIME} s; election {' '.join(ELECTION)}",
        flush=True,
    )
    with ApiServer() as api:
        api_client = config.new_client_from_config(config_file=str(api.kubeconfig))  # type: ignore[no-untyped-call]
        with api_client:
            install_crds(api_client, KVIP_CRDS, KUBEVIRT_CRDS)
        report = run_lab(api, short=args.short, log_dir=args.keep_logs)
    print()
    print(render(report))
    print(f"(run took {time.monotonic() - began:.0f} s)")
    return 1 if report.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
