"""What a sweep is about to do, before it does it: the grid's volume checked against its limit, and a time estimate.

>>> check_volume(cells)                       # SdlabError over sdlab.limits.max_sweep_images()
>>> describe_plan(cells, todo, estimate=True)
'12 of 14 cells to run (24 images; 2 cells stored), estimated 3.1 min here'
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

from sdlab import limits
from sdlab.errors import SdlabError
from sdlab.samplers import resolve_sampler
from sdlab.sweeps.cells import Cell, generate_run

__all__ = ["count_images", "check_volume", "estimate_seconds", "describe_plan", "ESTIMATE_FROM"]

ESTIMATE_FROM = 200  # images to compute from which run_sweep times a short calibration run to estimate the total


def count_images(cells: Sequence[Cell]) -> int:
    """The images the cells make (one per seed of each cell)."""
    return sum(len(cell.run.seeds) for cell in cells)


def check_volume(cells: Sequence[Cell]) -> None:
    """SdlabError when the grid holds more images than :func:`sdlab.limits.max_sweep_images` allows."""
    total, limit = count_images(cells), limits.max_sweep_images()
    if total > limit:
        raise SdlabError(
            f"the grid holds {total:,} images in {len(cells):,} cells, over the limit of {limit:,}",
            hint=f"shrink the grid (seeds, steps, samplers, option lists), or set {limits.SWEEP_ENV}={total} "
            "if you mean it",
        )


def _nfe_per_step(sampler: str) -> float:
    """Model evaluations per step from the catalogue; 2 where it is adaptive or unknown (a rough guess)."""
    evals = resolve_sampler(sampler).info.evals_per_step
    return 2.0 if evals is None else float(evals)


def estimate_seconds(cells: Sequence[Cell]) -> float:
    """Seconds to run ``cells`` here: per-image overhead and per-evaluation cost timed on the first cell's model."""
    run = cells[0].run
    seconds = {}
    for steps in (2, 2, 4):  # the first 2-step run warms up; the second is timed
        start = time.perf_counter()
        calibration = replace(
            run, seeds=run.seeds[:1], sampler="Euler", schedule="Karras", steps=steps, sampler_options=()
        )
        generate_run(calibration, trajectory=False)
        seconds[steps] = time.perf_counter() - start
    per_eval = max(seconds[4] - seconds[2], 0.0) / 2
    overhead = max(seconds[2] - 2 * per_eval, 0.0)
    return sum(
        len(cell.run.seeds) * (overhead + cell.run.steps * _nfe_per_step(cell.run.sampler) * per_eval) for cell in cells
    )


def describe_plan(cells: Sequence[Cell], todo: Sequence[Cell], *, estimate: bool) -> str:
    """What the sweep is about to do: cells and images to compute, stored ones reused, and an estimated time
    (timed here when ``estimate`` and at least :data:`ESTIMATE_FROM` images are to be made)."""
    n = count_images(todo)
    text = f"{len(todo):,} of {len(cells):,} cells to run ({n:,} images; {len(cells) - len(todo):,} cells stored)"
    if estimate and n >= ESTIMATE_FROM:
        total = estimate_seconds(todo)
        text += f", estimated {total / 60:.1f} min here"
    return text
