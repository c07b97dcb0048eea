# Two entry points for a fresh machine (see README): `make repro` runs the pipeline, `make test` the tests.
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: setup system-deps repro test bench ui demo

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

repro: setup
	dvc repro

# Debian's Chromium for the browser test (installed when root with apt, else a one-line hint).
system-deps:
	@bash scripts/system-deps.sh

test: setup system-deps
	python -m pytest

bench: setup
	python bench/prepare_throughput.py
	python bench/train_throughput.py --compare-compile
	python bench/eval_throughput.py
	python bench/export_latency.py

ui: setup
	pix2pix ui

# The paint-a-label-map page for models/generator.pt on 127.0.0.1:7860 (after `make repro`).
demo: setup
	pix2pix demo
