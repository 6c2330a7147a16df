# Two commands for a fresh machine: `make run` (set up, then the default experiment) and `make test`.
# Both create .venv and install everything on first use; later calls reuse it until pyproject.toml or
# constraints.txt changes.
PYTHON ?= python3
VENV ?= .venv
# The CPU build by default. A GPU user installs a CUDA build instead, e.g.
#   make setup TORCH="torch==2.13.0 --index-url <the PyTorch CUDA wheel index of your CUDA version>"
TORCH ?= torch==2.13.0
ARGS ?=
PYTEST_ARGS ?=
# The resolved versions the suite last passed with (`make lock` writes them): `make setup` installs exactly
# these, so a run repeated months later gets the same libraries. CONSTRAINTS= installs the newest instead.
CONSTRAINTS ?= constraints.txt
PIP_CONSTRAINTS := $(if $(CONSTRAINTS),-c $(CONSTRAINTS))

# The sweep tests start a throw-away PostgreSQL server: Debian's postgresql package, installed when missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup run test test-fast lock postgres chromium
setup: $(VENV)/.installed

# torch comes from pip (TORCH above), the rest from uv, which resolves and installs several times faster
# (README, "Two commands") and keeps the torch that is there when it satisfies the constraints
$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet $(TORCH)
	$(VENV)/bin/python -m pip install --quiet $(PIP_CONSTRAINTS) uv
	$(VENV)/bin/python -m uv pip install --python $(VENV)/bin/python --quiet $(PIP_CONSTRAINTS) -e ".[test]"
	touch $@

# Record what .venv holds now (after a green `make test`); local version labels (+cpu) are dropped, so the
# pins hold for a CUDA build of the same torch too.
lock: setup
	{ echo "# make lock: the versions the suite last passed with; make setup installs them (CONSTRAINTS= for the newest)"; \
	  $(VENV)/bin/python -m pip freeze --exclude-editable | sed -E 's/\+[A-Za-z0-9.]+$$//'; } > constraints.txt

run: setup
	$(VENV)/bin/python run.py $(ARGS)

postgres:
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null || \
	  { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql >/dev/null; }

# The report test renders report.html in a real headless browser: Debian's chromium, installed when missing.
chromium:
	@command -v chromium >/dev/null || \
	  { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

# every tier (tests/conftest.py): unit, end-to-end, the MiniLM integration test, PostgreSQL and the browser;
# tests/test_layout.py checks the import-linter contracts of pyproject.toml among the unit tests
test: setup postgres chromium
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# the unit tier only: in-process tests of seconds each, no PostgreSQL or browser needed
test-fast: setup
	$(VENV)/bin/python -m pytest -m unit $(PYTEST_ARGS)
