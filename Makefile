# The two commands a new machine needs: `make run` and `make test`. Both create the virtualenv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.run-stamp
STAMP := $(VENV)/.installed-stamp
AS_OF ?= 2026-11-27
SANDBOX_PORT ?= 8080
FHIR_BASE ?= http://127.0.0.1:$(SANDBOX_PORT)/fhir
STARTED := $(shell date +%s)
# A stage of `make run`: its number, what it does, and the seconds since make started.
stage = @printf '\n== %s %s (%s s so far)\n' '$(1)' '$(2)' "$$(( $$(date +%s) - $(STARTED) ))"

# pip install, quiet; its output (the build backend's warnings among it) is shown only on failure.
pip = echo "pip install $(1)" && $(BIN)/python -m pip install --quiet $(1) >$(VENV)/pip.log 2>&1 \
	|| { cat $(VENV)/pip.log; exit 1; }

.PHONY: run next-steps evaluate test lint typecheck unit chromium pango postgresql practice bench bench-report bench-sweep bench-load sandbox-stop clean

## The service and its command line (what `make run` needs).
$(RUN_STAMP): pyproject.toml
	$(call stage,1/4,Python environment: $(VENV) with the service and its packages (pip; about 30 s the first time, longer while the download cache of pip is empty))
	$(PYTHON) -m venv $(VENV)
	@$(call pip,--upgrade pip)
	@$(call pip,-e .)
	touch $(RUN_STAMP)

## ... and the development tools (tests, linters, type checker).
$(STAMP): $(RUN_STAMP) pyproject.toml
	@$(call pip,-e '.[dev]')
	touch $(STAMP)

## Start the local HAPI sandbox, load the bundled synthetic practice, run one sweep, print what it
## found (urgent first) and where to look next.
run: $(RUN_STAMP)
	$(call stage,2/4,HAPI FHIR sandbox on port $(SANDBOX_PORT) (the first run builds it with Maven; it then starts in 20-30 s))
	@$(BIN)/hrm-fhir sandbox start --port $(SANDBOX_PORT) >/dev/null
	$(call stage,3/4,Loading the synthetic practice (200 patients, 1413 resources) into $(FHIR_BASE))
	@$(BIN)/hrm-fhir load --fhir-base $(FHIR_BASE) --format summary fixtures/practice/ndjson
	$(call stage,4/4,One sweep as of $(AS_OF): evaluate and write back Tasks and Flags)
	@$(BIN)/hrm-fhir sweep --fhir-base $(FHIR_BASE) --as-of $(AS_OF) --practice practice-1 --format summary
	@printf '\n== done in %s s\n' "$$(( $$(date +%s) - $(STARTED) ))"
	@$(MAKE) --no-print-directory next-steps

## Where to look next: the pages, on the data `make run` wrote.
next-steps:
	@echo
	@echo "Next: the pages (worklist, patient card, review queue) on what the sweep wrote. In this shell:"
	@echo "  export HRM_FHIR_BASE_URL=$(FHIR_BASE)"
	@echo "  export HRM_SECRET_KEY=\$$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
	@echo "  .venv/bin/hrm-fhir users add tess --role technician --practice practice-1   # asks for a password (12+ characters)"
	@echo "  .venv/bin/hrm-fhir users add phil --role pharmacist --practice practice-1"
	@echo "  .venv/bin/hrm-fhir serve          # then open http://127.0.0.1:8000/ and sign in"
	@echo "Offline, with no server: make evaluate. Stop the sandbox (its data is in memory): make sandbox-stop"

## Evaluate the bundled synthetic practice offline (no server) and print a readable summary.
evaluate: $(RUN_STAMP)
	$(BIN)/hrm-fhir evaluate --as-of $(AS_OF) --format summary fixtures/practice/ndjson

## Lint, format check, strict type check and the whole test suite.
test: chromium pango postgresql lint typecheck unit

## The browser tests (tests/web/browser) drive Debian's Chromium through Playwright: install it when missing.
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

## Load the bundled and a 2,000-patient practice with the loader and with its old strategy.
bench-load: $(STAMP)
	cd bench && ../$(BIN)/python bench_load.py

## A sweep of the same practice on a private HAPI against bare paging (slow: loads HAPI first).
bench-sweep: $(STAMP)
	$(BIN)/python bench/bench_sweep.py

## The monthly report of a 20,000-patient practice with a year of history (see bench/README.md).
bench-report: $(STAMP) pango
	$(BIN)/python bench/bench_report.py

## Stop the local HAPI sandbox.
sandbox-stop: $(RUN_STAMP)
	$(BIN)/hrm-fhir sandbox stop

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
