# The two commands: `make run` starts the whole service, `make test` runs every check.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
# Debian's chromium, driven by the browser tests (see the rule below).
CHROMIUM ?= /usr/bin/chromium
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint typecheck pytest promtool openapi bench clean

# First use: create the virtual environment with nothing but python3 and pip. Debian/Ubuntu split
# ensurepip out of python3 (package python3-venv); without it, make the venv bare and bootstrap
# pip into it with the system's pip.
$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	  echo "dbsize needs Python 3.11+; $(PYTHON) is $$($(PYTHON) -V 2>&1). Try: make PYTHON=python3.11 $(MAKECMDGOALS)" >&2; \
	  exit 1; }
	$(PYTHON) -m venv $(VENV) 2>/dev/null || { rm -rf $(VENV) && \
	  $(PYTHON) -m venv --without-pip $(VENV) && \
	  $(PYTHON) -m pip --python $(BIN)/python install --quiet pip; }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,embedded]"
	touch $@

run: $(BIN)/.installed
	$(BIN)/dbsize up

test: lint typecheck pytest

# Only folders that exist: git keeps no empty folder, so bench/ is absent until it has a file.
LINTED := $(wildcard src tests bench)

lint: $(BIN)/.installed
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

typecheck: $(BIN)/.installed
	$(BIN)/mypy

pytest: $(BIN)/.installed $(CHROMIUM) promtool
	$(BIN)/pytest

# The browser tests drive Debian's chromium through Playwright's executable_path (Playwright's
# own browser download cannot work on these machines), so a fresh machine installs the package.
$(CHROMIUM):
	@command -v apt-get >/dev/null || { \
	  echo "the browser tests need $(CHROMIUM): install your system's chromium package" >&2; exit 1; }
	$(SUDO) apt-get update -q
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium

# The metrics tests lint /metrics with promtool (Debian's `prometheus` package); install it once.
promtool:
	@command -v promtool >/dev/null 2>&1 || { \
	  echo "installing Debian's prometheus package for promtool (metrics tests)"; \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends prometheus; }

openapi: $(BIN)/.installed
	$(BIN)/dbsize openapi > openapi.yaml.tmp && mv openapi.yaml.tmp openapi.yaml

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
