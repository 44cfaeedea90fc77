# Two commands for a newcomer on a fresh Debian machine (as root for packet capture):
#   make demo   installs tcpclose in .venv and runs the lesson's two experiments
#   make test   installs the system tools the tests use, the test dependencies, and runs pytest
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench system-deps clean

$(BIN)/python:
	bash scripts/install-system-deps venv
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# What the demo needs: the package and its dependencies only.
# compileall: the bytecode is written even where PYTHONDONTWRITEBYTECODE is set (otherwise
# every command would compile its modules again at each start, ~30 ms).
$(VENV)/.installed: pyproject.toml setup.py src/tcpclose/analyze/_fastscan.c $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -m compileall -q src/tcpclose >/dev/null
	touch $@

# What the tests need besides: pytest, hypothesis, playwright, ruff, mypy.
$(VENV)/.installed-test: pyproject.toml setup.py src/tcpclose/analyze/_fastscan.c $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m compileall -q src/tcpclose >/dev/null
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/tcpclose demo

system-deps:
	bash scripts/install-system-deps

test: system-deps $(VENV)/.installed-test
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
