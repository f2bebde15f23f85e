# Two set-up commands matter: `make demo` and `make test`. Everything else supports them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CLUSTER_DIR := .cluster

.PHONY: install control-plane cluster cluster-down test unit demo demo-down bench clean

# Idempotent: re-installs only when pyproject.toml changed since the last install.
install: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	@touch $@

# Builds etcd, kube-apiserver, kube-controller-manager and kubectl once, cached outside the repo.
control-plane:
	@BUILD_HELM=1 bash hack/build-control-plane.sh

cluster: install control-plane
	@$(PY) hack/controlplane.py up --dir $(CLUSTER_DIR)

cluster-down:
	@$(PY) hack/controlplane.py down --dir $(CLUSTER_DIR)

# The whole suite: the tests start one control plane for the session and stop it at the end.
test: install control-plane
	@$(PY) -m pytest $(PYTEST_ARGS)

# Tests that need neither the control plane nor the emulator.
unit: install
	@$(PY) -m pytest -m "not cluster and not emulator" $(PYTEST_ARGS)

demo: install control-plane
	@bash hack/demo.sh

demo-down:
	@bash hack/demo.sh down

# Figures, each next to its baseline: control-plane start, emulator throughput, operator cost at scale.
bench: install control-plane
	@$(PY) bench/controlplane_start.py
	@$(PY) bench/emulator_rps.py
	@$(PY) bench/operator_scale.py

clean: cluster-down
	rm -rf $(VENV) $(CLUSTER_DIR) .demo
