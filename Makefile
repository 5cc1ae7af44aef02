# mnist-kfp: one venv, cached between runs; every target installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/mnist-pipeline
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.installed-demo
TEST_STAMP := $(VENV)/.installed-test

# The demo reads MNIST from an offline copy beside the checkout when there is one, else from the
# public mirror (the pipeline's default source).
OFFLINE_MNIST := $(wildcard ../shared/datasets/mnist/train-images-idx3-ubyte.gz)
SOURCE ?= $(if $(OFFLINE_MNIST),$(abspath ../shared/datasets/mnist),)
DEMO_ARGS ?= --epochs 2 --learning-rate 0.02
REGISTRY ?= ghcr.io/mnist-kfp
PLATFORM ?= linux/amd64

.PHONY: setup test-setup tools demo ui test test-slow test-containers lint compile bench lock images images-local clean mutation

# Installs are locked (requirements/*.txt, with hashes, by `make lock`) and made by uv: `setup`
# only what running needs (TensorFlow for the CPU, the page), `test-setup` the test tools too.
# TensorFlow's C++ headers (for building custom ops, 0.29 GB) are left out of the venv.
# A test venv holds all the demo needs: with one, `setup` keeps it (no re-sync back and forth).
setup: $(if $(wildcard $(TEST_STAMP)),test-setup,$(STAMP))

$(VENV)/bin/uv:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet uv==0.13.9

define INSTALL
	$(UV) pip sync --quiet --python $(PY) $(1)
	$(UV) pip install --quiet --python $(PY) --no-deps -e .
	rm -rf $(VENV)/lib/python*/site-packages/tensorflow/include
	touch $@
endef

$(STAMP): requirements/demo.txt pyproject.toml | $(VENV)/bin/uv
	$(call INSTALL,requirements/demo.txt)
	rm -f $(TEST_STAMP)

test-setup: $(TEST_STAMP)

$(TEST_STAMP): requirements/test.txt pyproject.toml | $(VENV)/bin/uv
	$(call INSTALL,requirements/test.txt)
	rm -f $(STAMP)

demo: setup  ## Run the whole pipeline locally on real MNIST and show the predictions.
	$(CLI) run --local $(if $(SOURCE),--source $(SOURCE)) $(DEMO_ARGS) --summary-json out/demo-summary.json

tools:  ## chromium and kubectl, which the tests need: installed with apt as root, else named.
	bash .ci/tools

test: test-setup tools  ## The suite CI runs: unit, compile and local-run tiers (not the slow ones).
	$(PY) -m pytest

test-slow: test-setup  ## Full-data runs (several minutes).
	$(PY) -m pytest -m slow

# Mutation testing of the modules [tool.mutmut] names (pyproject.toml), each mutant against the
# tests that call its function, two at a time. A fresh run takes about an hour on 2 cores; with
# MUTANTS (mutmut's names or globs, e.g. MUTANTS='pipeline.cluster.*') only those are run again
# and the other results of the last run are kept. tests/mutation_report.py prints the figures.
MUTANTS ?=
mutation: test-setup  ## Mutation testing: killed/total per module, the survivors; fails below 90%.
	$(if $(MUTANTS),,rm -rf mutants)
	mkdir -p out
	$(VENV)/bin/mutmut run --max-children 2 $(MUTANTS) > out/mutmut.log 2>&1 || (tail -40 out/mutmut.log; exit 1)
	$(PY) tests/mutation_report.py

ui: setup  ## The web page to try the model (after make demo): http://127.0.0.1:8000/
	$(CLI) ui --model ./mnist-store

lint: test-setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

compile: setup
	$(CLI) compile out/mnist_pipeline.yaml

bench: test-setup  ## Every benchmark: figure, reference from the same run, ratio.
	for script in benchmarks/bench_*.py; do $(PY) $$script || exit 1; done

# The images install exactly these pins, hash-checked (docker/requirements*.txt), for the images'
# platform (linux/amd64, CPython 3.11), whatever machine runs `make lock`.
LOCK := $(UV) pip compile --generate-hashes --python-version 3.11 \
	--python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock" --quiet
lock: | $(VENV)/bin/uv  ## Re-pin the venvs (requirements/) and the images (docker/), from pyproject.toml.
	$(LOCK) pyproject.toml --extra tensorflow --extra ui --output-file docker/requirements.txt
	$(LOCK) pyproject.toml --output-file docker/requirements-slim.txt
	$(LOCK) --override requirements/overrides.txt --no-emit-package mnist-kfp \
		requirements/demo.in --output-file requirements/demo.txt
	$(LOCK) --override requirements/overrides.txt --no-emit-package mnist-kfp \
		requirements/test.in --output-file requirements/test.txt

images: setup  ## Build and push the step images: make images REGISTRY=registry.example.com/team
	PY=$(PY) MNIST_IMAGE_REGISTRY=$(REGISTRY) PLATFORM=$(PLATFORM) docker/build.sh --push

images-local: setup  ## Build the step images here, for run --local --runner docker.
	PY=$(PY) MNIST_IMAGE_REGISTRY=$(REGISTRY) PLATFORM=$(PLATFORM) docker/build.sh

test-containers: test-setup  ## Build the images (docker, or podman) and run the DAG in them (minutes).
	PY=$(PY) tests/containers/run.sh

clean:
	rm -rf out .local-runs mnist-store
