# The two commands of the README: `make run` and `make test`. Both set up
# everything on a fresh machine that has Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test coverage lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/evidence serve

# Two workers (pytest-xdist): most tests wait on servers, databases and subprocesses,
# so two keep a 2-core machine busy; every worker has its own moto server and databases.
test: $(STAMP)
	$(BIN)/python -m pytest -n 2

# The pure core is what a court's expert reads: every branch of it is tested.
coverage: $(STAMP)
	$(BIN)/python -m pytest -q tests/chain --cov=evidence/chain --cov-branch \
		--cov-report=term-missing --cov-fail-under=100

lint: $(STAMP)
	$(BIN)/ruff check evidence tests bench
	$(BIN)/ruff format --check evidence tests bench
	$(BIN)/mypy --strict evidence

# The custody log, then ingest (uploads through a real server): bench/results/*.json.
bench: $(STAMP)
	$(BIN)/python bench/run.py
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
