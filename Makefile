# One command runs the product, one runs the tests. Both set up .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

.PHONY: run test install lint format check clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check --only-binary=xmlsec,lxml -e '.[test]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

# The OIDC provider the tests sign in against (npm oidc-provider), when Node is installed.
NODE_PEER := tests/peers/oidc
$(NODE_PEER)/node_modules/.installed: $(NODE_PEER)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then npm ci --prefix $(NODE_PEER) --no-audit --no-fund --silent && touch $@; \
	 else echo "npm not found: the tests that run the OIDC provider need Node.js and npm"; fi

install: $(STAMP) $(NODE_PEER)/node_modules/.installed

## make run: migrate, provision the demo account, then serve web + worker + beat on 127.0.0.1:8000
run: install
	$(BIN)/python deploy/run.py

## make test: the whole test suite (SQLite by default; DATABASE_URL / REDIS_URL to use PostgreSQL / Redis)
test: install
	$(BIN)/python -m pytest

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
