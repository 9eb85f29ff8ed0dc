"""The lab: everything tests, benchmarks and scripts use to exercise kvip.

Network namespaces (`netlab`), the local API server (`apiserver`), real DHCP
clients and reference servers, kvip run in-process or as a process, and the
Kubernetes object builders. Nothing here is a test.

Why `tests/lab/`: it is test infrastructure, so it lives beside the tests and
is neither shipped in the wheel (pyproject finds only `kvip*` and `protocol*`)
nor in the Docker image (.dockerignore admits only kvip/ and protocol/). With
`tests/`, `bench/` and `scripts/` all packages, everything imports it as
`tests.lab.<module>` from the repo root with no `sys.path` edits: pytest puts
the root on the path for a package-style suite (rootdir-based, "prepend"
import mode), and benchmarks and scripts run as modules from the root
(`python -m bench.controller`, `python -m scripts.demo`). Child processes
started from here run the same way: `-m tests.lab.<module>` with the repo root
as their working directory.
"""
