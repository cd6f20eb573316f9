# Passageway: `make run` starts the proxy and the inspector on a demo setup,
# `make test` runs the test suite. Both build .venv on first use.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test bench venv clean browser

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

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .passageway-test-output
