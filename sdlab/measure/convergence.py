"""Convergence: step sweeps per sampler, each final image's distance to a reference run, the per-step deltas within
each run, the steps needed to converge and the fitted power law of distance vs steps.

>>> from sdlab.measure import convergence
>>> res = convergence(["Euler", "DPM++ 2M"], steps=(5, 10, 20), seeds=[0, 1])      # the embedded model
>>> res.summary[["sampler", "metric", "b", "b_low", "b_high", "steps_to_converge"]]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from sdlab.generation import GenerateResult
from sdlab.measure.common import (
    DEFAULT_METRICS,
    DEFAULT_PROMPT,
    SIMILARITIES,
    ExperimentResult,
    Reference,
    check_names,
    check_step_counts,
    distances,
    image_name,
    metric_rows,
    resolve_metrics,
    spec_columns,
    start_runs,
    tidy,
    unique,
)
from sdlab.measure.fits import fit_power_law, steps_to_converge
from sdlab.measure.runs import RunSettings
from sdlab.measure.steps import step_deltas

__all__ = ["convergence"]


def convergence(
    samplers: Sequence[str] | str,
    steps: Sequence[int] = (5, 10, 20, 40),
    *,
    prompt: str = DEFAULT_PROMPT,
    seeds: Sequence[int] = (0, 1),
    schedule: str = "Automatic",
    cfg: float = 5.0,
    reference: Reference | Mapping[str, Any] | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    threshold: float | Mapping[str, float] | None = None,
    step_image_metrics: Sequence[str] = (),
    step_decode: str = "full",
    step_decode_every: int = 1,
    **options: Any,
) -> ExperimentResult:
    """Step sweeps per sampler: each final result's distance to a reference, within-run per-step deltas, the
    steps needed to converge and a fitted power law of error vs steps.

    The reference (default :data:`~sdlab.measure.common.DEFAULT_REFERENCE`, DPM++ 2M Karras at 100 steps) runs
    from the same prompt, seeds and CFG. Rows: ``comparison="reference"`` (step -1, every metric), ``"next"`` /
    ``"final"`` (per step: the denoised prediction vs the next one and vs the final latent; latent RMSE, plus
    ``step_image_metrics`` on decoded predictions; :func:`~sdlab.measure.steps.step_deltas` explains
    ``step_decode`` and ``step_decode_every``). ``summary``: :func:`~sdlab.measure.fits.fit_power_law` and
    :func:`~sdlab.measure.fits.steps_to_converge` per sampler and metric. ``options``: the run settings
    (:class:`~sdlab.measure.runs.RunSettings`: negative_prompt, model, size, rng, progress) and sampler options.
    """
    samplers, steps = check_names(samplers, "samplers"), check_step_counts(steps)
    ref = Reference.coerce(reference)
    settings, sampler_options = RunSettings.split(options)
    notes: list[str] = []
    runner, metrics = start_runs(
        metrics, notes, settings, prompt=prompt, seeds=seeds, cfg=cfg, total=1 + len(samplers) * len(steps)
    )
    step_image_metrics = tuple(m for m in resolve_metrics(step_image_metrics, notes) if m != "latent_rmse")
    notes.append(f"reference: {ref.label}, same prompt, seeds and CFG")
    with runner:
        ref_result = runner(ref.sampler, ref.schedule, ref.steps, **dict(ref.options))
        ref_keys = [s.key() for s in ref_result.specs]
        images: dict[str, Any] = {}
        ref_names = [f"reference/seed={spec.seed}" for spec in ref_result.specs]
        images.update(zip(ref_names, ref_result.images, strict=True))
        rows: list[dict[str, Any]] = []
        for sampler in samplers:
            for n in steps:
                res = runner(sampler, schedule, n, trajectory=True, **sampler_options)
                values = distances(res.latents, ref_result.latents, res.images, ref_result.images, metrics)
                rows += metric_rows(
                    res, values, experiment="convergence", comparison="reference", against=ref.label,
                    against_keys=ref_keys, against_images=ref_names, images=images, reference_steps=ref.steps,
                )  # fmt: skip
                rows += _step_rows(
                    res, runner.sd, ref.steps, image_metrics=step_image_metrics, decode=step_decode,
                    decode_every=step_decode_every,
                )  # fmt: skip
    table = tidy(rows)
    summary = _convergence_summary(table, threshold, metrics)
    return ExperimentResult(table, images, unique(notes), summary)


def _step_rows(res: GenerateResult, model: Any, reference_steps: int, **deltas: Any) -> list[dict[str, Any]]:
    """:func:`~sdlab.measure.steps.step_deltas` of each image of ``res`` as convergence rows (``deltas``: its
    image_metrics, decode and decode_every)."""
    rows = []
    per_image = res.seconds / len(res.specs)
    for k, spec in enumerate(res.specs):
        cols = spec_columns(spec)
        for row in step_deltas(res.trajectories[k], res.latents[k], model=model, **deltas):
            rows.append(
                {
                    "experiment": "convergence",
                    "variant": "",
                    "against": "this run's " + ("next step" if row["comparison"] == "next" else "final"),
                    "image": image_name(spec),
                    **row,
                    "seconds": per_image,
                    "reference_steps": reference_steps,
                    **cols,
                }
            )
    return rows


def _convergence_summary(
    table: pd.DataFrame, threshold: float | Mapping[str, float] | None, metrics: Sequence[str]
) -> pd.DataFrame:
    by = ["sampler", "schedule_resolved", "metric"]
    conv = steps_to_converge(table, threshold)
    fits = [fit_power_law(table, metric=m) for m in metrics if m not in SIMILARITIES]
    fits = [f for f in fits if len(f)]
    if not fits:
        return conv
    fit = pd.concat(fits, ignore_index=True)
    return fit.merge(conv, on=by, how="outer") if len(conv) else fit
