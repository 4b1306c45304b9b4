# coupon-rush: `make run` rushes both strategies on embedded defaults and reports; `make test` runs the checks.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run serve test lint format clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

## run: the lab's demo on embedded defaults: a short rush on each strategy, the comparison, a report
run: $(STAMP)
	$(BIN)/python -m experiments.lab --demo

## serve: the whole service in the foreground (API, RQ worker, scheduler); Ctrl-C stops it
serve: $(STAMP)
	$(BIN)/python -m app.launcher

## test: lint, types, then the suite with coverage (real MariaDB/Redis if they answer, else embedded)
test: $(STAMP)
	@echo "== ruff: lint and format =="
	@$(BIN)/ruff check . && $(BIN)/ruff format --check . \
	  || { echo "GATE FAILED: ruff. Run 'make format' and fix what remains."; exit 1; }
	@echo "== mypy =="
	@$(BIN)/mypy \
	  || { echo "GATE FAILED: mypy. Fix the type errors above (config in pyproject.toml)."; exit 1; }
	@echo "== pytest with coverage =="
	@$(BIN)/python -m pytest --cov --cov-report=term-missing:skip-covered $(PYTEST_ARGS) \
	  || { echo "GATE FAILED: tests or the coverage floor (fail_under in pyproject.toml)."; exit 1; }

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache .mypy_cache .coverage htmlcov
