# Quick start: `make demo` then `make test`. Both set up what they need from nothing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CF     := $(BIN)/caracal-forensics
DEMO_OUT ?= demo-out

.PHONY: setup system-deps demo test lint bench fixtures dist clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml setup.py caracal_forensics/chain/_native.c \
    caracal_forensics/_jsonb_native.c caracal_forensics/render/_lines.c | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev,spark]'
	touch $@

setup: $(VENV)/.installed

system-deps:
	bash scripts/system-deps.sh

demo: setup
	@echo "== what the bundled fixtures hold (every export shape)"
	$(CF) stats --source fixtures/export
	@echo "== the 10 newest events across every shape"
	$(CF) audit tail --source fixtures/export --limit 10
	@echo "== verify the hash chain with the fixtures' key"
	AUDIT_HMAC_KEY_FILE=fixtures/key.hex $(CF) verify --source fixtures/export/db.csv --source fixtures/export/alerts.csv
	@echo "== a canonical snapshot of it all"
	rm -rf $(DEMO_OUT) && $(CF) ingest --source fixtures/export --out $(DEMO_OUT)/snapshot

lint: setup
	$(BIN)/ruff check .

test: setup system-deps lint
	$(BIN)/pytest -q

bench: setup system-deps
	$(BIN)/python bench/run.py

fixtures: setup
	$(BIN)/python fixtures/make_fixtures.py

# An sdist, and the wheel built from it (what tests/integration/test_installed_wheel.py installs).
dist: setup
	rm -rf dist build
	$(BIN)/python -c "from setuptools import build_meta as b; b.build_sdist('dist')"
	$(BIN)/pip wheel -q --no-deps --no-build-isolation -w dist dist/caracal_forensics-*.tar.gz
	@ls dist

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .ruff_cache .hypothesis dist build *.egg-info
