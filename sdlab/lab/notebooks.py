"""Run the lab's notebooks with papermill: smoke mode for CI (``make notebooks``), full mode for the figures
(``make figures``).

>>> from sdlab.lab.notebooks import run_notebook, run_all
>>> run_notebook("notebooks/00_quickstart.py", out_dir="build/notebooks")   # smoke mode: seconds on a CPU
>>> run_all(smoke=False)   # figures/<notebook>/ (PNG + HTML) and figures/executed/<notebook>.ipynb

Run by hand (JupyterLab, ``make lab``), a notebook writes into ``build/lab/<notebook>/`` (not committed) from
wherever its kernel started (:func:`output_dir`); only the runner's full mode writes the committed
``figures/<notebook>/``.

Command line (from the repository root)::

    python -m sdlab.lab.notebooks --smoke            # every notebook, smoke parameters, into build/notebooks/
    python -m sdlab.lab.notebooks --full 00 03       # the full figures of the notebooks whose names start so
    python -m sdlab.lab.notebooks --sync             # rewrite each .ipynb from its jupytext .py (outputs stripped)
    python -m sdlab.lab.notebooks --check            # fail when a .py / .ipynb pair differs

The jupytext ``.py`` (percent format) is the source of truth: it is what runs, so a stale ``.ipynb`` never
does; :func:`check_pairs` reports pairs that differ. Each notebook has a papermill ``parameters`` cell; the runner
sets ``smoke`` and ``out_dir`` (where the notebook writes its figures) and any ``parameters`` given. The kernel
runs with ``SDLAB_CHARTS=static``, so charts are stored as plotly HTML plus PNG rather than live widgets, and
``SDLAB_PLOTLYJS=../plotly.min.js``, so the HTML figures of every notebook share one copy of plotly.js.

Needs papermill, jupytext, nbclient and ipykernel (``pip install "sdlab[notebooks]"``). The old entry point,
``python -m sdlab.notebooks``, still runs this module for one release.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdlab.errors import SdlabError
from sdlab.lab.manifest import FIGURE_THREADS, record_figures

__all__ = [
    "NotebookRun",
    "find_notebooks",
    "read_notebook",
    "run_notebook",
    "run_all",
    "sync_notebooks",
    "check_pairs",
    "main",
    "output_dir",
    "repo_path",
    "say",
    "listing",
    "NOTEBOOKS_DIR",
    "LAB_DIR",
    "SMOKE_DIR",
    "FIGURES_DIR",
    "EXECUTED_DIR",
]

ROOT = Path(__file__).resolve().parents[2]  # the repository root when sdlab runs from a checkout
NOTEBOOKS_DIR = ROOT / "notebooks"
SMOKE_DIR = ROOT / "build" / "notebooks"  # smoke runs: executed notebooks and figures, not committed
FIGURES_DIR = ROOT / "figures"  # full runs: figures/<notebook>/ ...
EXECUTED_DIR = FIGURES_DIR / "executed"  # ... and the executed notebooks
LAB_DIR = ROOT / "build" / "lab"  # notebooks run by hand (JupyterLab, VS Code): their figures, not committed
LAB_DIR_ENV = "SDLAB_LAB_DIR"  # moves LAB_DIR (the browser test: a temporary folder)
CELL_TIMEOUT = 900  # seconds one cell may run before the run fails (a full-mode sweep cell is the longest)
PATTERN = "[0-9][0-9]_*.py"  # lab notebooks: two digits, underscore, name
_NEEDS = ("papermill", "jupytext", "nbclient", "ipykernel")
RECORDED = (".png", ".svg", ".csv", ".md")  # what a full run records in figures/MANIFEST.json


@dataclass
class NotebookRun:
    """One executed notebook: where it came from and went, how long it took, what it wrote."""

    name: str
    source: Path
    output: Path  # the executed notebook (.ipynb)
    figures_dir: Path  # the notebook's out_dir parameter
    seconds: float
    files: list[Path] = field(default_factory=list)  # files the run wrote under figures_dir
    error: str | None = None  # None when every cell ran

    @property
    def ok(self) -> bool:
        return self.error is None


def _require() -> None:
    import importlib.util

    missing = [m for m in _NEEDS if importlib.util.find_spec(m) is None]
    if missing:
        raise SdlabError(
            f"running notebooks needs {', '.join(missing)}", missing=missing, hint='pip install "sdlab[notebooks]"'
        )


def repo_path(*parts: str) -> Path:
    """A path in the repository (``repo_path("figures", "convergence.csv")``, ``repo_path("data")``), found from
    sdlab's own files, so a notebook finds it wherever its kernel started; the working directory when sdlab is not
    installed from a checkout."""
    root = ROOT if (ROOT / "notebooks").is_dir() and (ROOT / "pyproject.toml").is_file() else Path.cwd()
    return root.joinpath(*parts)


def output_dir(name: str, out_dir: str | Path | None = None) -> Path:
    """The folder a notebook writes its figures to, created: ``out_dir`` when given (a relative one from the
    repository root: ``make figures`` passes ``figures/<name>``), else ``build/lab/<name>/`` (not committed; env
    ``SDLAB_LAB_DIR`` moves that folder), so running a notebook by hand never rewrites the committed figures.

    >>> out = output_dir("00_quickstart", None)   # <repository>/build/lab/00_quickstart, wherever Jupyter started
    """
    if not name or "/" in name or "\\" in name:
        raise SdlabError("a notebook name is one folder name", name=name, hint='e.g. "00_quickstart"')
    if out_dir is None:
        base = os.environ.get(LAB_DIR_ENV)
        folder = Path(base) / name if base else repo_path("build", "lab", name)
    else:
        folder = Path(out_dir)
    if not folder.is_absolute():
        folder = repo_path(str(folder))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def listing(items: Iterable[Any], *, conjunction: str = "and") -> str:
    """Items as prose: ``"Euler"``, ``"Euler and Heun"``, ``"Euler, Heun and LMS"``; ``"none"`` when empty."""
    words = [str(i) for i in items]
    if not words:
        return "none"
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {conjunction} {words[-1]}"


def say(text: str) -> None:
    """Show ``text`` as Markdown in a notebook, print it elsewhere: prose written from the numbers a cell computed,
    so a smoke run and a full run both read true.

    >>> say(f"**{listing(['Euler', 'Heun'])}** converge (b < 0).")   # bold list of samplers, as Markdown
    """
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display(Markdown(text))
    else:
        print(text)


def find_notebooks(folder: str | Path = NOTEBOOKS_DIR, names: Sequence[str] = ()) -> list[Path]:
    """The lab's notebook sources (``NN_name.py``) in ``folder``, sorted; ``names`` keeps those whose file name
    starts with one of them (``"00"``, ``"03_stability"``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SdlabError("no notebooks folder", folder=str(folder), hint="run from the repository root")
    found = sorted(folder.glob(PATTERN))
    if names:
        found = [p for p in found if any(p.name.startswith(n) for n in names)]
        if not found:
            raise SdlabError("no notebook matches", names=list(names), hint="e.g. 00 or 03_stability")
    return found


def read_notebook(path: str | Path) -> Any:
    """A notebook (``nbformat.NotebookNode``) from its jupytext ``.py`` or an ``.ipynb``."""
    import jupytext

    path = Path(path)
    if not path.exists():
        raise SdlabError("notebook not found", path=str(path))
    return jupytext.read(path)


@contextlib.contextmanager
def _env(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the kernel the block starts (it inherits them), then restore them."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _written(folder: Path, since: float) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.stat().st_mtime >= since)


def _failure(exc: Exception) -> str:
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if ename:
        return f"{ename}: {evalue}"
    return f"{type(exc).__name__}: {exc}"


def run_notebook(
    path: str | Path,
    *,
    parameters: Mapping[str, Any] | None = None,
    out_dir: str | Path = SMOKE_DIR,
    figures_dir: str | Path | None = None,
    smoke: bool = True,
    timeout: int = CELL_TIMEOUT,
    kernel_name: str = "python3",
    cwd: str | Path | None = None,
    log: Callable[[str], None] | None = print,
    raise_on_error: bool = True,
    threads: int | None = None,
) -> NotebookRun:
    """Execute one notebook with papermill; the executed copy goes to ``out_dir/<name>.ipynb``.

    Parameters set: ``smoke``, ``out_dir`` (the notebook's figures folder: ``figures_dir``, default
    ``out_dir/<name>``), then ``parameters``. ``timeout`` is per cell, in seconds. ``cwd`` (default: the
    repository root above ``notebooks/``) is where the kernel starts. A failing cell raises a SdlabError naming
    the notebook and the error (the executed copy, with the traceback, is still written), unless
    ``raise_on_error=False``, which records it in the returned :class:`NotebookRun` instead.

    ``threads``: CPU threads for the kernel's torch (``OMP_NUM_THREADS``); default 1 in smoke mode, where the
    embedded model's tensors are tiny and two threads on a shared 2-core machine run several times slower than
    one (they wait on each other), and :data:`sdlab.lab.manifest.FIGURE_THREADS` in full mode, so the committed
    figures come out the same on any machine.
    """
    _require()
    import papermill

    source = Path(path).resolve()
    name = source.stem
    out_dir = Path(out_dir).resolve()
    figures = Path(figures_dir).resolve() if figures_dir is not None else out_dir / name
    figures.mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / f"{name}.ipynb"
    params = {"smoke": bool(smoke), "out_dir": str(figures), **(parameters or {})}
    cwd = (
        Path(cwd) if cwd is not None else (source.parent.parent if source.parent.name == "notebooks" else source.parent)
    )
    nb = read_notebook(source)
    if log:
        log(f"-- {name} ({'smoke' if smoke else 'full'}) ...")
    threads = (1 if smoke else FIGURE_THREADS) if threads is None else threads
    # static charts in the stored outputs; one plotly.js for all of the notebooks' figure folders
    env = {"SDLAB_CHARTS": "static", "SDLAB_PLOTLYJS": "../plotly.min.js", "PYTHONUNBUFFERED": "1"}
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    start = time.time()
    error = None
    try:
        with _env(env):
            papermill.execute_notebook(
                nb, str(output), parameters=params, kernel_name=kernel_name, progress_bar=False, cwd=str(cwd),
                execution_timeout=timeout, language="python",
            )  # fmt: skip
    except Exception as exc:  # papermill raises its own error for a failing cell, others for kernel trouble
        error = _failure(exc)
    seconds = time.time() - start
    run = NotebookRun(name, source, output, figures, seconds, _written(figures, start - 1), error)
    if log:
        status = "ok" if run.ok else f"FAILED ({error})"
        log(f"   {name}: {status} in {seconds:.1f} s, {len(run.files)} files in {figures}")
    if error and raise_on_error:
        raise SdlabError(
            f"notebook {name} failed: {error}",
            notebook=str(source),
            executed=str(output),
            hint="open the executed notebook to see the failing cell",
        )
    return run


def run_all(
    *,
    smoke: bool = True,
    names: Sequence[str] = (),
    notebooks_dir: str | Path = NOTEBOOKS_DIR,
    out_dir: str | Path | None = None,
    figures_root: str | Path | None = None,
    timeout: int = CELL_TIMEOUT,
    parameters: Mapping[str, Any] | None = None,
    log: Callable[[str], None] | None = print,
    threads: int | None = None,
) -> list[NotebookRun]:
    """Execute every lab notebook (or those ``names`` pick), one after the other, and go on past failures.

    Smoke mode: executed copies and figures under ``build/notebooks/`` (not committed). Full mode
    (``smoke=False``): figures into ``figures/<notebook>/`` and executed copies into ``figures/executed/``; each
    notebook that ran records its PNG and SVG figures, its parameters and the thread count in the figures'
    manifest (:func:`sdlab.lab.manifest.record_figures`), so a check can say which are stale.
    """
    paths = find_notebooks(notebooks_dir, names)
    if out_dir is None:
        out_dir = SMOKE_DIR if smoke else EXECUTED_DIR
    if figures_root is None:
        figures_root = Path(out_dir) if smoke else FIGURES_DIR
    runs = []
    t0 = time.time()
    for k, path in enumerate(paths, 1):
        if log:
            log(f"[{k}/{len(paths)}] {path.name}  (elapsed {time.time() - t0:.0f} s)")
        runs.append(
            run_notebook(
                path, parameters=parameters, out_dir=out_dir, figures_dir=Path(figures_root) / path.stem,
                smoke=smoke, timeout=timeout, log=log, raise_on_error=False, threads=threads,
            )
        )  # fmt: skip
        if not smoke and runs[-1].ok:
            _record(runs[-1], figures_root, parameters, FIGURE_THREADS if threads is None else threads)
    if log:
        failed = [r.name for r in runs if not r.ok]
        tail = f"; failed: {', '.join(failed)}" if failed else ""
        log(f"{len(runs) - len(failed)}/{len(runs)} notebooks ran in {time.time() - t0:.0f} s{tail}")
    return runs


def _record(run: NotebookRun, root: str | Path, parameters: Mapping[str, Any] | None, threads: int) -> None:
    """Record a full run's committed figures and tables (PNG, SVG, CSV, Markdown; not the HTML, which git ignores,
    nor wall times) in ``root``'s manifest, producer "notebook <name>"."""
    figures = [p for p in run.files if p.suffix.lower() in RECORDED and not p.name.endswith("timings.csv")]
    spec = {"notebook": run.name, "smoke": False, **(parameters or {})}
    record_figures(root, figures, producer=f"notebook {run.name}", spec=spec, threads=threads)


# ---------------------------------------------------------------------------------------------------------------
# .py / .ipynb pairs


def sync_notebooks(folder: str | Path = NOTEBOOKS_DIR, names: Sequence[str] = ()) -> list[Path]:
    """Write each ``.ipynb`` from its jupytext ``.py`` (the source of truth), outputs stripped, paired as
    ``ipynb,py:percent``, keeping existing cell ids; returns the notebooks written (those that changed)."""
    import jupytext

    written = []
    for py in find_notebooks(folder, names):
        nb = jupytext.read(py)
        nb.metadata.setdefault("jupytext", {})["formats"] = "ipynb,py:percent"
        ipynb = py.with_suffix(".ipynb")
        if ipynb.exists():  # keep the cell ids of unchanged positions, so a sync does not rewrite every cell
            old = jupytext.read(ipynb)
            for new_cell, old_cell in zip(nb.cells, old.cells, strict=False):
                if new_cell.cell_type == old_cell.cell_type and "id" in old_cell:
                    new_cell.id = old_cell.id
            if jupytext.writes(nb, "ipynb").rstrip() == ipynb.read_text(encoding="utf-8").rstrip():
                continue
        jupytext.write(nb, ipynb)
        written.append(ipynb)
    return written


def check_pairs(folder: str | Path = NOTEBOOKS_DIR, names: Sequence[str] = ()) -> list[str]:
    """Problems with the ``.py`` / ``.ipynb`` pairs: a missing ``.ipynb``, cells that differ, outputs left in
    the ``.ipynb``, a ``.py`` not paired as ``ipynb,py:percent``. Empty when every pair is in sync."""
    import jupytext
    from jupytext.compare import NotebookDifference, compare_notebooks

    problems = []
    for py in find_notebooks(folder, names):
        ipynb = py.with_suffix(".ipynb")
        if not ipynb.exists():
            problems.append(f"{py.name}: no {ipynb.name} (run python -m sdlab.lab.notebooks --sync)")
            continue
        text_nb, json_nb = jupytext.read(py), jupytext.read(ipynb)
        formats = text_nb.metadata.get("jupytext", {}).get("formats", "")
        if set(formats.split(",")) != {"ipynb", "py:percent"}:
            problems.append(f"{py.name}: paired as {formats!r}, not 'ipynb,py:percent'")
        try:
            compare_notebooks(json_nb, text_nb, fmt="py:percent", compare_outputs=False)
        except NotebookDifference as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else "cells differ"
            problems.append(f"{py.name} and {ipynb.name} differ: {first} (run python -m sdlab.lab.notebooks --sync)")
        with_outputs = [
            i
            for i, c in enumerate(json_nb.cells)
            if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count"))
        ]
        if with_outputs:
            problems.append(f"{ipynb.name}: outputs in cells {with_outputs[:5]} (strip them: --sync)")
    return problems


# ---------------------------------------------------------------------------------------------------------------
# command line


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sdlab.lab.notebooks``: run, sync or check the lab's notebooks (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m sdlab.lab.notebooks", description="Run the lab's notebooks.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--smoke", action="store_true", help="fast CI parameters, into build/notebooks (default)")
    mode.add_argument("--full", action="store_true", help="full figures into figures/<notebook>/ and figures/executed")
    mode.add_argument("--sync", action="store_true", help="rewrite each .ipynb from its .py, outputs stripped")
    mode.add_argument("--check", action="store_true", help="fail when a .py / .ipynb pair differs")
    parser.add_argument("names", nargs="*", help="notebooks whose file names start with these (default: all)")
    parser.add_argument("--timeout", type=int, default=CELL_TIMEOUT, help="seconds per cell")
    parser.add_argument("--folder", default=str(NOTEBOOKS_DIR), help="the notebooks folder")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: 1 smoke, all full)")
    args = parser.parse_args(argv)
    try:
        if args.sync:
            for path in sync_notebooks(args.folder, args.names):
                print(f"wrote {path}")
            return 0
        if args.check:
            problems = check_pairs(args.folder, args.names)
            for p in problems:
                print(p)
            return 1 if problems else 0
        runs = run_all(
            smoke=not args.full, names=args.names, notebooks_dir=args.folder, timeout=args.timeout,
            threads=args.threads,
        )  # fmt: skip
    except SdlabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0 if all(r.ok for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
