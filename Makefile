# `make run`: set up .venv and run the whole pipeline; `make test`: run the tests.
VENV ?= .venv
PYTHON ?= python3
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed-stamp
export PATH := $(BIN):$(PATH)
# No model or data is ever fetched from a hub at run time.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install run test test-integration test-all ui clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned: this takes the CPU wheel on this machine's disk.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: install
	dvc repro
	@cat reports/comparison.md

test: install
	pytest -q

# The slow tests (CI runs them too): Label Studio and the MLflow model server for real,
# Spark in local mode, runs killed halfway, the MPNet resolver with a bf16 step.
test-integration: install
	$(BIN)/python -m pip install --quiet -e ".[dev,spark]"
	pytest -q -m slow

test-all: install
	$(BIN)/python -m pip install --quiet -e ".[dev,spark]"
	pytest -q -m ""

ui: install
	stance ui

clean:
	rm -rf data/prepared models/baseline models/transformer models/champion.json reports mlflow.db mlruns mlartifacts
