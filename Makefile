# NTARS: `make demo` runs the app on the embedded default; `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Django 6 needs Python 3.12+. Use the first interpreter that is new enough: an explicit PYTHON=,
# then python3.x on the PATH, then pyenv-installed versions that are not active (newest first).
PYTHON ?= $(shell for p in python3.14 python3.13 python3.12 python3 $$(ls -d $(HOME)/.pyenv/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -rV); do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1 && { command -v $$p; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help demo test bench lint check clean install test-install browser

help:
	@echo "make demo   set up and run NTARS with demo data on http://127.0.0.1:$(PORT)"
	@echo "make test   set up and run every test"
	@echo "make bench  run the benchmarks (docs/benchmarks.md)"
	@echo "make lint   ruff"

$(VENV)/.runtime: pyproject.toml
	@test -n "$(PYTHON)" || { echo "NTARS needs Python 3.12 or newer: install it, or run make PYTHON=/path/to/python3.12"; exit 1; }
	@echo "Using $(PYTHON) ($$($(PYTHON) --version))"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.test: $(VENV)/.runtime
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.runtime
test-install: $(VENV)/.test browser

# Browser tests drive Debian's Chromium (Playwright cannot download browsers here).
browser:
	@command -v chromium >/dev/null || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "Installing Debian's chromium for the browser tests"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else echo "The browser tests need Chromium on the PATH (Debian: apt-get install chromium)"; exit 1; fi; }

demo: $(VENV)/.runtime
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py seed_demo
	$(PY) manage.py serve --port $(PORT)

test: test-install
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.test
	$(PY) -m benchmarks.run

lint: $(VENV)/.test
	$(PY) -m ruff check .
	$(PY) -m ruff format --check . || true

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache
