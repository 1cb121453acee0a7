# reprobook: two commands on a fresh machine.
#   make book   set up .venv, render every chapter (its committed full run, else a smoke run), build _build/html
#               (PROFILE=smoke or PROFILE=full executes every chapter afresh in that profile)
#   make test   set up the same .venv, then lint, unit tests, chapter smoke tests and the book build,
#               then the browser checks of the built book (make check-site)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PROFILE ?=
CH ?=
PARAMS ?=
# The stamp is keyed on the dependency files, so a change to any of them reinstalls; otherwise a no-op.
DEPS_HASH := $(shell cat requirements.txt constraints.txt pyproject.toml | sha256sum | cut -c1-16)
STAMP := $(VENV)/.installed-$(DEPS_HASH)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: venv book run list test lint format clean check-site chromium linkcheck

venv: $(STAMP)

$(STAMP): requirements.txt constraints.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing torch==2.13.0 (CPU wheel) first, then the pinned environment..."
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -r requirements.txt
	$(BIN)/python -m pip install -q -c constraints.txt --no-deps -e .
	@$(BIN)/python -c "import torch; v = torch.__version__; assert v.startswith('2.13.0'), v; print('torch', v)"
	@rm -f $(VENV)/.installed-*
	@touch $@

book: venv
	$(BIN)/python -m reprobook book $(if $(PROFILE),--profile $(PROFILE))
	$(BIN)/jupyter-book build . -W -n --keep-going
	@echo "Book: _build/html/index.html"

run: venv
	@test -n "$(CH)" || { echo "usage: make run CH=ch10-bayesian-oracle PARAMS='-p profile full -p seed 2'"; exit 2; }
	$(BIN)/python -m reprobook run $(CH) $(PARAMS)

list: venv
	$(BIN)/python -m reprobook list

lint: venv
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

format: venv
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

test: lint
	$(BIN)/python -m pytest
	@$(MAKE) --no-print-directory check-site

# Browser checks of the built book (_build/html, from `make book` or the tests' build): every page
# in headless Chromium with the network refused; screenshots in _build/screenshots.
check-site: venv chromium
	$(BIN)/python -m reprobook.sitecheck

# External links of the built book (network needed; the weekly workflow runs it after make book).
linkcheck: venv
	$(BIN)/jupyter-book build . --builder linkcheck

# Debian's Chromium, installed when missing (as root, or through sudo).
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  echo "Installing Debian's chromium for the browser checks..."; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get install -y -q chromium >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q chromium >/dev/null; }; }

clean:
	rm -rf _build notebooks/*.ipynb .pytest_cache .ruff_cache
