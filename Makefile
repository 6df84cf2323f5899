# kidsfin: `make demo` then `make test`. Everything lives in .venv; nothing global.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export DAGSTER_HOME ?= $(CURDIR)/data/dagster_home

.PHONY: install demo test lint format dev bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

$(DAGSTER_HOME)/dagster.yaml: config/dagster_local.yaml
	mkdir -p $(DAGSTER_HOME)
	cp config/dagster_local.yaml $@

demo: install $(DAGSTER_HOME)/dagster.yaml
	$(PY) -m kidsfin_assets.demo

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

dev: install $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/dagster dev -m kidsfin_assets.definitions

bench: install
	$(PY) -m bench.run_all

clean:
	rm -rf data/kidsfin.db* data/exports data/dagster_home
