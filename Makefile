# The README's two commands, `make run` and `make test`, set themselves up: a venv with
# every dependency (pinned by constraints.txt), and embedded PostgreSQL/Redis when
# DATABASE_URL/REDIS_URL are unset.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.installed

.PHONY: all setup tools compile run test pytest check lint fmt typecheck imports proto proto-check bench clean

all: test

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11+ is required (set PYTHON=...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@# setuptools warns that folders named like the packages take precedence in an
	@# editable install of this flat layout: that is the intent here, so it is not shown.
	PYTHONWARNINGS="ignore:Editable installation:UserWarning" \
		$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# tests/ops runs promtool and a real Prometheus server: Debian's `prometheus` package
# ships both. tests/http drives the web page in Debian's headless `chromium` (Playwright's
# own browser download cannot run here). Installed here when missing (as root, or sudo).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
tools:
	@command -v promtool >/dev/null && command -v prometheus >/dev/null || { \
		command -v apt-get >/dev/null || { echo "install Prometheus (promtool + prometheus) for tests/ops"; exit 1; }; \
		echo "installing Debian's prometheus package (promtool, prometheus) for tests/ops"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
	@test -x /usr/bin/chromium || { \
		command -v apt-get >/dev/null || { echo "install Chromium at /usr/bin/chromium for tests/http"; exit 1; }; \
		echo "installing Debian's chromium package for tests/http"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

setup: $(STAMP) tools

# The engine's hot modules compiled with mypyc into build/compiled/ (compile_engine.py);
# rebuilt only when their sources changed. Without a C compiler it says so and the pure
# build runs. `domain` never loads a compiled module whose .py changed since (see
# docs/performance.md); EXCHANGE_PURE_PYTHON=1 forces the pure build.
compile: $(STAMP)
	$(PY) -m compile_engine

# Without ADMIN_API_KEY the first start makes an admin key in .data/admin-api-key and
# later starts reuse it (server/bootstrap_key.py); ADMIN_API_KEY_FILE= turns that off.
run: $(STAMP) compile
	ADMIN_API_KEY_FILE="$${ADMIN_API_KEY_FILE-.data/admin-api-key}" $(PY) -m server

test: check pytest

# The engine's tests run on both builds: the whole suite on the compiled one (when
# built), then tests/domain again on the pure-Python source.
pytest: $(STAMP) tools compile
	$(PY) -m pytest $(PYTEST_ARGS)
	@if [ -f build/compiled/manifest.json ]; then \
		echo "tests/domain again on the pure-Python build (EXCHANGE_PURE_PYTHON=1)"; \
		EXCHANGE_PURE_PYTHON=1 $(PY) -m pytest -q tests/domain; \
	fi

check: lint typecheck imports proto-check

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(STAMP)
	$(BIN)/mypy

# The direction of imports (pyproject.toml's [tool.importlinter] contracts).
imports: $(STAMP)
	$(BIN)/lint-imports --no-cache

# Generated stubs are committed; `make proto` regenerates them, `proto-check` fails when
# they are stale (CI runs it through `make test`).
proto: $(STAMP)
	$(PY) -m clients.generate

proto-check: $(STAMP)
	$(PY) -m clients.generate --check

bench: $(STAMP) compile
	$(PY) -m bench

clean:
	rm -rf $(VENV) build .data .pytest_cache .mypy_cache .ruff_cache .hypothesis
