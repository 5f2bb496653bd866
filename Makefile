# llm-users: `make install` then `make test`. `make help` lists every target.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
PORT    ?= 9997
SOAK_MINUTES ?= 30
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: help install test test-stress test-fast test-pythons lint format docs demo simulator bench bench-quick soak clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: $(BIN)/.installed  ## create .venv with the package (editable), test tools and the browser

$(BIN)/.installed: pyproject.toml scripts/install-extras.sh scripts/install-browser.sh scripts/install-realserver.sh
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	bash scripts/install-extras.sh $(BIN)
	@touch $@

test: install  ## run the whole test suite (unit, in-process, subprocess, browser, real server), two pytest processes side by side
	$(BIN)/python scripts/run-tests.py

test-stress: install  ## the whole suite while a CPU hog keeps every core busy; must pass too
	@$(BIN)/python scripts/cpu-hog.py --seconds 1800 & hog=$$!; \
	trap 'kill $$hog' EXIT; $(BIN)/pytest -q

test-fast: install  ## unit and in-process tests only
	$(BIN)/pytest -q tests/unit tests/integration

test-pythons:  ## unit and in-process tests under Python 3.10, 3.12, 3.13 (.venv-pyX.Y each)
	MAIN_PY=$(BIN)/python bash scripts/test-pythons.sh

lint: install  ## ruff (lint + format check), mypy, and the layer contracts (import-linter)
	$(BIN)/ruff check llm_users tests bench locustfile.py docs/hooks
	$(BIN)/ruff format --check llm_users tests bench locustfile.py docs/hooks
	$(BIN)/mypy llm_users
	$(BIN)/lint-imports

format: install  ## apply ruff's formatting and safe fixes
	$(BIN)/ruff format llm_users tests bench locustfile.py docs/hooks
	$(BIN)/ruff check --fix llm_users tests bench locustfile.py docs/hooks

# NO_MKDOCS_2_WARNING: mkdocs-material's end-of-life banner says nothing about this build
docs: install  ## build the docs site (mkdocs --strict) into site/
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

demo: install  ## a short streaming test against the built-in simulator; prints the summary
	$(BIN)/python -m llm_users.demo

simulator: install  ## run the built-in simulated server on PORT (default 9997)
	$(BIN)/python -m llm_users.simulator --port $(PORT)

bench: install  ## fidelity, ingest, distributed, memory (~3 min), master at scale (~2 min), then a 30-min fault soak; not in CI
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m bench
	$(BIN)/python -m bench.master_scale
	$(BIN)/python -m bench.soak --minutes $(SOAK_MINUTES)

bench-quick: install  ## the benchmark's short form (~1 min), no soak
	$(BIN)/python -m bench --quick

soak: install  ## only the soak: SOAK_MINUTES (30) of mixed faults, memory sampled
	$(BIN)/python -m bench.soak --minutes $(SOAK_MINUTES)

clean:  ## remove the venv and caches
	rm -rf $(VENV) .venv-py3.* .pytest_cache .mypy_cache .ruff_cache reports site
