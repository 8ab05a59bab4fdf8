# Two commands on a fresh clone: `make demo` (the nightly pipeline end to end on
# the built-in CircleCI simulator) and `make test` (the test suite).
# Each creates the environment itself: uv is bootstrapped with pip if missing.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)

.PHONY: demo test lint env env-dev bench clean

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check "uv==0.13.8"

env: $(UV)
	$(UV) sync --frozen --extra dev

demo: env
	$(UV) run --frozen circleci-analytics demo

# ruff over the tree (lint, then format check); mypy over the package (files and settings in pyproject.toml).
lint: env
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy

test: lint
	$(UV) run --frozen python -m pytest -n 2 --dist loadgroup

bench: env
	$(UV) run --frozen python benchmarks/simulator.py

clean:
	rm -rf .venv .tools data test-artifacts .pytest_cache
