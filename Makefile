# `make run` (the default experiment), `make test` (lint, format check, the test suite), `make figures` (the course's
# charts).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.dev-installed

.PHONY: run figures lint test test-slow clean

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m jgen train --config experiments/configs/vae_mnist.py --workdir runs/vae_mnist

# Trains (or resumes) every run the charts need that is not finished, at the default settings, then draws them all.
figures: $(STAMP)
	$(BIN)/python -m course --runs runs --out figures --train_missing

$(DEV_STAMP): $(STAMP) requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(DEV_STAMP)

# ruff's settings (rules, line length 120) are in pyproject.toml; `ruff format .` rewrites what the check refuses.
lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# pytest-xdist spreads the suite over the cores (at most 4 workers); tests/conftest.py keeps the tests that share an
# expensive fixture on one worker. `make test PYTEST_WORKERS=0` runs it in one process.
PYTEST_WORKERS ?= auto

test: lint
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --maxprocesses 4 --dist loadgroup

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

clean:
	rm -rf $(VENV) runs
