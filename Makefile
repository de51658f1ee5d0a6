# hadrill — common tasks. `make help` lists them.
#
# Real-cluster targets use kind-configs/, deploy/ and the same commands as the harness's kind
# provider (harness/src/cluster/kind.rs); every one of them can be run again safely.
SHELL := /bin/bash
CARGO ?= cargo
HADRILL ?= $(CARGO) run --quiet -p hadrill --

# kind cluster (`make cluster-up CLUSTER=x KIND_CONFIG=kind-configs/single-node.yaml`).
CLUSTER ?= hadrill
KIND_CONFIG ?= kind-configs/multi-node.yaml
KIND_KUBECONFIG ?= reports/kind-$(CLUSTER).kubeconfig
KUBECTL = kubectl --kubeconfig $(KIND_KUBECONFIG)
# Chaos Mesh chart (the release whose API hadrill validates against).
CHAOS_MESH_VERSION ?= 2.8.3
CHAOS_MESH_VALUES ?= deploy/chaos-mesh/values-kind.yaml
CHAOSBLADE_VERSION ?= 1.7.4
CHAOSBLADE_CHART ?= https://github.com/chaosblade-io/chaosblade-operator/releases/download/v$(CHAOSBLADE_VERSION)/chaosblade-operator-amd64-$(CHAOSBLADE_VERSION).tgz
# Project images: deploy/docker/<name>.Dockerfile builds hadrill/<name>:$(TAG).
IMAGES := test-server controller sample
TAG ?= dev
# Tag expression for `features-kind` (empty: every scenario).
FEATURE_TAGS ?=

# The exact install command of each tool (the harness prints the same: cluster/tools.rs).
HINT_docker = curl -fsSL https://get.docker.com | sh   (other systems: https://docs.docker.com/engine/install/)
HINT_kind = curl -Lo kind https://kind.sigs.k8s.io/dl/v0.33.0/kind-linux-amd64 && sudo install -m 0755 kind /usr/local/bin/kind   (other systems: https://kind.sigs.k8s.io/docs/user/quick-start/)
HINT_helm = curl -fsSL https://raw.githubusercontent.com/helm/helm/main/scripts/get-helm-3 | bash   (other systems: https://helm.sh/docs/intro/install/)
HINT_kubectl = curl -LO https://dl.k8s.io/release/v1.35.8/bin/linux/amd64/kubectl && sudo install -m 0755 kubectl /usr/local/bin/kubectl   (other systems: https://kubernetes.io/docs/tasks/tools/)

.PHONY: help build test test-under-load soak demo features bench lint fmt sim-up clean \
	cluster-up cluster-down cluster-logs chaos-mesh chaosblade images deploy features-kind features-kind-managed chaos-nightly

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-22s %s\n", $$1, $$2}'

build: ## Build every crate and test target (and the k3s provider, behind its cargo feature)
	$(CARGO) build --workspace --all-targets
	$(CARGO) check -p hadrill --features k3s

test: ## Run every test (the README test command, then the k3s provider's test behind its cargo feature)
	$(CARGO) test --workspace
	$(CARGO) test -p hadrill --features k3s --test k3s_docker_api

test-under-load: ## `cargo test --workspace` 5 times (RUNS=n) in a row while another build loads the machine
	RUNS=$(or $(RUNS),5) scripts/test-under-load.sh

# Root and iptables are required: without them the test fails rather than skips.
soak: ## Kill-at-random: 30 runs (RUNS=n) stopped by SIGINT/SIGTERM/SIGKILL while faults are in place, 0 leftovers (SEED=n replays)
	HADRILL_KILL_RUNS=$(or $(RUNS),30) $(if $(SEED),HADRILL_KILL_SEED=$(SEED)) \
		$(CARGO) test -p hadrill --test kill_at_random -- --nocapture

demo: features ## The main job: the feature suite on the embedded cluster (the README run command)

features: ## Run the feature suite; reports go to reports/
	$(CARGO) test --test features

bench: ## Print the embedded cluster's performance figures
	$(CARGO) bench -p hadrill-sim --bench api

lint: ## rustfmt check + clippy with warnings as errors (the k3s provider included)
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p hadrill --features k3s --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

sim-up: ## Start the embedded cluster in the foreground (kubeconfig in reports/sim.kubeconfig)
	$(CARGO) run -p hadrill -- sim up --nodes 3

# `require-TOOL`: stops with the install command when TOOL is not on PATH.
require-%:
	@command -v $* >/dev/null 2>&1 || { printf '%s\n' "error: \`$*\` is not installed (not found on PATH); install it with:" "  $(HINT_$*)" >&2; exit 127; }

cluster-up: require-docker require-kind ## Create the kind cluster from $(KIND_CONFIG) (reused if it exists)
	@mkdir -p reports
	@if kind get clusters 2>/dev/null | grep -qx '$(CLUSTER)'; then \
		echo "kind cluster $(CLUSTER) exists; reusing it"; \
		kind export kubeconfig --name $(CLUSTER) --kubeconfig $(KIND_KUBECONFIG); \
	else \
		kind create cluster --name $(CLUSTER) --config $(KIND_CONFIG) --kubeconfig $(KIND_KUBECONFIG) --wait 5m; \
	fi

cluster-down: require-kind ## Delete the kind cluster (nothing to do if it is gone)
	kind delete cluster --name $(CLUSTER) --kubeconfig $(KIND_KUBECONFIG)
	rm -f $(KIND_KUBECONFIG)

cluster-logs: require-kind ## Save the kind nodes' logs under reports/kind-logs/
	kind export logs reports/kind-logs --name $(CLUSTER)

chaos-mesh: require-helm require-kubectl ## Install Chaos Mesh (Helm) and wait until its webhook answers
	helm upgrade --install chaos-mesh chaos-mesh --repo https://charts.chaos-mesh.org --version $(CHAOS_MESH_VERSION) \
		--namespace chaos-mesh --create-namespace --values $(CHAOS_MESH_VALUES) \
		--kubeconfig $(KIND_KUBECONFIG) --wait --timeout 5m
	$(KUBECTL) -n chaos-mesh rollout status deployment/chaos-controller-manager --timeout 5m
	$(KUBECTL) -n chaos-mesh rollout status daemonset/chaos-daemon --timeout 5m
	@for i in $$(seq 1 60); do \
		if $(KUBECTL) create --dry-run=server -f deploy/chaos-mesh/webhook-probe.yaml >/dev/null 2>&1; then \
			echo "Chaos Mesh's webhook answers"; exit 0; \
		fi; \
		sleep 3; \
	done; \
	$(KUBECTL) create --dry-run=server -f deploy/chaos-mesh/webhook-probe.yaml; \
	echo "error: Chaos Mesh's webhook did not answer within 180 s" >&2; exit 1

# The node faults (ChaosBlade node network loss): the operator and its chaosblade-tool DaemonSet.
chaosblade: require-helm require-kubectl ## Install the chaosblade-operator (Helm) for node faults and wait for its DaemonSet
	helm upgrade --install chaosblade-operator $(CHAOSBLADE_CHART) \
		--namespace chaosblade --create-namespace --values deploy/chaosblade/values-kind.yaml \
		--kubeconfig $(KIND_KUBECONFIG) --wait --timeout 5m
	$(KUBECTL) -n chaosblade rollout status daemonset/chaosblade-tool --timeout 5m

images: require-docker require-kind ## Build the project images (deploy/docker/) and load them into the kind nodes
	@set -e; for i in $(IMAGES); do \
		echo "docker build --file deploy/docker/$$i.Dockerfile --tag hadrill/$$i:$(TAG) ."; \
		docker build --file deploy/docker/$$i.Dockerfile --tag hadrill/$$i:$(TAG) .; \
	done
	kind load docker-image --name $(CLUSTER) $(foreach i,$(IMAGES),hadrill/$(i):$(TAG))

# Its own field manager: when a feature later applies deploy/controller (field manager
# `hadrill`), the fields only the overlay sets stay, so the controller is not rolled out again.
deploy: require-kubectl ## Deploy deploy/overlays/kind and wait for the controller
	$(KUBECTL) apply --server-side --field-manager=hadrill-deploy -k deploy/overlays/kind
	$(KUBECTL) -n hadrill-system rollout status deployment/hadrill-controller --timeout 3m

# The cluster `make cluster-up` made, as the `existing` provider: hadrill only ever uses a
# context it is told to use and allowed to break.
features-kind: ## Run the feature suite on the kind cluster of `make cluster-up` (FEATURE_TAGS selects scenarios)
	$(HADRILL) run $(if $(FEATURE_TAGS),--tags '$(FEATURE_TAGS)') --cluster existing \
		--kubeconfig $(KIND_KUBECONFIG) --context kind-$(CLUSTER) --allow-context kind-$(CLUSTER)

# The harness's own `kind` provider does what cluster-up, chaos-mesh, images and deploy do
# (same files, same commands), runs the scenarios, and deletes the cluster it created, also
# on failure or Ctrl-C (KEEP=1 keeps it). It always uses the cluster name `hadrill`.
features-kind-managed: ## Let hadrill create the kind cluster, run @nightly (or FEATURE_TAGS) on it, delete it
	$(HADRILL) run --tags '$(or $(FEATURE_TAGS),@nightly)' --cluster kind --kind-config $(KIND_CONFIG) \
		$(if $(KEEP),--keep-cluster)

# Ctrl-C reaches every process of the terminal's group: the trap keeps this shell alive, after
# the step in progress has stopped, to save the logs and delete the cluster.
chaos-nightly: ## Everything end to end on kind with @nightly; reports kept, cluster deleted even on failure or Ctrl-C
	@status=0; trap 'status=130' INT TERM; \
	$(MAKE) --no-print-directory cluster-up chaos-mesh chaosblade images deploy \
		&& $(MAKE) --no-print-directory features-kind FEATURE_TAGS='@nightly' \
		|| status=$$?; \
	if [ $$status -ne 0 ]; then $(MAKE) --no-print-directory cluster-logs || true; fi; \
	$(MAKE) --no-print-directory cluster-down || true; \
	exit $$status

clean: ## Sweep leftovers (kind cluster, k3s containers, build output, reports)
	@if command -v kind >/dev/null 2>&1 && kind get clusters 2>/dev/null | grep -qx '$(CLUSTER)'; then \
		kind delete cluster --name $(CLUSTER); \
	fi
	@if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then \
		ids=$$(docker ps -aq --filter label=hadrill.io/provider=k3s); \
		if [ -n "$$ids" ]; then docker rm -f $$ids; fi; \
	fi
	rm -f $(KIND_KUBECONFIG)
	$(CARGO) clean
	find reports -mindepth 1 ! -name .gitkeep -delete
