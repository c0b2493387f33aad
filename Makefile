# Two entry points for a fresh machine: `make demo` and `make test`.
# Everything else here is what those two need.

VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: demo test install system-deps reliability bench model clean help

help:
	@echo "make demo   - install and run the demo (embedded broker + worker + SQLite + dashboard)"
	@echo "make test   - install everything the tests need and run them"

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# The CPU build of torch first, so the dependency resolver does not pull a CUDA build.
	$(PIP) install -q "torch==2.13.0"
	$(PIP) install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

system-deps:
	./.ci/system-deps

demo: install
	$(VENV)/bin/finsentry demo

test: install system-deps
	HF_HUB_OFFLINE=1 FINSENTRY_REQUIRE_SYSTEM_DEPS=1 $(PY) -m pytest -q -p no:cacheprovider --durations=15

reliability: install system-deps
	HF_HUB_OFFLINE=1 FINSENTRY_REQUIRE_SYSTEM_DEPS=1 $(PY) -m pytest -q tests/reliability -m reliability

bench: install
	$(PY) benchmarks/bench_model.py
	$(PY) benchmarks/bench_pipeline.py
	$(PY) benchmarks/bench_store.py

model: install
	$(VENV)/bin/pip install -q -e .[teacher]
	$(VENV)/bin/finsentry train --default

clean:
	rm -rf var build *.egg-info .pytest_cache
