# The two commands of the README: `make demo` and `make test`. Each sets up what it needs:
# influxd (Debian's influxdb package), a virtual environment, and influxhtm with its extras.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck docs bench influxd venv clean

demo: influxd venv
	$(BIN)/influxhtm demo

test: influxd venv
	$(BIN)/python -m pytest -p no:cacheprovider tests

lint: venv
	$(BIN)/ruff check influxhtm tests benchmarks

typecheck: venv
	$(BIN)/mypy influxhtm

docs: venv
	$(BIN)/sphinx-build -W -b html docs docs/_build/html

bench: influxd venv
	$(BIN)/python -m benchmarks

influxd:
	@bash scripts/ensure-influxd.sh

venv: $(STAMP)

$(STAMP): setup.py pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "influxhtm needs Python 3.11 or newer"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[all]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) build *.egg-info docs/_build .hypothesis
