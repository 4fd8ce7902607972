"""Predictability: how smoothly the image changes as CFG or the step count changes, neighbouring setting by
neighbouring setting, and where each sweep jumps most.

>>> from sdlab.measure import predictability
>>> res = predictability("DPM++ 2M", cfgs=(3, 5, 7), steps=(10, 15, 20))           # the embedded model
>>> res.summary                                       # per sweep and metric: the largest jump and where
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from sdlab.errors import SdlabError
from sdlab.measure.common import (
    DEFAULT_METRICS,
    DEFAULT_PROMPT,
    SIMILARITIES,
    ExperimentResult,
    check_step_counts,
    start_runs,
    tidy,
    versus,
)
from sdlab.measure.runs import RunSettings

__all__ = ["predictability"]


def predictability(
    sampler: str = "DPM++ 2M",
    cfgs: Sequence[float] = (2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0),
    steps: Sequence[int] = (10, 12, 14, 16, 18, 20, 25, 30),
    *,
    cfg: float = 5.0,
    at_steps: int = 20,
    prompt: str = DEFAULT_PROMPT,
    seeds: Sequence[int] = (0, 1),
    schedule: str = "Automatic",
    metrics: Sequence[str] = DEFAULT_METRICS,
    **options: Any,
) -> ExperimentResult:
    """How smoothly the image changes along a CFG sweep (at ``at_steps``) and a step sweep (at ``cfg``).

    Rows compare neighbouring settings (``comparison="cfg"`` / ``"steps"``, columns ``setting_from`` and
    ``setting_to``). ``summary``: per sweep and metric, the largest jump (mean over seeds) and where it is.
    ``options``: the run settings (:class:`~sdlab.measure.runs.RunSettings`: negative_prompt, model, size, rng,
    progress) and sampler options.
    """
    if not cfgs or any(isinstance(c, bool) or not isinstance(c, (int, float)) for c in cfgs):
        raise SdlabError("cfgs must be a non-empty list of numbers", cfgs=cfgs, hint="e.g. (3, 5, 7)")
    cfgs = sorted({float(c) for c in cfgs})
    steps = check_step_counts(steps)
    settings, sampler_options = RunSettings.split(options)
    notes: list[str] = []
    runner, metrics = start_runs(
        metrics, notes, settings, prompt=prompt, seeds=seeds, cfg=cfg, total=len(cfgs) + len(steps)
    )
    rows: list[dict[str, Any]] = []
    images: dict[str, Any] = {}
    with runner:
        sweeps = {
            "cfg": [(c, runner(sampler, schedule, at_steps, cfg=c, **sampler_options)) for c in cfgs],
            "steps": [(float(n), runner(sampler, schedule, n, **sampler_options)) for n in steps],
        }
        for comparison, runs in sweeps.items():
            for (a_value, a), (b_value, b) in zip(runs, runs[1:], strict=False):
                rows += versus(
                    a, b, metrics, images, experiment="predictability", comparison=comparison,
                    variant=f"{comparison} {a_value:g} -> {b_value:g}", against=f"{comparison} = {b_value:g}",
                    setting_from=a_value, setting_to=b_value,
                )  # fmt: skip
    table = tidy(rows)
    return ExperimentResult(table, images, notes, _largest_jumps(table))


def _largest_jumps(table: pd.DataFrame) -> pd.DataFrame:
    """Per sweep and metric: the neighbouring pair of settings whose images differ most (mean over seeds)."""
    out = []
    if table.empty:
        return pd.DataFrame(out)
    for (comparison, metric), frame in table.groupby(["comparison", "metric"]):
        means = frame.groupby(["setting_from", "setting_to"])["value"].mean()
        means = means[np.isfinite(means)] if metric in SIMILARITIES else means
        if means.empty:
            continue
        where = means.idxmin() if metric in SIMILARITIES else means.idxmax()
        out.append(
            {
                "sweep": comparison,
                "metric": metric,
                "largest_jump": float(means[where]),
                "from": where[0],
                "to": where[1],
                "median_jump": float(means.median()),
            }
        )
    return pd.DataFrame(out)
