# Two commands for a fresh machine: `make run` (set up, then the default experiment) and `make test`.
# Both create .venv and install everything on first use; later calls reuse it until pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
# The CPU build by default. A GPU user installs a CUDA build instead, e.g.
#   make setup TORCH="torch==2.13.0 --index-url <the PyTorch CUDA wheel index of your CUDA version>"
TORCH ?= torch==2.13.0
ARGS ?=
PYTEST_ARGS ?=

.PHONY: setup run test
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet $(TORCH)
	$(VENV)/bin/python -m pip install --quiet -e ".[test]"
	touch $@

run: setup
	$(VENV)/bin/python run.py $(ARGS)

test: setup
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)
