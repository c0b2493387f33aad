# Two entry points for a fresh machine: `make demo` and `make test`.
# Everything else here is what those two need.

VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
# The tested versions of every dependency (`make constraints` rewrites it).
CONSTRAINTS ?= constraints.txt
# torch comes from PyTorch's CPU wheel index by default, so no CUDA build (several GB) is
# pulled. It is an *extra* index: a local wheel or a mirror configured for pip still wins
# when the index cannot be reached. For a CUDA build: TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
TORCH_VERSION   ?= 2.13.0
TORCH_INDEX_URL ?= https://download.pytorch.org/whl/cpu
LOCK_VENV ?= build/lock-venv

.PHONY: demo test drills lint install constraints system-deps reliability bench model clean help

help:
	@echo "make demo   - install and run the demo (embedded broker + worker + SQLite + dashboard)"
	@echo "make test   - install everything the tests need and run them"

$(STAMP): pyproject.toml setup.py $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# The CPU build of torch first, so the dependency resolver does not pull a CUDA build;
	# its own dependencies come with the next line, from the usual index.
	$(PIP) install -q --no-deps --retries 1 -c $(CONSTRAINTS) --extra-index-url "$(TORCH_INDEX_URL)" "torch==$(TORCH_VERSION)"
	$(PIP) install -q -c $(CONSTRAINTS) -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# Re-resolve pyproject.toml's ranges in a fresh environment and lock what came out.
# Run `make test` afterwards and commit constraints.txt with the change that needed it.
constraints:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install -q --no-deps --retries 1 --extra-index-url "$(TORCH_INDEX_URL)" "torch==$(TORCH_VERSION)"
	$(LOCK_VENV)/bin/pip install -q ".[test]"
	$(LOCK_VENV)/bin/python deploy/constraints.py > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)
	rm -rf $(LOCK_VENV)

system-deps:
	./.ci/system-deps

demo: install
	$(VENV)/bin/finsentry demo

# The fault drills (a few minutes each) run apart: `make drills`, which CI runs after this.
test: install system-deps lint
	HF_HUB_OFFLINE=1 FINSENTRY_REQUIRE_SYSTEM_DEPS=1 $(PY) -m pytest -q -p no:cacheprovider -m "not drill" --durations=15

drills: install system-deps
	HF_HUB_OFFLINE=1 FINSENTRY_REQUIRE_SYSTEM_DEPS=1 $(PY) -m pytest -q -p no:cacheprovider -m drill --durations=10 tests

# ruff (lint, import order, formatting) and mypy (strict on finsentry/, models/, store/ and
# the agents: pyproject.toml) before any test runs.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) deploy/typecheck.py

reliability: install system-deps
	HF_HUB_OFFLINE=1 FINSENTRY_REQUIRE_SYSTEM_DEPS=1 $(PY) -m pytest -q tests/reliability -m reliability

bench: install
	$(PY) benchmarks/bench_model.py
	$(PY) benchmarks/bench_pipeline.py
	$(PY) benchmarks/bench_store.py

model: install
	$(VENV)/bin/pip install -q -c $(CONSTRAINTS) -e .[teacher]
	$(VENV)/bin/finsentry train --default

clean:
	rm -rf var build *.egg-info .pytest_cache
