# Two commands on a fresh machine:  `make demo` (the main job) and `make test`.
# Both create .venv/ at the repo root on first use.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export QT_QPA_PLATFORM ?= offscreen

.PHONY: demo test lint venv clean-venv

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned to the release these machines carry locally; the rest follows it.
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/inspect-app demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

# The store's tests also run against a throw-away PostgreSQL server on 127.0.0.1 when one can be
# started (installed with apt-get when missing and running as root); otherwise they skip and say so.
test: lint
	eval "$$(scripts/start_postgres.sh)"; $(PY) -m pytest -q; rc=$$?; scripts/start_postgres.sh --stop; exit $$rc

clean-venv:
	rm -rf $(VENV)
