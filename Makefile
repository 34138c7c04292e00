# The two commands a new user needs:  make demo  (the main job: a study of optimizers)  and  make test.
# TORCH_SPEC pins the CPU build that installs from a local file here; override it
# for another build, e.g.  make test TORCH_SPEC="torch>=2.4".
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python

.PHONY: install browser fashion-mnist demo test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

demo: install
	$(VENV)/bin/trainlab study examples/optimizers.toml

# The report test renders report.html in headless Chromium. Install it when we can (apt-get, as root);
# otherwise stop with one line that says how, rather than skip the test.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	command -v google-chrome >/dev/null 2>&1 || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium (Debian package) for the report test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "make test needs headless Chromium for the report test: run 'sudo apt-get install chromium' (Debian/Ubuntu) or put chromium on PATH, then make test again." >&2; \
		exit 1; \
	fi

# Fashion-MNIST ships as Debian's dataset-fashion-mnist (IDX files); its real-data test and the
# augmentation example read it. Installed when we can; otherwise one line says how (that test is skipped).
fashion-mnist:
	@test -d /usr/share/datasets/fashion-mnist || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing dataset-fashion-mnist (Debian package) for the real-data tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null; \
	else \
		echo "note: Fashion-MNIST is not installed ('sudo apt-get install dataset-fashion-mnist'); its real-data test is skipped." >&2; \
	fi

test: install browser fashion-mnist
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy src/trainlab
	$(PY) -m pytest

bench: install
	$(PY) benchmarks/overhead.py

clean:
	rm -rf $(VENV) runs .pytest_cache
