"""The lab: everything tests, benchmarks and scripts use to exercise kvip. Nothing here is a test.

Why `tests/lab/`: it is test infrastructure, so it lives beside the tests and is
neither in the wheel (pyproject finds only `kvip*` and `protocol*`) nor in the
Docker image (.dockerignore admits only kvip/ and protocol/). With `tests/`,
`bench/` and `scripts/` all packages, everything imports it as
`tests.lab.<module>` from the repo root with no `sys.path` edits: pytest puts the
root on the path for a package-style suite (rootdir-based "prepend" import
mode), and benchmarks and scripts run as modules from the root
(`python -m bench.controller`, `python -m scripts.demo`). Child processes started
from here run the same way: `-m tests.lab.<module>` with the repo root as their
working directory.

Wires and processes:
- `netlab`: network namespaces, bridges and veth clients (198.18.0.0/15 only);
- `apiserver`, `apiserver_pki`, `k8s_crds`, `crs`: a local etcd + kube-apiserver,
  its credentials, the CRDs, and a typed CustomObjectsApi view;
- `kvip_rig` (the controller in-process), `kvip_process` (`kvip run` as a
  process), `poolrig` (PoolActors serving a lab), `pool_harness` (a PoolActor
  on a fake socket, and parsed PoolConfigs), `abuse_rig` (server, perfdhcp, flood);
- pytest plugins (tests/conftest.py): `fixtures_apiserver`, `e2e_world`.

Kubernetes objects: `objects` (one builder per kind: ippool, vm, vmnetcfg).

High availability (issue 12, `python -m bench.ha`): `halab` (three `kvip run`
replicas on one bridge), `haclients` (real clients kept running and watched),
`haprobe` (a scripted client timing every exchange), `hafaults` (the fault
sequence and its figures).

DHCP, from the client side:
- `leases`: the Lease every client runner returns, the env-dumping hook, and
  running a client with a hard timeout;
- `dhcpclients`: udhcpc, dhclient, dhcpcd and networkd run once;
- `dhcpsessions`: udhcpc and dhclient kept running (renew, rebind, release);
- `dhcpsend`: hand-made packets (a relayed exchange, raw broadcasts);
- `perfdhcp`: Kea's perfdhcp as a relay, and its report;
- `dhcpchecks`: what the real-client test modules share (labs, assertions);
- `dhcpservers`: dnsmasq and Kea as reference servers.

Reading packets and files: `dhcpwire` (a DHCP reader independent of kvip's
codec), `pcapfile`, `strategies` (hypothesis strategies for messages),
`deploy_manifests` and `dockerfile` (deploy/ and the Dockerfile as data).
"""
