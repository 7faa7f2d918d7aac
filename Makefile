# The README's two quick-start commands: `make demo` and `make test`.
# Both create/reuse .venv, install system packages when missing, install the project, then run.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# CPU machines pin torch to the CPU build; GPU workers: make setup CONSTRAINTS= (see README).
CONSTRAINTS ?= constraints/cpu.txt
PIP_EXTRA ?=
SYSTEM_PACKAGES := ffmpeg espeak-ng sox
# only the browser test needs these
TEST_SYSTEM_PACKAGES := chromium chromium-driver
STAMP := $(VENV)/.installed

.PHONY: setup system-deps test-system-deps demo prefect-demo test test-fast bench clean-venv lint

setup: system-deps $(STAMP)

system-deps:
	@scripts/install-system-deps.sh $(SYSTEM_PACKAGES)

test-system-deps:
	@scripts/install-system-deps.sh $(TEST_SYSTEM_PACKAGES)

# Re-install only when the project's dependency files change (idempotent, fast when up to date).
$(STAMP): pyproject.toml $(CONSTRAINTS) Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=24"
	$(PIP) install --quiet $(if $(CONSTRAINTS),-c $(CONSTRAINTS)) $(PIP_EXTRA) -e ".[dev]"
	@touch $(STAMP)
	@echo "fsclap installed in $(VENV)"

demo: setup
	$(VENV)/bin/fsclap demo

# A local Prefect server with auth and workers, the three deployments run, kept up until Ctrl-C.
prefect-demo: setup
	$(VENV)/bin/fsclap prefect demo

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: setup test-system-deps lint
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -m "not slow and not browser and not server" $(PYTEST_ARGS)

bench: setup
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean-venv:
	rm -rf $(VENV)
