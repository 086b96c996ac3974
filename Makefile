# The two commands a new machine needs: `make run` and `make test`. Both create the virtualenv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
AS_OF ?= 2026-11-27
SANDBOX_PORT ?= 8080
FHIR_BASE ?= http://127.0.0.1:$(SANDBOX_PORT)/fhir

.PHONY: run evaluate test lint typecheck unit chromium pango postgresql practice bench bench-report bench-sweep sandbox-stop clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Start the local HAPI sandbox, load the bundled synthetic practice, run one sweep, print what it wrote.
run: $(STAMP)
	$(BIN)/hrm-fhir sandbox start --port $(SANDBOX_PORT)
	$(BIN)/hrm-fhir load --fhir-base $(FHIR_BASE) fixtures/practice/ndjson
	$(BIN)/hrm-fhir sweep --fhir-base $(FHIR_BASE) --as-of $(AS_OF) --practice practice-1 --full --format summary

## Evaluate the bundled synthetic practice offline (no server) and print a readable summary.
evaluate: $(STAMP)
	$(BIN)/hrm-fhir evaluate --as-of $(AS_OF) --format summary fixtures/practice/ndjson

## Lint, format check, strict type check and the whole test suite.
test: chromium pango postgresql lint typecheck unit

## The browser tests (tests/browser) drive Debian's Chromium through Playwright: install it when missing.
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
		echo "installing chromium (apt-get) for the browser tests"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends chromium fonts-liberation; \
	fi

## The monthly report's PDF (WeasyPrint 70) needs Pango and HarfBuzz's subsetter (fonts are
## subset into the PDF): install them when missing.
pango:
	@if ! /sbin/ldconfig -p | grep -q libpango-1.0 || ! /sbin/ldconfig -p | grep -q libharfbuzz-subset; then \
		echo "installing pango (apt-get) for the PDF report"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0; \
	fi

## The database tests run on SQLite and on a throwaway PostgreSQL cluster that the suite starts
## with Debian's binaries (tests/databases.py): install the postgresql package when missing.
postgresql:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "installing postgresql (apt-get) for the database tests"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends postgresql; \
	fi

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

## A sweep of the same practice on a private HAPI against bare paging (slow: loads HAPI first).
bench-sweep: $(STAMP)
	$(BIN)/python bench/bench_sweep.py

## The monthly report of a 20,000-patient practice with a year of history (see bench/README.md).
bench-report: $(STAMP) pango
	$(BIN)/python bench/bench_report.py

## Stop the local HAPI sandbox.
sandbox-stop: $(STAMP)
	$(BIN)/hrm-fhir sandbox stop

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
