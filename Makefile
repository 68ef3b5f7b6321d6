# Two entry points: `make demo` (set-up + the main job) and `make test`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
TORCH   ?= torch==2.13.0
DEMO_OUT ?= $(HOME)/.cache/sckd/demo

.PHONY: setup demo test clean

$(BIN)/sckd: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# Pinned torch first: an unpinned one would pull the CUDA build.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev]"
	touch $(BIN)/sckd

setup: $(BIN)/sckd

demo: setup
	$(BIN)/sckd demo --out $(DEMO_OUT)

test: setup
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build src/*.egg-info
