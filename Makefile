# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Each one creates .venv and installs dangol into it first (again only when pyproject changes).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DANGOL_TEST_PG_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/test

.PHONY: demo test lint typecheck bench crash clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/dangol demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# About 20 minutes: the Kakao skill endpoint (run.py), the inbox (inbox.py), SOLAPI reports,
# the journey at scale (planners.py) and a 10,000-row customer import (importing.py).
bench: $(STAMP)
	$(BIN)/python bench/run.py
	$(BIN)/python bench/inbox.py
	$(BIN)/python bench/reports.py
	$(BIN)/python bench/planners.py
	$(BIN)/python bench/importing.py

# Ten minutes and a bit: dangol on SQLite at half its flat-out rate (bench/soak.py).
.PHONY: soak
soak: $(STAMP)
	$(BIN)/python bench/soak.py

# Kills real dangol processes while they send (SQLite, then two on PostgreSQL) and counts
# every message at the fake vendors; a few minutes. Exits 1 if a message was lost, sent
# twice, stuck or wrongly given up.
crash: $(STAMP)
	$(BIN)/python bench/crash.py --write-results

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
