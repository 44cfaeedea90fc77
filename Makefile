# Two commands for a newcomer on a fresh Debian machine:
#   make demo   installs tcpclose in .venv and runs the lesson's two experiments
#   make test   installs the system tools the tests use, the test dependencies, and runs pytest
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench system-deps clean

$(BIN)/tcpclose: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

demo: $(BIN)/tcpclose
	$(BIN)/tcpclose demo

system-deps:
	bash scripts/install-system-deps

test: system-deps $(BIN)/tcpclose
	$(BIN)/python -m playwright --version >/dev/null
	$(BIN)/python -m pytest

lint: $(BIN)/tcpclose
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
