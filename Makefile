# Every target sets itself up: a local .venv with the package and its test
# extras, Debian's graphviz (the `dot` binary) when it is missing, and for the
# tests Debian's chromium (the lab's browser tests; they skip without it).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo lab test test-gpu bench bench-readme setup graphviz chromium clean

demo: $(STAMP) graphviz
	$(PY) -m tinygrad_opt.cli demo

# The lab in the browser: http://127.0.0.1:8765/ (tinygrad-opt lab --help for options).
lab: $(STAMP) graphviz
	$(PY) -m tinygrad_opt.cli lab

test: $(STAMP) graphviz chromium
	$(PY) -m pytest

# The `gpu` tests (tests/gpu: the op table, gradcheck, training and every optimizer on the
# GPU against the CPU) and benchmarks/gpu.py, on a machine with an NVIDIA GPU. Without CuPy
# or a GPU both say so and pass: the CPU suite's strict backend guards the GPU code path.
test-gpu: $(STAMP)
	@$(PY) -c "import cupy" 2>/dev/null || $(VENV)/bin/pip install -q "cupy-cuda12x" \
	  || echo "could not install CuPy (pip install tinygrad-opt[gpu]): the gpu tests will skip"
	$(PY) -m pytest -m gpu -o addopts="" -p no:cacheprovider -q -rs
	$(PY) benchmarks/gpu.py

bench: $(STAMP)
	@for b in benchmarks/[!_]*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# The README's performance table (between its perf-table markers), measured on this machine
# with one BLAS/OpenMP thread per library (steadier; the table says so).
bench-readme: $(STAMP)
	$(PY) benchmarks/readme_table.py --write --threads 1

setup: $(STAMP) graphviz

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	# torch (a comparison oracle for tests and benchmarks only) is pinned to the
	# CPU wheel; without it the PyTorch comparisons skip.
	$(VENV)/bin/pip install -q -e ".[dev,oracle]" || $(VENV)/bin/pip install -q -e ".[dev]"
	touch $(STAMP)

graphviz:
	@command -v dot >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null) \
	      || echo "could not install graphviz: run 'sudo apt-get install graphviz' (Debian/Ubuntu) or 'brew install graphviz' (macOS)"; \
	  else echo "graphviz's dot is missing: install it with 'sudo apt-get install graphviz' (Debian/Ubuntu) or 'brew install graphviz' (macOS)"; fi; }

# Playwright drives Debian's chromium (no browser download); without it the
# `browser` tests skip with a reason.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "could not install chromium: the lab's browser tests will skip"; \
	  else echo "chromium is missing (sudo apt-get install chromium): the lab's browser tests will skip"; fi; }

clean:
	rm -rf $(VENV) runs .pytest_cache
