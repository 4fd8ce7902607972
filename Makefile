# sdlab: `make demo` and `make test` each create .venv when missing, install, and run.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.sdlab-installed
RAY    := $(VENV)/.sdlab-ray

.PHONY: install demo test lint notebooks figures bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

# Ray is an optional extra: only the tests install it (the Ray executor's cluster tests), never the demo
$(RAY): $(STAMP)
	$(BIN)/python -m pip install -q -e ".[dev,ray]"
	@touch $(RAY)

demo: install
	$(BIN)/sdlab demo --out figures

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install $(RAY) lint
	$(BIN)/pytest

# the lab's notebooks (jupytext .py sources) run with papermill: smoke mode into build/notebooks (not committed)
notebooks: install
	$(BIN)/python -m sdlab.notebooks --smoke

# full mode: figures/<notebook>/ (PNG + HTML) and the executed notebooks in figures/executed/
figures: install
	$(BIN)/python -m sdlab.notebooks --full

bench: install
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
