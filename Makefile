# Passageway: `make run` starts the proxy and the inspector on a demo setup,
# `make test` runs the test suite. Both build .venv on first use; `make test` also
# installs Debian's chromium for the browser tests when it is missing and we are root.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test bench soak venv clean browser

venv: $(STAMP)

$(STAMP): pyproject.toml
	@python=$$(scripts/find-python) || exit 1; \
	  if [ ! -x $(PY) ] || ! $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then \
	    rm -rf $(VENV); echo "creating $(VENV) with $$python"; "$$python" -m venv $(VENV) || exit 1; \
	  fi
	@echo "installing Passageway and its test dependencies into $(VENV) (log: $(VENV)/install.log)"
	@{ $(PY) -m pip install --disable-pip-version-check --upgrade pip \
	  && $(PY) -m pip install --disable-pip-version-check -e '.[test]'; } > $(VENV)/install.log 2>&1 \
	  || { tail -n 30 $(VENV)/install.log; echo "pip install failed: see $(VENV)/install.log"; exit 1; }
	@touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/passageway up --config examples/demo.toml --demo

# Three pytest-xdist workers on CI's 2 cores: most tests wait (processes starting, the network,
# polls), so two workers left the cores a third idle (2026-12-04: 21 CPU-minutes in a 17-minute
# run; three workers: 15.5 minutes against 16.3, same machine and hour; 10.3 minutes that afternoon, the longest files first); timing-bound tests are
# `exclusive` whatever the count. --dist loadfile hands out whole files, so a file's
# module-scoped proxies, browsers and databases start once; --no-loadscope-reorder keeps the
# collection order, in which tests/conftest.py puts the longest files first. Tests marked
# `exclusive` (timing bounds) run with nothing beside them (tests/conftest.py). PYTEST_ARGS come
# last: `make test PYTEST_ARGS=tests/x.py` runs one file, add `-n 0` to run serially (-s, --pdb).
test: $(STAMP) browser
	$(PY) -m pytest -n 3 --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

# The browser tests drive Debian's Chromium (never a downloaded browser). apt-get update
# only when the plain install fails, so a warm machine does not touch the network.
CHROMIUM := /usr/bin/chromium
browser:
	@if [ -x $(CHROMIUM) ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
	  echo "$(CHROMIUM) is missing: run 'sudo apt-get install chromium' for tests/browser"; exit 0; fi; \
	log=$$(mktemp); echo "installing Debian's chromium for tests/browser"; \
	export DEBIAN_FRONTEND=noninteractive; \
	{ apt-get install -y chromium \
	  || { apt-get update && apt-get install -y chromium; }; } > "$$log" 2>&1 \
	  || { tail -n 20 "$$log"; echo "chromium install failed (log: $$log)"; exit 1; }; \
	rm -f "$$log"

bench: $(STAMP)
	$(PY) bench/run.py

# 10 minutes at 80% of the proxy's maximum on a fresh PostgreSQL database (bench/README.md);
# e.g. make soak SOAK_ARGS='--duration 180 --db sqlite'
soak: $(STAMP)
	$(PY) bench/soak.py $(SOAK_ARGS)

clean:
	rm -rf $(VENV) test-output
