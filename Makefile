# The two commands a new user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DATA ?= Data
PRESET ?= tiny
WORKERS ?= 2
SEED ?= 0
# pytest worker processes of `make test` (pytest-xdist): one per core
TEST_JOBS ?= $(shell nproc 2>/dev/null || echo 1)

.PHONY: help venv test demo data cache check bench clean

help:  ## list the targets
	@grep -E '^[a-z]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

venv: $(VENV)/.installed  ## create .venv with the pinned requirements and the repo installed editable

test: venv  ## run the test suite (what CI runs), one worker per core
	$(PY) -m pytest -q -n $(TEST_JOBS) tests; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

data: venv  ## generate the synthetic dataset (PRESET=tiny|small|full) into DATA
	$(PY) Data/generate.py --root_dir $(DATA) --preset $(PRESET) --workers $(WORKERS)

cache: venv  ## decode the PNGs of DATA once into the memory-mapped frame cache
	$(PY) Data/build_cache.py --root_dir $(DATA)

check: venv  ## validate every file of DATA
	$(PY) Data/check_dataset.py --root_dir $(DATA) --workers $(WORKERS)

demo: venv  ## the whole pipeline on CPU on generated data (SEED=0: same seed, same results); writes results/demo/
	$(PY) demo.py --root_dir $(DATA) --seed $(SEED)

bench: venv  ## speed and accuracy benchmarks (prints tables)
	$(PY) benchmarks/run_all.py

clean:  ## remove generated data, caches, checkpoints and results (keeps .venv)
	rm -rf $(DATA)/train $(DATA)/val $(DATA)/unlabeled $(DATA)/hidden $(DATA)/.cache $(DATA)/pseudo_labels
	rm -rf Unets/checkpoints SSL_convLSTM_Reconstructor/checkpoints* results benchmarks/out
