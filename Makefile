# One-command set-up: `make demo` runs the main job, `make test` runs the tests.
# Both create the virtual environment (.venv) on first use, with the exact versions of requirements/dev.lock.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
LOCK := requirements/dev.lock
LOCK_TOOLS := $(VENV)/lock-tools
export HF_HUB_OFFLINE := 1

# pip applies the constraints of its configuration (this machine's caps torch and torchvision) to every install;
# pip-compile does not read them, so `make lock` hands them on and the lock installs under them
PIP_CONSTRAINTS = $(shell $(PYTHON) -m pip config list 2>/dev/null | sed -n "s/^\(global\|install\|:env:\)\.constraint='\(.*\)'$$/\2/p")

$(VENV)/.installed: $(LOCK) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m pip check || { echo "$(LOCK) does not satisfy pyproject.toml: run make lock"; exit 1; }
	touch $@

.PHONY: venv lock demo test bench clean
venv: $(VENV)/.installed

# Re-resolve .[dev] to the newest versions allowed, with hashes for every file PyPI serves for them.
lock:
	$(PYTHON) -m venv $(LOCK_TOOLS)
	$(LOCK_TOOLS)/bin/python -m pip install --quiet pip==26.3 pip-tools==7.6.2
	CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_TOOLS)/bin/pip-compile --quiet --upgrade --generate-hashes \
		--allow-unsafe --strip-extras --extra dev --no-emit-index-url --no-emit-find-links \
		$(addprefix --constraint ,$(PIP_CONSTRAINTS)) --output-file $(LOCK) pyproject.toml

demo: $(VENV)/.installed
	$(VENV)/bin/transferlab demo

test: $(VENV)/.installed
	$(PY) -m pytest -q -n 2 --durations=15

bench: $(VENV)/.installed
	$(PY) benchmarks/extraction.py

clean:
	rm -rf $(VENV) runs .pytest_cache
