# One-command set-up: `make demo` runs the main job, `make test` runs the tests.
# Both create the virtual environment (.venv) on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

.PHONY: venv demo test bench clean
venv: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/transferlab demo

test: $(VENV)/.installed
	$(PY) -m pytest -q -n 2 --durations=15

bench: $(VENV)/.installed
	$(PY) benchmarks/extraction.py

clean:
	rm -rf $(VENV) runs .pytest_cache
