# The two commands a new machine needs: `make run` and `make test`. Both create the virtualenv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
AS_OF ?= 2026-11-27

.PHONY: run test lint typecheck unit practice bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Evaluate the bundled synthetic practice and print a readable summary.
run: $(STAMP)
	$(BIN)/hrm-fhir evaluate --as-of $(AS_OF) --format summary fixtures/practice/ndjson

## Lint, format check, strict type check and the whole test suite.
test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

## Regenerate the bundled synthetic practice (200 patients, seed 1).
practice: $(STAMP)
	rm -rf fixtures/practice
	$(BIN)/hrm-fhir fixtures generate --patients 200 --seed 1 --as-of $(AS_OF) --out fixtures/practice

## Evaluate a 20,000-patient export against a bare orjson parse (see bench/README.md).
bench: $(STAMP)
	$(BIN)/python bench/bench_evaluate.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
