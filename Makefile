# Two commands do all the set-up on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip

.PHONY: serve test install install-dev lint proto bench bench-smoke clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -U pip

# Runs the service on its embedded defaults (shipped classifier, default config).
serve: install
	$(BIN)/rightsize serve

install: $(BIN)/python
	$(PIP) install -q -e .

install-dev: $(BIN)/python
	$(PIP) install -q -e '.[dev,export]'

# The test command CI runs (.ci/run calls exactly this).
test: install-dev
	. scripts/test_env.sh && $(BIN)/python -m pytest -q -p no:cacheprovider

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/mypy classifier router

proto: install-dev
	$(BIN)/python scripts/gen_proto.py

bench: install-dev
	$(BIN)/python benchmarks/run_all.py

bench-smoke: install-dev
	$(BIN)/python benchmarks/run_all.py --smoke

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
