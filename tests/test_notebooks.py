"""The lab's notebooks: .py / .ipynb pairs in sync and following the skeleton (fast), and every notebook run in
smoke mode through sdlab.lab.notebooks (marked ``notebook``: about a minute each on a loaded 2-core CPU)."""

import ast
import importlib.util
import json
import re

import pytest

from sdlab.lab.notebooks import NOTEBOOKS_DIR, find_notebooks

NOTEBOOKS = find_notebooks(NOTEBOOKS_DIR)
IDS = [p.stem for p in NOTEBOOKS]
PARAMETERS = ("smoke", "device", "out_dir")  # every notebook; the model-based ones also take model and seeds
IMAGE_SUFFIXES = (".png",)
CHART_SUFFIXES = (".html", ".png")


def _cells(path):
    jupytext = pytest.importorskip("jupytext")
    return jupytext.read(path).cells


def test_there_are_notebooks():
    assert {"00_quickstart", "01_samplers_tour", "03_stability"} <= set(IDS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_pair_is_in_sync_and_stripped(path):
    pytest.importorskip("jupytext")
    from sdlab.lab.notebooks import check_pairs

    assert check_pairs(NOTEBOOKS_DIR, names=[path.stem]) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_skeleton_and_parameters_cell(path):
    cells = _cells(path)
    markdown = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    assert re.search(r"^# \d\d · ", markdown, re.M), "a title"
    for part in ("What you will learn", "Prerequisites", "## Step 1", "**Exercise**", "## Going further"):
        assert part in markdown, f"{path.name} lacks {part!r}"
    params = [c for c in cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "one papermill parameters cell"
    assigns = [node for node in ast.walk(ast.parse(params[0].source)) if isinstance(node, ast.Assign)]
    names = {t.id for node in assigns for t in node.targets}
    assert set(PARAMETERS) <= names
    assert re.search(r"^smoke = True\b", params[0].source, re.M), "smoke mode by default"
    assert re.search(r"^out_dir = None\b", params[0].source, re.M), "by hand: figures into build/lab (ignored)"
    code = "\n".join(c.source for c in cells if c.cell_type == "code")
    assert f'output_dir("{path.stem}", out_dir)' in code, "figures go where output_dir says, wherever Jupyter started"
    if "sdlab.generate" in code or "X." in code:
        assert {"model", "seeds"} <= names


def _missing_modules(path) -> list[str]:
    """Top-level modules the notebook imports that are not installed here."""
    missing = set()
    for cell in _cells(path):
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                mods = [node.module]
            else:
                continue
            missing |= {m.split(".")[0] for m in mods if importlib.util.find_spec(m.split(".")[0]) is None}
    return sorted(missing)


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_runs_in_smoke_mode(path, tmp_path):
    for module in ("papermill", "jupytext", "nbclient", "ipykernel"):
        pytest.importorskip(module, reason=f"running notebooks needs {module} (pip install 'sdlab[notebooks]')")
    missing = _missing_modules(path)
    if missing:
        pytest.skip(f"{path.name} needs {', '.join(missing)}, not installed")
    from sdlab.lab.notebooks import run_notebook

    run = run_notebook(path, out_dir=tmp_path, smoke=True, log=None, raise_on_error=False)
    if run.error and run.error.startswith("ModuleNotFoundError"):
        pytest.skip(f"{path.name}: {run.error}")
    assert run.ok, f"{path.name} failed: {run.error} (see {run.output})"
    assert run.output.exists() and run.figures_dir == tmp_path / path.stem
    files = [p for p in run.files if p.suffix in CHART_SUFFIXES]
    pngs = [p for p in files if p.suffix == ".png"]
    assert len(pngs) >= 2, f"{path.name} wrote no image and chart PNGs: {files}"
    if "charts.save_figure" in path.read_text():
        assert any(p.suffix == ".html" for p in files), f"{path.name} wrote no chart HTML"
    executed = json.loads(run.output.read_text())
    outputs = [o for c in executed["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    shown = [o for o in outputs if o.get("output_type") in ("display_data", "execute_result")]
    assert any("image/png" in o.get("data", {}) for o in shown), "the notebook shows at least one picture"


def test_output_dir_is_ignored_by_default_and_found_from_anywhere(tmp_path, monkeypatch):
    import subprocess

    from sdlab.lab.notebooks import LAB_DIR, ROOT, output_dir, repo_path

    monkeypatch.chdir(tmp_path)  # a kernel started anywhere (JupyterLab at notebooks/, a home folder ...)
    monkeypatch.delenv("SDLAB_LAB_DIR", raising=False)
    assert repo_path("figures") == ROOT / "figures" and repo_path("data", "sweeps").is_dir()
    default = output_dir("99_probe")
    assert default == LAB_DIR / "99_probe" and default.is_dir()
    default.rmdir()
    ignored = subprocess.run(["git", "check-ignore", "-q", str(default / "x.png")], cwd=ROOT)
    assert ignored.returncode in (0, 128)  # ignored by git (128: not a git checkout, e.g. an sdist)
    assert output_dir("99_probe", tmp_path / "abs") == tmp_path / "abs"
    assert output_dir("99_probe", "build/lab/rel") == ROOT / "build" / "lab" / "rel"  # from the root, not the cwd
    (ROOT / "build" / "lab" / "rel").rmdir()
    with pytest.raises(Exception, match="one folder name"):
        output_dir("../x")
    monkeypatch.setenv("SDLAB_LAB_DIR", str(tmp_path / "lab"))
    assert output_dir("99_probe") == tmp_path / "lab" / "99_probe"


def test_prose_helpers_write_lists_and_print_outside_a_notebook(capsys):
    from sdlab.lab.notebooks import listing, say

    assert [listing(x) for x in ([], ["Euler"], ["Euler", "Heun"], ("a", "b", "c"))] == [
        "none", "Euler", "Euler and Heun", "a, b and c"
    ]  # fmt: skip
    assert listing((s for s in ["x", "y"]), conjunction="or") == "x or y"
    say("**LMS** gets worse")
    assert capsys.readouterr().out == "**LMS** gets worse\n"  # no IPython shell here: printed


TINY = """# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
smoke = True
out_dir = "figures/99_tiny"

# %%
import os
from pathlib import Path

Path(out_dir).mkdir(parents=True, exist_ok=True)
(Path(out_dir) / "made.txt").write_text(f"{smoke} {os.environ.get('SDLAB_CHARTS')} {os.environ.get('OMP_NUM_THREADS')}")
assert not FAIL
"""


def test_sync_and_check_pairs(tmp_path):
    pytest.importorskip("jupytext")
    from sdlab.lab.notebooks import check_pairs, sync_notebooks

    py = tmp_path / "99_tiny.py"
    py.write_text(TINY)
    assert check_pairs(tmp_path) == ["99_tiny.py: no 99_tiny.ipynb (run python -m sdlab.lab.notebooks --sync)"]
    assert sync_notebooks(tmp_path) == [tmp_path / "99_tiny.ipynb"]
    assert check_pairs(tmp_path) == []
    ids = [c["id"] for c in json.loads((tmp_path / "99_tiny.ipynb").read_text())["cells"]]
    assert sync_notebooks(tmp_path) == []  # unchanged: not rewritten
    py.write_text(TINY.replace("assert not FAIL", "assert not FAIL  # changed"))
    (problem,) = check_pairs(tmp_path)
    assert "differ" in problem
    sync_notebooks(tmp_path)
    assert [c["id"] for c in json.loads((tmp_path / "99_tiny.ipynb").read_text())["cells"]] == ids  # ids kept
    nb = json.loads((tmp_path / "99_tiny.ipynb").read_text())
    nb["cells"][-1]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "hi"}]
    (tmp_path / "99_tiny.ipynb").write_text(json.dumps(nb))
    assert any("outputs in cells" in p for p in check_pairs(tmp_path))


@pytest.mark.notebook
def test_runner_sets_parameters_and_environment_and_reports_failures(tmp_path):
    for module in ("papermill", "jupytext", "nbclient", "ipykernel"):
        pytest.importorskip(module)
    from sdlab import SdlabError
    from sdlab.lab.notebooks import run_notebook

    src = tmp_path / "src" / "99_tiny.py"
    src.parent.mkdir()
    src.write_text(TINY)
    run = run_notebook(src, out_dir=tmp_path / "out", parameters={"FAIL": False}, log=None)
    assert run.ok and run.output == tmp_path / "out" / "99_tiny.ipynb" and run.output.exists()
    assert run.files == [tmp_path / "out" / "99_tiny" / "made.txt"]
    assert run.files[0].read_text() == "True static 1"  # smoke parameter, static charts, one thread
    failed = run_notebook(src, out_dir=tmp_path / "out", parameters={"FAIL": True}, log=None, raise_on_error=False)
    assert not failed.ok and failed.error.startswith("AssertionError")
    with pytest.raises(SdlabError, match="notebook 99_tiny failed"):
        run_notebook(src, out_dir=tmp_path / "out", parameters={"FAIL": True}, log=None)


@pytest.mark.notebook
def test_full_mode_pins_one_thread_and_records_its_figures_in_the_manifest(tmp_path):
    for module in ("papermill", "jupytext", "nbclient", "ipykernel"):
        pytest.importorskip(module)
    from sdlab.lab.manifest import FIGURE_THREADS, read_manifest
    from sdlab.lab.notebooks import run_all

    src = tmp_path / "src"
    src.mkdir()
    (src / "99_tiny.py").write_text(TINY + '(Path(out_dir) / "figure.png").write_bytes(b"png")\n')
    (run,) = run_all(smoke=False, notebooks_dir=src, out_dir=tmp_path / "executed", figures_root=tmp_path / "figs",
                     parameters={"FAIL": False}, log=None)  # fmt: skip
    assert run.ok and (tmp_path / "figs" / "99_tiny" / "made.txt").read_text() == f"False static {FIGURE_THREADS}"
    manifest = read_manifest(tmp_path / "figs")
    assert list(manifest["figures"]) == ["99_tiny/figure.png"]  # PNG and SVG only
    producer = manifest["producers"]["notebook 99_tiny"]
    assert producer["threads"] == FIGURE_THREADS and producer["spec"]["smoke"] is False


def test_old_runner_path_forwards_and_still_runs(tmp_path):
    import subprocess
    import sys

    import sdlab.lab.notebooks as new
    import sdlab.notebooks as old

    with pytest.warns(DeprecationWarning, match="sdlab.notebooks moved to sdlab.lab.notebooks"):
        assert old.check_pairs is new.check_pairs
    pytest.importorskip("jupytext")
    (tmp_path / "99_tiny.py").write_text(TINY)
    cmd = [sys.executable, "-m", "sdlab.notebooks", "--check", "--folder", str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 1 and "no 99_tiny.ipynb" in out.stdout  # the new runner's main, via the old path
    assert "moved to python -m sdlab.lab.notebooks" in out.stderr
