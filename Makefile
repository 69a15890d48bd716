# agora: `make demo` and `make test` bootstrap everything they need (idempotently) and then run.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.bootstrap-stamp
NODE_STAMP := node_modules/.bootstrap-stamp

# Offline Solidity: py-solc-x finds the repo's solc wrapper; Ape keeps its data inside the repo.
export SOLCX_BINARY_PATH := $(CURDIR)/tools/solc
export APE_DATA_FOLDER := $(CURDIR)/.agora/ape
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help bootstrap contracts zk demo test test-only lint fmt bench clean slither browser

help:  ## Show the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (agora needs Python 3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "error: npm not found (agora needs node 20 + npm)"; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

bootstrap: $(STAMP) $(NODE_STAMP)  ## Install the Python venv and node tools (skips what is up to date).

contracts: bootstrap  ## Compile the Solidity contracts with Ape (offline).
	$(BIN)/ape compile

demo: bootstrap contracts  ## Run the scripted economy on a fresh local chain.
	$(BIN)/agora demo

CHROMIUM := /usr/bin/chromium

browser:  ## Debian's Chromium for the dashboard browser test (installs once, as root; never a browser download).
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else echo "note: $(CHROMIUM) missing and not root: tests/registry/test_dashboard_browser.py will skip (run: sudo make browser)"; fi

lint: bootstrap  ## ruff (lint + format check), mypy strict, and the import-linter layer contracts.
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache --no-logo

fmt: bootstrap  ## Format and auto-fix.
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

zk: bootstrap  ## Build the conversion circuit and its dev trusted setup (cached in .zk-build/; minutes cold).
	$(BIN)/python -m marketplace.zk.build

test: bootstrap contracts zk browser lint test-only  ## Lint, types, and the whole test suite.

test-only:  ## The test suite alone (assumes bootstrap).
	$(BIN)/pytest

# Slither lives in its own venv: it brings solc-select, whose `solc` shim must not shadow the
# offline compiler wrapper inside the main venv.
SLITHER_VENV := .venv-slither
SLITHER := $(SLITHER_VENV)/bin/slither

$(SLITHER):
	test -x $(SLITHER_VENV)/bin/python || $(PYTHON) -m venv $(SLITHER_VENV)
	$(SLITHER_VENV)/bin/python -m pip install --quiet slither-analyzer==0.11.6

slither: $(SLITHER) $(NODE_STAMP)  ## Static analysis of contracts/ (fails on medium/high findings).
	$(SLITHER) contracts/ --solc tools/solc/solc-v0.8.28 --solc-standard-json \
	  --solc-remaps "@openzeppelin/contracts=node_modules/@openzeppelin/contracts" \
	  --filter-paths node_modules --exclude-informational --exclude-optimization --fail-medium

bench: bootstrap contracts  ## Run the benchmarks in bench/ and print their figures.
	@for b in bench/[!_]*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:  ## Remove build output and local state (keeps .venv and node_modules).
	rm -rf .build .agora .mypy_cache .ruff_cache .pytest_cache .hypothesis test-artifacts
