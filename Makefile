# Two entry points: `make demo` shows awayd answering mail, `make test` runs every check.
VENV ?= .venv
PY := $(VENV)/bin/python
DEV := pytest hypothesis mypy ruff types-PyYAML aiosmtpd pymap trustme

.PHONY: demo test install bench

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[demo]' $(DEV)
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/awayd demo

test: install
	$(VENV)/bin/ruff check awayd tests bench
	$(VENV)/bin/mypy --strict awayd
	AWAYD_REQUIRE_DOVECOT=$${AWAYD_REQUIRE_DOVECOT:-0} $(PY) -m pytest -q

bench: install
	bench/run
