# coupon-rush: `make run` rushes both strategies on embedded defaults and reports; `make test` runs the checks.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCKS  := requirements.lock requirements-dev.lock
# Stopping installs nothing: an embedded Redis can only have been started from an installed venv.
# It refuses (exit 1) while `make serve` runs on the same instance folder: Ctrl-C there stops both.
STOP_EMBEDDED = if test -x $(BIN)/python; then $(BIN)/python -m app.embedded stop; \
	else echo "no venv: no embedded Redis to stop"; fi

.PHONY: help run serve stop test lint format lock clean

## help: list the targets
help:
	@grep -E '^## ' $(MAKEFILE_LIST) | sed -e 's/^## //' -e 's/: /\t/' | expand -t 10

# The venv holds exactly the versions the suite ran on: requirements-dev.lock (see `make lock`), which
# repeats every pin of requirements.lock; a change to either lock file reinstalls.
$(STAMP): $(LOCKS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.lock
	touch $(STAMP)

## run: the lab's demo on embedded defaults: a short rush on each strategy, the comparison, a report
run: $(STAMP)
	$(BIN)/python -m experiments.lab --demo

## serve: the whole service in the foreground (API on 127.0.0.1:8000, RQ worker, scheduler); Ctrl-C stops it
serve: $(STAMP)
	$(BIN)/python -m app.launcher

## stop: stop an embedded Redis left running (its data stays in instance/); refuses while make serve runs
stop:
	@$(STOP_EMBEDDED)

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

## lint: ruff, lint and format check
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## format: ruff's fixes and formatting
format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## lock: re-pin every dependency after a requirements*.txt change (requirements.lock: the image; -dev: make)
lock: $(STAMP)
	for pair in "requirements.lock requirements.txt" "requirements-dev.lock requirements-dev.txt"; do \
	  set -- $$pair; CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --strip-extras \
	    --no-emit-index-url --no-emit-trusted-host --no-emit-find-links -o $$1 $$2 || exit 1; \
	done

## clean: stop the embedded Redis, then remove the venv, instance/ and caches
clean:
	-@$(STOP_EMBEDDED)
	rm -rf $(VENV) instance .pytest_cache .ruff_cache .mypy_cache .coverage htmlcov
