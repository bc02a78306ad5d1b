# facecover: `make run` installs everything and runs the workflow on the
# embedded default; `make test` installs everything and runs the tests.
# Python 3.11, 3.12 or 3.13: the newest of python3.13, python3.12, python3.11 that runs here, else python3;
# or say which: `make test PYTHON=python3.12 VENV=.venv312` (one venv per interpreter).
SUPPORTED := 3.13 3.12 3.11
ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell for v in $(SUPPORTED); do p=$$(command -v python$$v) && $$p -c '' 2>/dev/null && { echo $$p; exit; }; done; command -v python3)
endif
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= 2

.PHONY: install run test test-slow bench clean

$(STAMP): pyproject.toml scripts/system-deps.sh scripts/check-meshmonk.sh scripts/meshmonk-build-constraints.txt
	@test -n "$(PYTHON)" || { echo "facecover needs Python 3.11, 3.12 or 3.13: none found (python3.13, python3.12, python3.11, python3); set PYTHON=" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if (3, 11) <= v <= (3, 13) else "facecover needs Python 3.11, 3.12 or 3.13; $(PYTHON) is %d.%d (set PYTHON=)" % v)'
	@echo "facecover: installing into $(VENV) with $(PYTHON) ($$($(PYTHON) -c 'import platform; print(platform.python_version())'))"
	bash scripts/system-deps.sh $(PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	bash scripts/check-meshmonk.sh $(VENV)
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/snakemake --cores $(CORES)

test: install
	$(BIN)/pytest -q

test-slow: install
	$(BIN)/pytest -q -m slow

bench: install
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	$(BIN)/python bench/ingest_time.py
	$(BIN)/python bench/scars_render.py
	$(BIN)/python bench/covers.py
	$(BIN)/python bench/registration.py
	$(BIN)/python bench/mutations.py

clean:
	rm -rf results .snakemake
