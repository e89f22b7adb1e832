# busbarfem: two commands on a fresh machine.
#   make run    create .venv (Python >= 3.12 found automatically), install, run the default case
#   make test   same set-up plus ParaView (apt), then the whole test suite on two pytest-xdist workers (one process each) and the MPI tests under mpirun -n 2
VENV      ?= .venv
PY        := $(VENV)/bin/python
CASE      ?= examples/busbar_l_bolted.yaml
OUT       ?= results/default
STAMP     := $(VENV)/.installed
# pytest-xdist workers for the serial tier (each test still runs in one process)
TEST_WORKERS ?= 2

.PHONY: run test test-fast docs docs-serve venv paraview clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@PYBIN=$$(scripts/find_python.sh) || exit 1; \
	  test -x $(PY) || $$PYBIN -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

# ParaView's pvpython (Debian's paraview package) for the test that opens fields.xdmf with
# Xdmf3ReaderT; a no-op when pvpython is already on PATH.
paraview:
	@scripts/install_paraview.sh

run: venv
	$(PY) -m busbarfem run $(CASE) -o $(OUT) --overwrite

test: venv paraview
	$(PY) -m pytest tests -q -n $(TEST_WORKERS) --dist loadfile --durations=25
	$(VENV)/bin/mpirun -n 2 $(PY) -m pytest tests/mpi -q -p no:cacheprovider

test-fast: venv
	$(PY) -m pytest tests -q -m "not slow" -n $(TEST_WORKERS) --dist loadfile

docs: venv
	$(PY) scripts/gen_docs.py
	$(VENV)/bin/mkdocs build --strict

docs-serve: venv
	$(VENV)/bin/mkdocs serve

clean:
	rm -rf $(VENV) results .pytest_cache
