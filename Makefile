# One command runs the product, one runs the tests. Both set up .venv on first use: `make run` installs
# what running needs, `make test` (and `make install`) the test tools and peers as well.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
SUM := $(shell cksum < pyproject.toml | cut -d' ' -f1)
RUN_STAMP := $(VENV)/.installed-run-$(SUM)
TEST_STAMP := $(VENV)/.installed-test-$(SUM)
PIP := $(BIN)/python -m pip install -q --disable-pip-version-check --only-binary=xmlsec,lxml

.PHONY: run test install install-run lint format check clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip

$(RUN_STAMP): pyproject.toml | $(VENV)/bin/python
	$(PIP) -e .
	@rm -f $(VENV)/.installed-run-* $(VENV)/.installed-[0-9]*
	@touch $(RUN_STAMP)

$(TEST_STAMP): pyproject.toml | $(VENV)/bin/python
	$(PIP) -e '.[test]'
	@rm -f $(VENV)/.installed-run-* $(VENV)/.installed-test-* $(VENV)/.installed-[0-9]*
	@touch $(RUN_STAMP) $(TEST_STAMP)

# The OIDC provider the tests sign in against (npm oidc-provider), when Node is installed.
NODE_PEER := tests/peers/oidc
$(NODE_PEER)/node_modules/.installed: $(NODE_PEER)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then npm ci --prefix $(NODE_PEER) --no-audit --no-fund --silent && touch $@; \
	 else echo "npm not found: the tests that run the OIDC provider need Node.js and npm"; fi

# axe-core, which the console's browser tests inject into each page (npm).
AXE_PEER := tests/peers/axe
$(AXE_PEER)/node_modules/.installed: $(AXE_PEER)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then npm ci --prefix $(AXE_PEER) --no-audit --no-fund --silent && touch $@; \
	 else echo "npm not found: the console's accessibility scan needs Node.js and npm"; fi

install-run: $(RUN_STAMP)
install: $(TEST_STAMP) $(NODE_PEER)/node_modules/.installed $(AXE_PEER)/node_modules/.installed

## make run: migrate, provision the demo account, then serve web + worker + beat on 127.0.0.1:8000
run: install-run
	$(BIN)/python deploy/run.py

## make test: the whole test suite (SQLite by default; DATABASE_URL / REDIS_URL to use PostgreSQL / Redis),
## one pytest-xdist worker per CPU (TEST_WORKERS=0 runs it in one process); a test file stays on one worker;
## the 40 slowest tests are listed at the end
TEST_WORKERS ?= auto
test: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=40

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

check: install
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/python manage.py check

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
