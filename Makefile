PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo console screenshots test lint bench clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cleanroom demo --serve

# the console on what the last demo did (make demo keeps its data)
console: $(STAMP)
	$(BIN)/python -m cleanroom.demo.browse

# PNGs of the console's main pages (docs/screenshots/), in Debian's Chromium
screenshots: $(STAMP)
	$(BIN)/python -m cleanroom.demo.screenshots docs/screenshots

test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/pytest -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

bench: $(STAMP)
	$(BIN)/python bench/bench_ledger.py

clean:
	rm -rf $(VENV) .cleanroom .pytest_cache
