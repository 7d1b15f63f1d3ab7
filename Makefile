# The two newcomer commands: `make demo` and `make test`. Each installs what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TS_CLIENT := clients/typescript

.PHONY: demo test lint install npm

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The Node client that proves the schema outside Python (tests/test_ts_client.py).
npm:
	cd $(TS_CLIENT) && npm ci --no-audit --no-fund --silent

demo: $(STAMP)
	$(BIN)/agent-service demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy orchestrator wire

test: lint npm
	$(BIN)/pytest -q
