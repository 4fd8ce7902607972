"""Cost: model evaluations and wall time per image for every sampler and step count.

>>> from sdlab.measure import cost
>>> res = cost(["Euler", "Heun"], steps=(10, 20))                                 # the embedded model
>>> res.table.pivot_table("value", ["sampler", "steps"], "metric")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from sdlab.errors import SdlabError
from sdlab.measure.common import DEFAULT_PROMPT, ExperimentResult, check_names, check_step_counts, metric_rows, tidy
from sdlab.measure.runs import RunSettings

__all__ = ["cost"]


def cost(
    samplers: Sequence[str] | str,
    steps: Sequence[int] = (10, 20),
    *,
    prompt: str = DEFAULT_PROMPT,
    seeds: Sequence[int] = (0,),
    schedule: str = "Automatic",
    cfg: float = 5.0,
    repeats: int = 1,
    **options: Any,
) -> ExperimentResult:
    """Model evaluations and wall time per image for every sampler and step count (best of ``repeats``).

    Metrics: ``nfe`` (model evaluations per image; each is one batched UNet call, CFG included),
    ``nfe_per_step``, ``seconds_per_image`` (sampling plus VAE decode) and ``ms_per_nfe``. One warm-up run
    comes first, so the model load and first-call costs are not counted. ``options``: the run settings
    (:class:`~sdlab.measure.runs.RunSettings`: negative_prompt, model, size, rng, progress) and sampler options.
    """
    samplers, steps = check_names(samplers, "samplers"), check_step_counts(steps)
    if not isinstance(repeats, int) or repeats < 1:
        raise SdlabError("repeats must be an integer >= 1", repeats=repeats)
    settings, sampler_options = RunSettings.split(options)
    runner = settings.runner(prompt=prompt, seeds=seeds, cfg=cfg, total=1 + len(samplers) * len(steps) * repeats)
    rows: list[dict[str, Any]] = []
    images: dict[str, Any] = {}
    notes = [f"device {runner.sd.device}, dtype {runner.sd.dtype}, {torch.get_num_threads()} CPU threads"]
    with runner:
        runner(samplers[0], schedule, 1, fresh=True, **sampler_options)  # warm-up
        for sampler in samplers:
            for n in steps:
                best = min(
                    (runner(sampler, schedule, n, fresh=True, **sampler_options) for _ in range(repeats)),
                    key=lambda r: r.seconds,
                )
                per_image = best.seconds / len(best.specs)
                values = {
                    "nfe": float(best.nfe),
                    "nfe_per_step": best.nfe / n,
                    "seconds_per_image": per_image,
                    "ms_per_nfe": 1000 * per_image / max(1, best.nfe),
                }
                tensors = {k: torch.full((len(best.specs),), v, dtype=torch.float64) for k, v in values.items()}
                rows += metric_rows(best, tensors, experiment="cost", comparison="cost", images=images)
    return ExperimentResult(tidy(rows), images, notes)
