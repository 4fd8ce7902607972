"""The lab the experiments share: runs on the embedded model (or any checkpoint) and on the ground truth, each made
once and reused by every claim that needs it, and the helpers that turn runs into table rows and charts.

>>> lab = Lab()                                     # smoke mode: the embedded model at 32 px, seeds 0 and 1
>>> run = lab.run("Euler", 8)                       # a Run: latents, images, NFE, seconds per image
>>> lab.gt_errors(("Euler", "Heun"), (4, 8, 16))    # true errors on the ground truth, one row per metric
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from sdlab.errors import SdlabError
from sdlab.folklore.verdicts import TOL, Evidence, make_evidence
from sdlab.groundtruth import (
    claimed_order,
    distribution_vs_steps,
    ignores_schedule,
    run_sampler,
    toy_mixture,
    true_solution,
)
from sdlab.measure import DEFAULT_PROMPT, RunCache, Runner, latent_rmse
from sdlab.viz.mpl import line_chart

__all__ = [
    "DEFAULT_PROMPT",
    "REFERENCE",
    "DISTRIBUTION_SAMPLERS",
    "Run",
    "Lab",
    "ignores_schedule",
    "distance",
    "pair_rows",
    "seed_rows",
    "cost_rows",
    "reference_rows",
    "run_images",
    "gt_steps",
    "gt_chart",
    "gt_evidence",
]

REFERENCE = ("DPM++ 2M", "Karras")  # the embedded model's reference run: this sampler and schedule at many steps
DISTRIBUTION_SAMPLERS = ("Euler a", "DPM2 a", "DPM++ SDE", "DPM++ 2M SDE", "Euler", "DPM++ 2M")
_KEEP_RUNS = 1_000_000  # per-seed runs a lab keeps: all of them (full mode makes a few hundred), each made once


@dataclass
class Run:
    """One sampler setting on the embedded model: final latents and images (one per seed), NFE and seconds."""

    sampler: str
    schedule: str
    steps: int
    seeds: list[int]
    latents: Tensor  # (len(seeds), C, h, w)
    images: Tensor  # (len(seeds), 3, H, W) in [0, 1]
    nfe: int  # model evaluations per image
    seconds: float  # per image
    sigma_max: float

    def latent(self, seed: int) -> Tensor:
        return self.latents[self.seeds.index(seed)]

    def image(self, seed: int) -> Tensor:
        return self.images[self.seeds.index(seed)]


@dataclass
class Lab:
    """Shared settings and caches for the experiments: the embedded model (or ``model``), seeds, image size.

    ``smoke=True`` keeps every experiment small (32 px images, 2 seeds, few steps, small ground-truth sets); each
    experiment says what it runs in each mode. A run (sampler, schedule, steps, options) is made once per seed
    by the lab's :class:`sdlab.measure.Runner` and reused by every claim that needs it; so are ground-truth runs
    and true solutions. ``prompt`` defaults to a caption of the embedded model's training set.
    """

    smoke: bool = True
    model: Any = None
    seeds: Sequence[int] | None = None
    size: tuple[int, int] | None = None
    cfg: float = 5.0
    prompt: str = DEFAULT_PROMPT
    device: str | None = None
    progress: bool = False
    evidence: dict[str, Evidence] = field(default_factory=dict)

    def __post_init__(self) -> None:
        seeds = list(self.pick((0, 1), range(6)) if self.seeds is None else self.seeds)
        if len(seeds) < 2 or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0 for s in seeds):
            raise SdlabError("seeds must hold at least 2 ints >= 0", seeds=seeds, hint="seed-to-seed distances need 2")
        self.seeds = [int(s) for s in dict.fromkeys(seeds)]
        if self.size is None and self.smoke and self.model is None:
            self.size = (32, 32)
        self._runner: Runner | None = None
        self._gt_rows: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        self._truths: dict[tuple[Any, ...], Any] = {}
        self._noise: Tensor | None = None
        self._dist: Any = None
        self._distribution: pd.DataFrame | None = None

    def pick(self, smoke: Any, full: Any) -> Any:
        """``smoke`` in smoke mode, else ``full``."""
        return smoke if self.smoke else full

    # --- the embedded model ------------------------------------------------------------------------------------

    @property
    def runner(self) -> Runner:
        """The lab's run-maker (made, and its model loaded, on first use); it keeps every run it makes."""
        if self._runner is None:
            self._runner = Runner(
                prompt=self.prompt, seeds=self.seeds, cfg=self.cfg, model=self.model, size=self.size,
                device=self.device, cache=RunCache(_KEEP_RUNS),
            )  # fmt: skip
        return self._runner

    @property
    def sd(self) -> Any:
        """The loaded model."""
        return self.runner.sd

    def run(
        self,
        sampler: str,
        steps: int,
        *,
        schedule: str = "Automatic",
        seeds: Sequence[int] | None = None,
        fresh: bool = False,
        **options: Any,
    ) -> Run:
        """``sampler`` at ``steps`` for ``seeds`` (default the lab's), each seed made once and cached; ``fresh``
        runs again without the cache (reruns, perturbed latents). ``options`` go to :func:`sdlab.generate`."""
        seeds = list(self.seeds if seeds is None else seeds)
        res = self.runner.per_seed(sampler, schedule, int(steps), seeds=seeds, fresh=fresh, **options)
        return Run(
            sampler, res.specs[0].schedule_resolved, int(steps), seeds, res.latents, res.images, res.nfe,
            res.seconds / len(seeds), float(res.sigmas[0]),
        )  # fmt: skip

    def reference(self) -> Run:
        """The embedded model's reference: DPM++ 2M Karras at 40 steps (smoke) or 100 steps."""
        return self.run(REFERENCE[0], self.pick(40, 100), schedule=REFERENCE[1])

    # --- the ground truth --------------------------------------------------------------------------------------

    @property
    def dist(self) -> Any:
        """The ground truth's 2-D Gaussian mixture (:func:`sdlab.groundtruth.toy_mixture`)."""
        if self._dist is None:
            self._dist = toy_mixture()
        return self._dist

    def gt_errors(
        self,
        samplers: Iterable[str],
        steps: Iterable[int],
        *,
        schedules: Sequence[str] = ("karras",),
        stop_at_sigma_min: bool = False,
    ) -> pd.DataFrame:
        """True errors like :func:`sdlab.groundtruth.error_vs_steps` (same columns), each run and each true
        solution made once per lab. ``stop_at_sigma_min=False`` (default): the full A1111 schedule, final jump to
        sigma 0 included, compared with the true x(0): the error of the image a user gets. Samplers that ignore
        the schedule (DDIM, PLMS, UniPC, DPM fast, DPM adaptive) run once per step count."""
        rows = []
        for name in samplers:
            for schedule in schedules[:1] if ignores_schedule(name) else schedules:
                for k in steps:
                    key = (name, schedule, int(k), stop_at_sigma_min)
                    if key not in self._gt_rows:
                        self._gt_rows[key] = self._gt_run(name, schedule, int(k), stop_at_sigma_min)
                    rows += self._gt_rows[key]
        return pd.DataFrame(rows)

    def _gt_run(self, name: str, schedule: str, steps: int, stop: bool) -> list[dict[str, Any]]:
        n, rtol = self.pick(16, 64), self.pick(1e-8, 1e-11)
        if self._noise is None:
            g = torch.Generator().manual_seed(self.seeds[0])
            self._noise = torch.randn(n, self.dist.dim, generator=g, dtype=torch.float64)
        run = run_sampler(name, self.dist, self._noise, schedule=schedule, steps=steps, stop_at_sigma_min=stop)
        key = (run.start, run.sigma_start, run.sigma_end)
        if key not in self._truths:
            self._truths[key] = true_solution(self.dist, run.x_start, run.sigma_start, run.sigma_end, rtol=rtol)
        truth = self._truths[key]
        per_sample = (run.x_end - truth.x_end).reshape(n, -1).norm(dim=1)
        base = {
            "ground": "ground truth",
            "sampler": run.sampler,
            "schedule": run.schedule,
            "steps": steps,
            "nfe": run.nfe,
            "claimed_order": claimed_order(name),
            "stop_at_sigma_min": stop,
            "dist": getattr(self.dist, "name", "toy mixture"),
            "n": n,
            "truth_error": truth.error_estimate,
        }
        return [
            {**base, "metric": "median_error", "value": float(per_sample.median())},
            {**base, "metric": "rms_error", "value": float(per_sample.pow(2).mean().sqrt())},
        ]

    def gt_distribution(self) -> pd.DataFrame:
        """:func:`sdlab.groundtruth.distribution_vs_steps` for the stochastic samplers and two deterministic
        controls (eta 1; MMD to the true distribution and each seed's change from N to 2N steps), made once."""
        if self._distribution is None:
            self._distribution = distribution_vs_steps(
                DISTRIBUTION_SAMPLERS, steps=self.pick((4, 8, 16), (4, 8, 16, 32, 64)), dist=self.dist,
                n=self.pick(300, 2000), repeats=self.pick(3, 10), compare=("double",), seed=self.seeds[0],
            ).assign(ground="ground truth")  # fmt: skip
        return self._distribution


# ---------------------------------------------------------------------------------------------------------------
# rows: distances between runs on the embedded model


def distance(a: Tensor, b: Tensor) -> float:
    """Latent RMSE of two latents (C, h, w) (:func:`sdlab.measure.latent_rmse`)."""
    return float(latent_rmse(a[None].float(), b[None].float())[0])


def pair_rows(a: Run, b: Run, metric: str, *, seeds: Sequence[int] | None = None, **extra: Any) -> list[dict]:
    """Per common seed: the distance between run ``a`` and run ``b``."""
    seeds = [s for s in (a.seeds if seeds is None else seeds) if s in b.seeds]
    against = f"{b.sampler} at {b.steps}" + (f" ({b.schedule})" if b.schedule != a.schedule else "")
    base = {"ground": "embedded model", "sampler": a.sampler, "schedule": a.schedule, "steps": a.steps}
    return [
        {**base, "against": against, "seed": s, "metric": metric, "value": distance(a.latent(s), b.latent(s)), **extra}
        for s in seeds
    ]


def seed_rows(*runs: Run) -> list[dict]:
    """Per run and pair of seeds: the distance between two seeds' images, the scale "a different image" has."""
    rows = []
    for r in runs:
        for s, t in combinations(r.seeds, 2):
            rows.append(
                {"ground": "embedded model", "sampler": r.sampler, "schedule": r.schedule, "steps": r.steps,
                 "against": f"seed {t}", "seed": s, "metric": "seed_to_seed",
                 "value": distance(r.latent(s), r.latent(t))}
            )  # fmt: skip
    return rows


def cost_rows(*runs: Run) -> list[dict]:
    """Model evaluations and seconds per image of each run (seconds depend on the machine and its load)."""
    rows = []
    for r in runs:
        base = {"ground": "embedded model", "sampler": r.sampler, "schedule": r.schedule, "steps": r.steps}
        rows += [{**base, "metric": "nfe", "value": float(r.nfe)}, {**base, "metric": "seconds", "value": r.seconds}]
    return rows


def reference_rows(runs: Iterable[Run], ref: Run) -> list[dict]:
    """Per run and seed: the distance to the reference run ``ref`` (metric ``reference_distance``)."""
    return [r for run in runs for r in pair_rows(run, ref, "reference_distance")]


def run_images(runs: Iterable[Run], seed: int, label: Callable[[Run], str] | None = None) -> dict[str, Tensor]:
    """One image per run for ``seed``, titled by ``label(run)`` (default "<sampler>, <steps> steps")."""
    return {(label(r) if label else f"{r.sampler}, {r.steps} steps"): r.image(seed) for r in runs}


# ---------------------------------------------------------------------------------------------------------------
# the ground truth's step counts, chart and evidence


def gt_steps(lab: Lab) -> tuple[int, ...]:
    """The step counts of the ground-truth error curves (few in smoke mode)."""
    return lab.pick((4, 8, 16, 32), (4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64, 100))


def gt_chart(table: pd.DataFrame, title: str, *, x: str = "steps", metric: str = "median_error") -> Any:
    """True error against steps (or NFE), a line per sampler (and schedule, when a sampler has several), with the
    converged tolerance :data:`TOL`."""
    rows = table[table["metric"] == metric]
    series = ("sampler", "schedule") if rows.groupby("sampler")["schedule"].nunique().max() > 1 else ("sampler",)
    return line_chart(
        rows, x=x, series=series, title=title, ylabel=f"{metric.replace('_', ' ')} vs the true solution",
        xlabel="model evaluations (NFE)" if x == "nfe" else "steps", hlines={f"converged ({TOL})": TOL},
    )  # fmt: skip


def gt_evidence(
    lab: Lab,
    judge: Callable[[pd.DataFrame], tuple[str, str]],
    samplers: Iterable[str],
    title: str,
    *,
    steps: Iterable[int] | None = None,
    **options: Any,
) -> Evidence:
    """The evidence of a claim the true errors alone settle: :meth:`Lab.gt_errors` of ``samplers`` at ``steps``
    (default :func:`gt_steps`; ``options``: schedules, stop_at_sigma_min), judged by ``judge``, charted by
    :func:`gt_chart` under ``title``."""
    table = lab.gt_errors(samplers, gt_steps(lab) if steps is None else steps, **options)
    return make_evidence(judge, table, figure=gt_chart(table, title))
