# Pathways: `make demo` runs the main job on SQLite; `make test` runs the tests.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-unit lint bench notebooks clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/pathways demo

# Everything, skipping nothing: PostgreSQL is PATHWAYS_TEST_POSTGRES_URL or a throwaway server
# (tests/conftest.py); Chromium is installed when missing and we may (.ci/ensure-chromium).
test: $(STAMP)
	bash .ci/ensure-chromium
	$(BIN)/pytest -q -p no:cacheprovider

test-unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# JupyterLab with jupytext (the `notebooks` extra): open notebooks/*.py as notebooks.
notebooks: $(STAMP)
	$(BIN)/pip install --quiet -e ".[dev,notebooks]"
	$(BIN)/jupyter lab notebooks/

bench: $(STAMP)
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
