# kidsfin: `make demo` then `make test`. Everything lives in .venv; nothing global.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export DAGSTER_HOME ?= $(CURDIR)/data/dagster_home

# `make demo` writes DEMO_START_DATE, its first week: `make dev` starts the weekly
# partitions there, so the UI shows the demo's weeks and no Missing ones before them (a
# KIDSFIN_WEEKS__START_DATE of yours wins).
-include data/demo.mk
ifdef DEMO_START_DATE
dev: export KIDSFIN_WEEKS__START_DATE ?= $(DEMO_START_DATE)
endif

.PHONY: install demo test lint format dev bench ui-check clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,demo]'
	touch $@

# The local SQLite instance (the root's dagster.yaml), only where there is none: no
# prerequisite, so a newer one never replaces a dagster.yaml of yours (your own DAGSTER_HOME).
$(DAGSTER_HOME)/dagster.yaml:
	mkdir -p $(DAGSTER_HOME)
	test -e $@ || cp dagster.yaml $@

demo: install $(DAGSTER_HOME)/dagster.yaml
	$(PY) -m kidsfin_demo.run_demo

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# workspace.yaml names the code location `kidsfin`, as compose does: the same sensor
# state and UI addresses whichever way it runs.
dev: install $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/dagster dev -w workspace.yaml

# `make bench QUICK=1`: small smoke runs of every benchmark (minutes, not ~35 min).
bench: install
	$(PY) -m bench.run_all $(if $(QUICK),--quick)

# What the UI shows, in a real browser: Debian's chromium (`apt-get install -y chromium`),
# headless; a temporary instance and demo database, screenshots in $(OUT) (never in here).
OUT ?= /tmp/kidsfin_ui_check
ui-check: install
	$(PY) -m tools.ui_check --out $(OUT)

clean:
	rm -rf data/kidsfin.db* data/exports data/dagster_home data/demo.mk
