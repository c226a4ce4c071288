# lda_opt: every target creates and uses .venv in the repo root.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# A local CPU build of torch, when the machine carries one (see README, "GPU users").
TORCH_WHEEL := $(firstword $(wildcard /opt/wheels/torch-2.13.0*cpu*.whl))
OUT ?= demo_out

.PHONY: install demo test test-slow bench lint clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@if $(PY) -c "import torch" 2>/dev/null; then \
		echo "torch already in $(VENV): keeping it ($$($(PY) -c 'import torch; print(torch.__version__)'))"; \
	elif [ -n "$(TORCH_WHEEL)" ]; then \
		$(PY) -m pip install -q "$(TORCH_WHEEL)"; \
	else \
		$(PY) -m pip install -q "torch==2.13.0"; \
	fi
	$(PY) -m pip install -q -e ".[test,bench]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/lda-opt solve --problem tv-denoise --image camera --size 128 --noise 0.1 \
		--algorithm elda --out $(OUT)
	@echo "demo outputs written to $(OUT)/ (result.json, trace.csv, recon.png, convergence.png)"

test: install
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

# micro-benchmarks: benchmarks/bench_*.py (pytest-benchmark); the scripts overhead.py,
# batch.py and race.py are run by hand (see benchmarks/README.md)
bench: install
	$(PY) -m pytest -q benchmarks -o python_files='bench_*.py' --benchmark-only \
		--benchmark-json=benchmarks/results/micro.json

lint: install
	$(PY) -m ruff check lda_opt tests benchmarks

clean:
	rm -rf $(VENV) demo_out
