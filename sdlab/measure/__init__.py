"""Measurements on real generations: image and latent distances, the one cached run-maker, and one module per
experiment family.

>>> from sdlab import measure
>>> measure.compare(images_a, images_b, metrics=("ssim", "psnr"))    # (B, 3, H, W) in [0, 1] -> {name: (B,)}
>>> runner = measure.Runner(prompt="a red circle", seeds=[0, 1])        # each distinct run made once
>>> from sdlab import experiments as ex                                 # the experiment families
>>> ex.convergence(["Euler", "DPM++ 2M"], steps=(5, 10, 20))

Modules: :mod:`~sdlab.measure.metrics` (SSIM, PSNR, LPIPS, latent RMSE), :mod:`~sdlab.measure.runs` (``Runner``,
``RunCache``, ``RunSettings``), :mod:`~sdlab.measure.common` (the result type, the reference, distances, spec columns),
:mod:`~sdlab.measure.steps` (per-step deltas within a run), :mod:`~sdlab.measure.fits` (power laws, steps to
converge) and the families :mod:`~sdlab.measure.convergence`, :mod:`~sdlab.measure.stability`,
:mod:`~sdlab.measure.divergence` (ancestral divergence), :mod:`~sdlab.measure.predictability` and
:mod:`~sdlab.measure.cost`. The family functions are not re-exported here (each shares its module's name);
:mod:`sdlab.experiments` gathers them.
"""

from __future__ import annotations

from sdlab.measure.common import (
    DEFAULT_PROMPT,
    DEFAULT_REFERENCE,
    DISTANCES,
    ExperimentResult,
    Reference,
    distances,
    resolve_metrics,
    spec_columns,
)
from sdlab.measure.fits import DEFAULT_THRESHOLD, fit_power_law, steps_to_converge
from sdlab.measure.metrics import (
    compare,
    describe_metrics,
    latent_rmse,
    lpips,
    lpips_unavailable,
    psnr,
    ssim,
)
from sdlab.measure.runs import DEFAULT_CACHE_SIZE, RunCache, Runner, RunSettings, run_key
from sdlab.measure.steps import decode_latents, step_deltas

__all__ = [
    "compare",
    "ssim",
    "psnr",
    "lpips",
    "latent_rmse",
    "describe_metrics",
    "lpips_unavailable",
    "Runner",
    "RunCache",
    "RunSettings",
    "run_key",
    "DEFAULT_CACHE_SIZE",
    "ExperimentResult",
    "Reference",
    "DEFAULT_REFERENCE",
    "DEFAULT_PROMPT",
    "DISTANCES",
    "distances",
    "resolve_metrics",
    "spec_columns",
    "step_deltas",
    "decode_latents",
    "fit_power_law",
    "steps_to_converge",
    "DEFAULT_THRESHOLD",
]
