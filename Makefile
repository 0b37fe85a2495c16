# mmflow tasks. `make demo` and `make test` work on a fresh machine with only Python 3.11+.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit slow bench lock clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,dbn,plot,dask]'
	touch $(STAMP)

## Set up, then run the main job on the bundled real sample data.
demo: $(STAMP)
	$(BIN)/mmflow inspect sample_data/
	$(BIN)/mmflow analyze sample_data/

## Set up, then run the tests, the linter and the type checker.
test: $(STAMP) unit lint typecheck

unit: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

## The slow tests (large generated inputs); not part of `make test`.
slow: $(STAMP)
	$(BIN)/pytest -m slow

## The benchmark (benchmarks/bench.py); installs the bench extra (pandas) first.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[bench]'
	$(BIN)/python benchmarks/bench.py

## Re-pin constraints.txt from the current environment (with the bench extra, so pandas stays pinned).
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[bench]'
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^mmflow' > constraints.txt.new
	{ echo '# Exact versions mmflow is tested with (pip install -c constraints.txt ...).'; \
	  echo '# Regenerate with `make lock` after changing dependencies in pyproject.toml.'; \
	  cat constraints.txt.new; } > constraints.txt && rm constraints.txt.new

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
