"""Measurements on real generations: how fast each sampler converges, whether a seed gives the same image, how
far ancestral and SDE samplers wander from their deterministic twins, how smooth the CFG and step sweeps are,
and what each sampler costs. The experiment families live in :mod:`sdlab.measure`, one module each; this module
gathers them with the pieces their results are read with.

Every experiment returns an :class:`~sdlab.measure.common.ExperimentResult`: a tidy long-format table (one row
per image x step x metric; ``step = -1`` is the final image), the images it made and notes (e.g. "LPIPS
unavailable: ..."). Each row carries the full :class:`~sdlab.spec.RunSpec` of its image as columns
(``sampler_options.*`` and ``versions.*`` flattened) and its ``spec_key``, so any number can be reproduced.
Every experiment also takes the :class:`~sdlab.measure.runs.RunSettings` by keyword (``negative_prompt``,
``model``, ``size``, ``rng``, ``progress``).

>>> import sdlab.experiments as X
>>> res = X.convergence(["Euler", "DPM++ 2M"], steps=(5, 10, 20), seeds=[0, 1])   # the embedded model
>>> res.table.query("comparison == 'reference' and metric == 'latent_rmse'")      # distance to the reference
>>> res.summary[["sampler", "metric", "b", "b_low", "b_high", "steps_to_converge"]]  # fitted exponent, CI

Distances: ``latent_rmse`` between final latents (latent units), SSIM, PSNR and LPIPS between decoded images in
[0, 1] (see :func:`sdlab.measure.metrics.describe_metrics`). LPIPS needs its ImageNet backbone in the torch
cache; when it is missing the experiments go on without it and say so in ``notes``.
"""

from __future__ import annotations

from sdlab.measure.common import (
    DEFAULT_METRICS,
    DEFAULT_PROMPT,
    DEFAULT_REFERENCE,
    DISTANCES,
    SIMILARITIES,
    ExperimentResult,
    Reference,
    distances,
    resolve_metrics,
    spec_columns,
)
from sdlab.measure.convergence import convergence
from sdlab.measure.cost import cost
from sdlab.measure.divergence import DEFAULT_PAIRS, ancestral_divergence
from sdlab.measure.fits import DEFAULT_THRESHOLD, fit_power_law, steps_to_converge
from sdlab.measure.metrics import lpips_unavailable
from sdlab.measure.predictability import predictability
from sdlab.measure.runs import RunSettings
from sdlab.measure.stability import stability
from sdlab.measure.steps import decode_latents, step_deltas

__all__ = [
    "ExperimentResult",
    "Reference",
    "RunSettings",
    "DEFAULT_PROMPT",
    "DEFAULT_REFERENCE",
    "DEFAULT_PAIRS",
    "DEFAULT_THRESHOLD",
    "DISTANCES",
    "convergence",
    "stability",
    "ancestral_divergence",
    "predictability",
    "cost",
    "fit_power_law",
    "steps_to_converge",
    "step_deltas",
    "decode_latents",
    "spec_columns",
    "resolve_metrics",
    "distances",
    "lpips_unavailable",
    "DEFAULT_METRICS",
    "SIMILARITIES",
]

_distances = distances  # the old private name, still imported by sdlab.sweep; goes once it imports `distances`
