# hadrill — common tasks. `make help` lists them.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: help test demo features bench lint fmt sim-up clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

test: ## Run every test (the README test command)
	$(CARGO) test --workspace

demo: features ## The main job: the feature suite on the embedded cluster (the README run command)

features: ## Run the feature suite; reports go to reports/
	$(CARGO) test --test features

bench: ## Print the embedded cluster's performance figures
	$(CARGO) bench -p hadrill-sim --bench api

lint: ## rustfmt check + clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

sim-up: ## Start the embedded cluster in the foreground (kubeconfig in reports/sim.kubeconfig)
	$(CARGO) run -p hadrill -- sim up --nodes 3

clean: ## Remove build output and reports
	$(CARGO) clean
	find reports -mindepth 1 ! -name .gitkeep -delete
