# The two commands of the README: `make demo` and `make test`. Each sets up .venv when missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.vidfer-installed

.PHONY: demo test lint assets setup browser clean gpu-check docs

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

assets: $(STAMP)
	$(BIN)/vidfer assets fetch

demo: assets
	$(BIN)/vidfer demo --out demo_out

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

# Debian's Chromium for the report's headless-browser test (driven by Playwright, dev extra).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q chromium; }

# The documentation site at http://127.0.0.1:8000 (mkdocs serve; `make test` builds it with
# --strict in tests/test_docs.py).
docs: $(STAMP)
	$(BIN)/mkdocs serve

# Two pytest-xdist workers (one per core), each taking whole test files (see tests/conftest.py).
test: assets lint browser
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

# The GPU self-check (benchmarks/gpu.py): GPU against CPU, check by check; says so without CUDA.
gpu-check: assets
	$(BIN)/python benchmarks/gpu.py

clean:
	rm -rf demo_out site .pytest_cache .mypy_cache .ruff_cache
