# Two commands: `make run` starts the whole system, `make test` checks it. Both install what is missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
SOLC_VERSION := 0.8.28
export SOLCX_BINARY_PATH := $(CURDIR)/build/solcx

.PHONY: run test deps lint compile clean chromium

run: deps
	$(BIN)/credtrace up

test: deps lint chromium
	$(BIN)/pytest

# The scan page test renders in headless Debian chromium: installed with apt-get only when it is missing.
chromium:
	@test -x /usr/bin/chromium || { \
		SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }

deps: $(VENV)/.installed node_modules/.installed build/solcx/solc-v$(SOLC_VERSION)

# Python: a venv with the exact versions of requirements.lock (regenerate it with `make lock`).
$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	touch $@

# JavaScript-side tools: solc-js, OpenZeppelin contracts, the anvil binary (no install scripts needed).
node_modules/.installed: package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund
	touch $@

# py-solc-x and ape-solidity find the offline compiler wrapper here.
build/solcx/solc-v$(SOLC_VERSION): scripts/solc
	mkdir -p build/solcx
	ln -sf ../../scripts/solc $@

lint: deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

compile: deps
	$(BIN)/credtrace compile

lock: deps
	$(BIN)/python -m pip freeze --exclude-editable > requirements.lock

clean:
	rm -rf build .build
