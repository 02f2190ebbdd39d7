# The README's two commands: `make quickstart` and `make test`. Both set up .venv first.
VENV ?= .venv
BIN := $(VENV)/bin
# The torchvision tests run in a second venv (torch 2.14.1 + torchvision 0.29.1): no torchvision
# release imports beside the main venv's torch 2.13.0 (scripts/setup_vision.sh says why).
VISION_VENV ?= .venv-vision
# pytest-xdist workers for `make test` and `make test-fast`: most tests wait on subprocesses
# (fairseq, workbench runs, Ray), so two workers nearly halve the wall time on a 2-core machine.
# PYTEST_WORKERS=0 runs in one process (the order a test-order check wants).
PYTEST_WORKERS ?= 2
PYTEST_PARALLEL := -n $(PYTEST_WORKERS) --dist worksteal

.PHONY: setup setup-vision quickstart test test-vision test-fast mutants lint format bench

setup: $(VENV)/.setup-done

$(VENV)/.setup-done: pyproject.toml scripts/setup.sh
	VENV=$(VENV) scripts/setup.sh
	touch $@

setup-vision: $(VISION_VENV)/.setup-done

$(VISION_VENV)/.setup-done: pyproject.toml scripts/setup_vision.sh
	VISION_VENV=$(VISION_VENV) scripts/setup_vision.sh
	touch $@

quickstart: setup
	$(BIN)/workbench run recipes/quickstart.yaml
	$(BIN)/workbench report runs/quickstart

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

test: lint test-vision
	$(BIN)/python -m pytest -q $(PYTEST_PARALLEL)

# torchvision models and the ImageNet-folder recipes (tests marked `vision`; they skip in .venv)
test-vision: setup-vision
	$(VISION_VENV)/bin/python -m pytest -q -m vision -p no:cacheprovider

# The edit-test loop: everything but the tests marked slow (real fairseq, end-to-end runs,
# kill/resume). CI runs `make test`, which includes them.
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_PARALLEL)

# Break the code on purpose (scripts/mutants.py) and check that the tests fail: a few minutes.
mutants: setup
	$(BIN)/python scripts/mutants.py

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup
	$(BIN)/workbench bench activations
