# The two set-up commands: `make run` (the whole pipeline, offline) and `make test`.
# Each creates .venv with Python 3.11+ on first use and installs what it needs: `make run` only
# what running needs, `make test` (and `make lint`) the development tools as well.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: install run test test-fast lint clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit("triage-worker needs Python 3.11+, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	@echo "creating $(VENV) with $$($(PYTHON) --version)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	@echo "installing triage-worker and what it needs to run (about a minute the first time)"
	$(BIN)/python -m pip install --quiet -e '.[local]'
	@touch $(RUN_STAMP)

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	@echo "installing triage-worker with its development tools (pytest, ruff, mypy, import-linter)"
	$(BIN)/python -m pip install --quiet -e '.[dev,local]'
	@touch $(DEV_STAMP) $(RUN_STAMP)

install: $(DEV_STAMP)

run: $(RUN_STAMP)
	$(BIN)/triage run

test: $(DEV_STAMP)
	$(BIN)/pytest

# The fast tier only: pure functions and the drain step in-process (real Redis and emulator).
test-fast: $(DEV_STAMP)
	$(BIN)/pytest tests/fast

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
