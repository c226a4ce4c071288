# lda_opt: every target creates and uses .venv in the repo root.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# A local CPU build of torch, when the machine carries one (see README, "GPU users").
TORCH_WHEEL := $(firstword $(wildcard /opt/wheels/torch-2.13.0*cpu*.whl))
OUT ?= demo_out

.PHONY: install demo test test-isa test-fuzz test-slow bench lint clean notebooks

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@if $(PY) -c "import torch" 2>/dev/null; then \
		echo "torch already in $(VENV): keeping it ($$($(PY) -c 'import torch; print(torch.__version__)'))"; \
	elif [ -n "$(TORCH_WHEEL)" ]; then \
		$(PY) -m pip install -q "$(TORCH_WHEEL)"; \
	else \
		$(PY) -m pip install -q "torch==2.13.0"; \
	fi
	$(PY) -m pip install -q -e ".[test,bench,dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (lda_opt .venv)" >/dev/null
	touch $@

install: $(VENV)/.installed

# the main job end to end (lda_opt/experiments/demo.py, a few minutes on 2 CPU cores): the
# shipped MRI regularizer solved to tolerance + lda-opt check, a quick ELDA complexity run,
# learned vs exact TV at its best weight; $(OUT)/README.md and index.html link every figure
demo: install
	$(PY) -m lda_opt.experiments.demo --out $(OUT)

# two workers (pytest-xdist) on the 2-core CI machine; each test process uses 1 torch thread;
# tests/test_notebooks.py executes notebooks/*.py (jupytext + nbclient, kernel python3)
test: install
	$(PY) -m pytest -q -n 2

# The suite once more under each lesser CPU instruction set this CPU can emulate (issue 15):
# ATen's kernels (ATEN_CPU_CAPABILITY), oneDNN's convolutions (DNNL_MAX_CPU_ISA) and MKL's
# BLAS (MKL_ENABLE_INSTRUCTIONS) all capped at the same level, so that float32 reductions run
# in the order a machine without AVX-512 (avx2) or without AVX (default) would use.  A level
# above the native one is skipped (torch would silently run the native kernels).
ISA_LEVELS ?= default avx2
# left out of these runs (CI time): the bad-input, kill/resume and hostile-file tests, which
# assert error paths and file contents, not floating-point results; the notebooks (they
# assert what they show, and run once in make test)
ISA_SKIP ?= --ignore=tests/fuzz --ignore=tests/test_faults.py --ignore=tests/nets/test_checkpoint_hostile.py \
	--ignore=tests/test_notebooks.py
isa_env_default := ATEN_CPU_CAPABILITY=default DNNL_MAX_CPU_ISA=SSE41 MKL_ENABLE_INSTRUCTIONS=SSE4_2
isa_env_avx2 := ATEN_CPU_CAPABILITY=avx2 DNNL_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2
isa_env_avx512 := ATEN_CPU_CAPABILITY=avx512 DNNL_MAX_CPU_ISA=AVX512_CORE MKL_ENABLE_INSTRUCTIONS=AVX512
test-isa: install
	@for level in $(ISA_LEVELS); do \
		case $$level in \
			default) envs="$(isa_env_default)";; avx2) envs="$(isa_env_avx2)";; \
			avx512) envs="$(isa_env_avx512)";; *) echo "unknown ISA level $$level"; exit 2;; \
		esac; \
		got=$$(env $$envs $(PY) -c "import torch; print(torch.backends.cpu.get_cpu_capability().lower())"); \
		if [ "$$got" != "$$level" ]; then echo "test-isa: this CPU cannot run $$level kernels (got $$got): skipped"; continue; fi; \
		echo "test-isa: $$envs"; \
		env $$envs $(PY) -m pytest -q -n 2 $(ISA_SKIP) || exit 1; \
	done

# the fuzz suite (tests/fuzz, bad input to the public surface) at the thorough profile:
# about 11,000 generated cases instead of the ~1,300 that make test runs
test-fuzz: install
	HYPOTHESIS_PROFILE=thorough $(PY) -m pytest -q -n 2 tests/fuzz tests/nets/test_checkpoint_hostile.py

test-slow: install
	HYPOTHESIS_PROFILE=thorough $(PY) -m pytest -q -m slow

# micro-benchmarks: benchmarks/bench_*.py (pytest-benchmark); the scripts overhead.py,
# batch.py and race.py are run by hand (see benchmarks/README.md)
bench: install
	$(PY) -m pytest -q benchmarks -o python_files='bench_*.py' --benchmark-only \
		--benchmark-json=benchmarks/results/micro.json

lint: install
	$(PY) -m ruff check lda_opt tests benchmarks

clean:
	rm -rf $(VENV) demo_out

# re-execute every notebook (notebooks/*.py, jupytext percent format) and rewrite the .ipynb
# beside it, outputs included (what tests/test_notebooks.py does)
notebooks: install
	$(PY) -m pytest -q tests/test_notebooks.py

# Retrain the shipped LDA-Net checkpoints (lda_opt/checkpoints/NAME.{safetensors,json}) from
# their training configs (NAME.config.json), seeded and on 1 CPU thread: bit-identical weights
# on the same machine. Training directories go to build/runs/NAME (log.json, curves.png). The
# exported network is best.* when the config has train.select = "best_val", else model.*.
SHIPPED_CHECKPOINTS := block_cs_25 mri_radial_20 mol_mri_radial_20
.PHONY: checkpoints
checkpoints: install
	@mkdir -p lda_opt/checkpoints
	@for n in $(SHIPPED_CHECKPOINTS); do \
		cp configs/$$n.json lda_opt/checkpoints/$$n.config.json || exit 1; \
		rm -rf build/runs/$$n; \
		$(VENV)/bin/lda-opt train --config lda_opt/checkpoints/$$n.config.json --out build/runs/$$n || exit 1; \
		src=model; if [ -f build/runs/$$n/best.safetensors ]; then src=best; fi; \
		cp build/runs/$$n/$$src.safetensors lda_opt/checkpoints/$$n.safetensors || exit 1; \
		cp build/runs/$$n/$$src.json lda_opt/checkpoints/$$n.json || exit 1; \
		chmod 644 lda_opt/checkpoints/$$n.*; \
	done
	@echo "shipped checkpoints rewritten in lda_opt/checkpoints/"
