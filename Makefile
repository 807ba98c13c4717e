# Two entry points: `make demo` shows awayd answering mail, `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: demo test install bench

$(VENV)/.installed: pyproject.toml
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PIP) -e '.[demo]' $$($(PYTHON) .ci/dev-requirements)
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/awayd demo

test: install
	$(VENV)/bin/ruff check awayd tests bench
	$(VENV)/bin/mypy --strict awayd
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: install
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH bench/run
