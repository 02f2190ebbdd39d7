# The README's two commands: `make quickstart` and `make test`. Both set up .venv first.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup quickstart test test-fast lint format bench

setup: $(VENV)/.setup-done

$(VENV)/.setup-done: pyproject.toml scripts/setup.sh
	VENV=$(VENV) scripts/setup.sh
	touch $@

quickstart: setup
	$(BIN)/workbench run recipes/quickstart.yaml
	$(BIN)/workbench report runs/quickstart

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

test: lint
	$(BIN)/python -m pytest -q

# The edit-test loop: everything but the tests marked slow (real fairseq, end-to-end runs,
# kill/resume). CI runs `make test`, which includes them.
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup
	$(BIN)/workbench bench activations
