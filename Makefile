# avs-tools: `make demo` and `make test` on a fresh machine do all set-up (no root needed).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO   ?= demo-out
PIP    := $(PY) -m pip install -q --disable-pip-version-check -c constraints.txt

.PHONY: install studio-install test test-fast demo bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) torch==2.13.0
	$(PIP) -e ".[models,studio,test,publish,ray]"
	$(PY) tools/ensure_torchvision.py
	$(PY) tools/ensure_torchcodec.py || echo "make install: torchcodec does not load (see above): the Audio feature of datasets will not decode"
	touch $(STAMP)

# Label Studio 1.23.x pins ~1 GB of packages: it gets its own virtual environment (.studio-venv).
studio-install:
	bash tools/studio_install.sh .studio-venv

# Two pytest workers (pytest-xdist); each test module runs on one worker (its fixtures built once), slow modules
# first; a worker that runs Label Studio tests starts one server for them, the Ray tests share one cluster
# (tests/conftest.py). test-fast leaves out the tests marked slow (tests/conftest.py says which) and still runs
# every command once (tests/cli/test_every_command.py).
TEST_WORKERS ?= 2
test: install studio-install
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup --durations=25 tests

test-fast: install
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup -m "not slow" --durations=10 tests

demo: install studio-install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash tools/demo.sh $(DEMO)

bench: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash benchmarks/run_all.sh

lint: install
	$(VENV)/bin/ruff check avsbench_tools tests benchmarks tools

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .ruff_cache
