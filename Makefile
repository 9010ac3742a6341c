# The two commands of the README: `make demo` and `make test`. Each sets up .venv when missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.vidfer-installed

.PHONY: demo test lint assets setup clean

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

test: assets lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf demo_out .pytest_cache .mypy_cache .ruff_cache
