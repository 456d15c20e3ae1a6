# Pathways: `make demo` runs the main job on SQLite; `make test` runs the tests.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: install demo test test-unit lint bench notebooks clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# The tests also run the Spark engine: PySpark (the `spark` extra) and Java; `make demo` needs neither.
$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e ".[dev,spark]"
	touch $(TEST_STAMP)

demo: $(STAMP)
	$(BIN)/pathways demo

# Everything, skipping nothing: PostgreSQL is PATHWAYS_TEST_POSTGRES_URL or a throwaway server
# (tests/conftest.py); Chromium and Java are installed when missing and we may (.ci/ensure-chromium,
# .ci/ensure-java); PySpark comes with the `spark` extra.
test: $(TEST_STAMP)
	bash .ci/ensure-chromium
	bash .ci/ensure-java
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
