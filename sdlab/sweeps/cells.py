"""Cells: the unit of a sweep's work, and the one way to run it that both executors (local and Ray) call.

A cell is one spec with all its seeds (a :class:`SweepRun`), the run it is measured against and what to measure:
a frozen, picklable dataclass whose :meth:`Cell.key` hashes everything that changes its numbers (model id and
weights' SHA-256, sampler, schedule, steps, CFG, options, seeds, size, RNG, device, dtype, the reference, the
metrics and the package versions). :func:`run_cell` is pure: cell in, rows and uint8 images out, no file writes.

What an executor calls, in any process:

>>> seconds = load_model_for(cell.run)          # the model into this process's cache (0.0 if it was there)
>>> result, stats = run_cell_timed(cell)        # CellResult(rows, images) and {"seconds", "load_seconds", "images"}
>>> remember_reference(run, latents, images)    # a reference run made elsewhere, so it is not made again here
>>> recall_reference(run)                       # its final (latents, images), or None
>>> model_key(cell)                             # cells with the same key share a loaded model

Models (:func:`sdlab.generation.load`) and the last :data:`REFERENCE_CACHE_SIZE` reference runs are cached per
process.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from sdlab import generation
from sdlab.experiments import distances, spec_columns, step_deltas
from sdlab.spec import versions

__all__ = [
    "SweepRun",
    "Cell",
    "CellResult",
    "run_cell",
    "run_cell_timed",
    "load_model_for",
    "remember_reference",
    "recall_reference",
    "model_key",
    "generate_run",
    "CELL_FORMAT",
]

CELL_FORMAT = 1  # bump when run_cell's rows change meaning, so old cells are recomputed
REFERENCE_CACHE_SIZE = 8  # reference runs kept per process (final latents + images)


@dataclass(frozen=True)
class SweepRun:
    """What to generate: one spec with all its seeds, the model named and identified by its weights' hash."""

    prompt: str
    negative_prompt: str
    seeds: tuple[int, ...]
    sampler: str
    schedule: str
    steps: int
    cfg: float
    sampler_options: tuple[tuple[str, Any], ...]
    model: str | None
    model_sha256: str
    size: tuple[int, int] | None
    rng: str
    device: str
    dtype: str

    def key(self) -> str:
        return _hash(asdict(self))


@dataclass(frozen=True)
class Cell:
    """One unit of work: a run, the run it is measured against (None: none) and what to measure. Picklable."""

    run: SweepRun
    reference: SweepRun | None
    role: str  # "measured", or "reference" for a reference run of its own
    metrics: tuple[str, ...]
    trajectory: bool = False
    step_image_metrics: tuple[str, ...] = ()
    step_decode: str = "full"
    step_decode_every: int = 1
    reference_label: str = ""
    versions: tuple[tuple[str, str], ...] = field(default_factory=lambda: _versions())

    def key(self) -> str:
        """SHA-256 of everything that changes this cell's rows and images."""
        d = asdict(self)
        d["reference"] = None if self.reference is None else self.reference.key()
        d["format"] = CELL_FORMAT
        return _hash(d)


@dataclass
class CellResult:
    """A cell's tidy rows (one per image x step x metric) and its images (name -> uint8 (H, W, 3) array)."""

    rows: pd.DataFrame
    images: dict[str, np.ndarray]


def _versions() -> tuple[tuple[str, str], ...]:
    return tuple(sorted(versions().items()))


def _hash(d: dict[str, Any]) -> str:
    blob = json.dumps(d, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def model_key(cell: Cell) -> tuple[Any, ...]:
    """What identifies the cell's loaded model: cells with the same key run on one model without reloading."""
    run = cell.run
    return (run.model, run.model_sha256, run.device, run.dtype)


# ---------------------------------------------------------------------------------------------------------------
# models and reference runs, cached per process


def _load_args(run: SweepRun) -> dict[str, Any]:
    """model, device and dtype for generate / load (the model cache keys them as they resolve)."""
    return {"model": run.model, "device": run.device, "dtype": run.dtype}


def load_model_for(run: SweepRun) -> float:
    """Load ``run``'s model into this process's cache; the seconds it took (0 when it was already loaded)."""
    args = _load_args(run)
    start = time.perf_counter()
    was_loaded = generation.is_loaded(**args)
    generation.load(**args)
    return 0.0 if was_loaded else time.perf_counter() - start


def generate_run(run: SweepRun, *, trajectory: bool) -> Any:
    """``run`` generated (:func:`sdlab.generation.generate`, all its seeds in one batch): a GenerateResult."""
    return generation.generate(
        run.prompt, negative_prompt=run.negative_prompt, sampler=run.sampler, schedule=run.schedule,
        steps=run.steps, cfg=run.cfg, seeds=list(run.seeds), size=run.size, rng=run.rng, trajectory=trajectory,
        **_load_args(run), **dict(run.sampler_options),
    )  # fmt: skip


_REFERENCES: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()  # run key -> (latents, images)


def remember_reference(run: SweepRun, latents: torch.Tensor, images: torch.Tensor) -> None:
    """Keep ``run``'s final latents and images in this process (the last :data:`REFERENCE_CACHE_SIZE` runs)."""
    _REFERENCES[run.key()] = (latents, images)
    _REFERENCES.move_to_end(run.key())
    while len(_REFERENCES) > REFERENCE_CACHE_SIZE:
        _REFERENCES.popitem(last=False)


def recall_reference(run: SweepRun) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``run``'s final latents and images if this process keeps them, else None."""
    return _REFERENCES.get(run.key())


def _reference_result(run: SweepRun) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference run's final latents and images: from this process's cache, else generated now."""
    hit = recall_reference(run)
    if hit is None:
        result = generate_run(run, trajectory=False)
        remember_reference(run, result.latents, result.images)
        hit = _REFERENCES[run.key()]
    return hit


# ---------------------------------------------------------------------------------------------------------------
# running one cell (pure: no file writes)


def run_cell(cell: Cell) -> CellResult:
    """Generate the cell's run and measure it: rows (cost, vs reference, per-step deltas) and uint8 images.

    Pure: nothing is written; the model and the reference runs are cached in this process only.
    """
    result = generate_run(cell.run, trajectory=cell.trajectory)
    is_own_reference = cell.reference == cell.run
    if cell.role == "reference" or is_own_reference:
        remember_reference(cell.run, result.latents, result.images)
    values: dict[str, torch.Tensor] = {}
    if cell.reference is not None and not is_own_reference and cell.metrics:
        ref_latents, ref_images = _reference_result(cell.reference)
        values = distances(result.latents, ref_latents, result.images, ref_images, cell.metrics)
    n = len(result.specs)
    per_image = result.seconds / n
    sd = generation.load(**_load_args(cell.run)) if cell.step_image_metrics else None
    rows: list[dict[str, Any]] = []
    images: dict[str, np.ndarray] = {}
    pixels = (result.images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for k, spec in enumerate(result.specs):
        name = f"seed{spec.seed}"
        images[name] = np.ascontiguousarray(pixels[k])
        base = {
            "role": cell.role,
            "reference": cell.reference_label,
            "reference_key": "" if cell.reference is None else cell.reference.key(),
            "nfe": None if result.nfe is None else int(result.nfe),  # None: the denoiser keeps no count
            "seconds": per_image,
            "image": name,
            **spec_columns(spec),
        }
        final = {"step": -1, "sigma": math.nan, "elapsed": result.seconds}
        rows.append(
            {
                **base,
                **final,
                "comparison": "cost",
                "metric": "nfe",
                "value": math.nan if result.nfe is None else float(result.nfe),  # NaN: not counted
            }
        )
        rows.append({**base, **final, "comparison": "cost", "metric": "seconds", "value": per_image})
        for metric, tensor in values.items():
            rows.append({**base, **final, "comparison": "reference", "metric": metric, "value": float(tensor[k])})
        if cell.trajectory:
            deltas = step_deltas(
                result.trajectories[k], result.latents[k], model=sd, image_metrics=cell.step_image_metrics,
                decode=cell.step_decode, decode_every=cell.step_decode_every,
            )  # fmt: skip
            rows.extend({**base, **row} for row in deltas)
    frame = pd.DataFrame(rows)
    first = ["role", "comparison", "sampler", "schedule", "steps", "seed", "cfg", "step", "sigma", "metric", "value"]
    frame = frame[first + [col for col in frame.columns if col not in first]]
    return CellResult(frame, images)


def run_cell_timed(cell: Cell) -> tuple[CellResult, dict[str, Any]]:
    """Run one cell and time it: its result and a stats row (seconds in the cell, of which loading a model)."""
    start = time.perf_counter()
    load_seconds = load_model_for(cell.run)
    result = run_cell(cell)
    seconds = time.perf_counter() - start
    return result, {"seconds": seconds, "load_seconds": load_seconds, "images": len(result.images)}
