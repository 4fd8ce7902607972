"""Ancestral divergence: how far each ancestral or SDE sampler lands from its deterministic twin, whether it settles
as steps grow, and what its eta does.

>>> from sdlab.measure import ancestral_divergence
>>> res = ancestral_divergence([("Euler a", "Euler")], steps=(10, 20))              # the embedded model
>>> res.table.query("comparison == 'eta'")[["eta", "metric", "value"]]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sdlab.errors import SdlabError
from sdlab.generation import GenerateResult, schedule_for
from sdlab.measure.common import (
    DEFAULT_METRICS,
    DEFAULT_PROMPT,
    ExperimentResult,
    check_step_counts,
    start_runs,
    tidy,
    versus,
)
from sdlab.measure.runs import RunSettings
from sdlab.samplers import resolve_sampler, sampler_options

__all__ = ["ancestral_divergence", "DEFAULT_PAIRS"]

DEFAULT_PAIRS = (
    ("Euler a", "Euler"),
    ("DPM2 a", "DPM2"),
    ("DPM++ 2S a", "DPM++ 2M"),
    ("DPM++ SDE", "DPM++ 2M"),
    ("DPM++ 2M SDE", "DPM++ 2M"),
    ("DPM++ 3M SDE", "DPM++ 2M"),
)
"""Each stochastic sampler and the deterministic sampler it is an ancestral / SDE variant of (or closest to)."""


def ancestral_divergence(
    pairs: Sequence[tuple[str, str]] = DEFAULT_PAIRS,
    steps: Sequence[int] = (10, 20, 40),
    eta: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
    *,
    eta_steps: int | None = None,
    prompt: str = DEFAULT_PROMPT,
    seeds: Sequence[int] = (0, 1),
    schedule: str = "Automatic",
    cfg: float = 5.0,
    metrics: Sequence[str] = DEFAULT_METRICS,
    **settings: Any,
) -> ExperimentResult:
    """How far each ancestral / SDE sampler lands from its deterministic twin, and whether it settles.

    For each pair (stochastic, deterministic) and step count N, both on one schedule ("Automatic" takes the
    stochastic sampler's): ``vs_deterministic`` (the two at N steps), ``n_to_n+1`` (each sampler at N vs N+1
    steps: a converging sampler's change shrinks with N, an ancestral one's does not), and ``eta`` (the
    stochastic sampler at each eta vs the twin, at ``eta_steps``, default the largest N; eta 0 removes the
    noise). Samplers without an eta option skip the eta sweep with a note. ``settings``: the run settings
    (:class:`~sdlab.measure.runs.RunSettings`: negative_prompt, model, size, rng, progress).
    """
    steps = check_step_counts(steps)
    eta_steps = max(steps) if eta_steps is None else eta_steps
    pairs = [tuple(p) for p in pairs]
    if not pairs or any(len(p) != 2 or not all(isinstance(n, str) for n in p) for p in pairs):
        raise SdlabError("pairs must be (stochastic, deterministic) sampler names", pairs=pairs)
    run_settings = RunSettings.split(settings, sampler_options=False)[0]
    notes: list[str] = []
    total = len(pairs) * (4 * len(steps) + len(eta))
    runner, metrics = start_runs(metrics, notes, run_settings, prompt=prompt, seeds=seeds, cfg=cfg, total=total)
    rows: list[dict[str, Any]] = []
    images: dict[str, Any] = {}

    def compare(a: GenerateResult, b: GenerateResult, comparison: str, pair: str, **extra: Any) -> None:
        against = f"{b.specs[0].sampler} at {b.specs[0].steps} steps"
        rows.extend(
            versus(
                a, b, metrics, images, experiment="ancestral_divergence", comparison=comparison, against=against,
                pair=pair, **extra,
            )
        )  # fmt: skip

    with runner:
        for stochastic, deterministic in pairs:
            pair = f"{stochastic} vs {deterministic}"
            sched = schedule
            if schedule.lower() == "automatic":
                sched = schedule_for(stochastic, "Automatic", max(steps), runner.sd)[1]
            for n in steps:
                s_n, d_n = runner(stochastic, sched, n), runner(deterministic, sched, n)
                s_next, d_next = runner(stochastic, sched, n + 1), runner(deterministic, sched, n + 1)
                compare(s_n, d_n, "vs_deterministic", pair, eta=_eta(s_n))
                compare(s_n, s_next, "n_to_n+1", pair, eta=_eta(s_n))
                compare(d_n, d_next, "n_to_n+1", pair, eta=math.nan)
            if not eta:
                continue
            if "eta" not in sampler_options(resolve_sampler(stochastic).info.fn):
                notes.append(f"{stochastic} has no eta option: no eta sweep")
                continue
            twin = runner(deterministic, sched, eta_steps)
            for e in eta:
                res = runner(stochastic, sched, eta_steps, eta=float(e))
                compare(res, twin, "eta", pair, eta=float(e))
    return ExperimentResult(tidy(rows), images, notes)


def _eta(result: GenerateResult) -> float:
    value = dict(result.specs[0].sampler_options).get("eta")
    return math.nan if value is None else float(value)
