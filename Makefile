# Every target creates the virtualenv first when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Test processes: each takes whole test files (their module-scoped gateways start once). Most of a
# test's time is gateways starting and answering, so two halve the suite's run even on two cores.
TEST_WORKERS ?= 2

.PHONY: install bytecode run test lint typecheck bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Bytecode for the sources (an editable install has none, and PYTHONDONTWRITEBYTECODE may keep Python
# from caching it): without it every start compiles them again, about 0.5 s of a 1.4 s start here.
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q src > /dev/null

run: bytecode
	$(BIN)/tenantgate serve --demo

lint: $(STAMP)
	$(BIN)/ruff check src tests $(wildcard bench)
	$(BIN)/ruff format --check src tests $(wildcard bench)
	$(BIN)/mypy
	$(if $(wildcard bench/*.py),$(BIN)/mypy $(wildcard bench/*.py))

test: lint bytecode  # the tests start gateways by the hundred: each would compile the sources again
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

bench: bytecode
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
