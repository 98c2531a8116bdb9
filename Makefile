# Two entry points (see README): `make run` starts the daemon on the shipped default
# config; `make test` runs the whole suite. Both build .venv from the hashed lock file
# first, so a fresh machine gets exactly the versions CI tested.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-$(shell sha1sum requirements.lock pyproject.toml | sha1sum | cut -c1-12)

.PHONY: run test lock bench

$(STAMP): requirements.lock pyproject.toml
	rm -f $(VENV)/.installed-*
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --require-hashes -r requirements.lock
	$(VENV)/bin/pip install --quiet --no-deps -e .
	touch $@

run: $(STAMP)
	$(VENV)/bin/monitor run

# The layer contract and the type check are part of the suite: a back-edge or a type error
# fails CI like a failing test.
test: $(STAMP)
	bash scripts/system-packages.sh
	$(VENV)/bin/lint-imports --no-logo
	$(VENV)/bin/python -m mypy
	$(VENV)/bin/python -m pytest tests

# Regenerate the lock after changing dependencies in pyproject.toml (needs `uv`).
lock:
	uv pip compile pyproject.toml --extra test --generate-hashes --python-version 3.11 --no-header -o requirements.lock

bench: $(STAMP)
	$(VENV)/bin/python -m bench.throughput
