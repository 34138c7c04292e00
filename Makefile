# The two commands a new user needs:  make demo  (the main job: a study of optimizers)  and  make test.
# TORCH_SPEC pins the CPU build that installs from a local file here; override it
# for another build, e.g.  make test TORCH_SPEC="torch>=2.4".
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python

.PHONY: install demo test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

demo: install
	$(VENV)/bin/trainlab study examples/optimizers.toml

test: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy src/trainlab
	$(PY) -m pytest

bench: install
	$(PY) benchmarks/overhead.py

clean:
	rm -rf $(VENV) runs .pytest_cache
