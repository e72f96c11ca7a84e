# make run   : create .venv, install, fetch MNIST, run the default experiment (Split-MNIST, class-IL, naive)
# make test  : create .venv, install, fetch MNIST, run the whole test suite
# Both are idempotent: the venv is rebuilt only when pyproject.toml changes, MNIST is fetched once.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
ARGS   ?=

.PHONY: run test data install lint bench clean

run: $(STAMP) data
	$(PY) run.py $(ARGS)

test: $(STAMP) data
	$(PY) -m pytest -q -ra $(ARGS)

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP)

data: $(STAMP)
	$(PY) -m lepton_research.data fetch mnist --data-dir data

lint: $(STAMP)
	$(VENV)/bin/ruff check lepton_research tests bench run.py
	$(VENV)/bin/ruff format --check lepton_research tests bench run.py

bench: $(STAMP) data
	$(PY) bench/overhead.py

clean:
	rm -rf $(VENV) outputs multirun
