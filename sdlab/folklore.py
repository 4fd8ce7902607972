"""Sampler folklore, tested: every claim two popular articles make about samplers, each with a small experiment
and a verdict computed from its evidence.

The articles (in ``shared/seeds``): "Что такое семплеры и какое их влияние?" (Russian, ``ru``; it quotes
Reddit comparisons from 2022) and "Guía completa de samplers en Stable Diffusion" (Spanish, ``es``). Each
:class:`Claim` quotes one statement in English, names its article, and runs an experiment that returns
:class:`Evidence`: a tidy table, the images it made, a chart, and a verdict ("supported", "refuted", "mixed" or
"inconclusive") that its ``judge`` computes from the table with the thresholds defined below. Nobody writes a
verdict by hand: change a threshold and the verdict follows.

Two grounds. Claims about convergence, order and step counts stand on the ground truth
(:mod:`sdlab.groundtruth`: a 2-D Gaussian mixture whose exact denoiser gives the true ODE solution and true
distribution). Claims about images stand on the embedded model (or any checkpoint, ``model=``), where
"the same image" means a latent distance below :data:`SAME` times the distance between two seeds.

Every judge is a module function, ``judge_<what>(table, *, <thresholds>) -> (verdict, summary)``: rejudge any
evidence with other thresholds, e.g. ``F.judge_lms_degrades(evidence.table, degrade=0.1)``.

>>> import sdlab.folklore as F
>>> table, evidence = F.run_claims(["dpm_adaptive_ignores_steps", "ancestral_same_on_rerun"])   # smoke mode
>>> table[["claim", "verdict"]]
>>> evidence["ancestral_same_on_rerun"].table.head()
>>> F.CLAIMS["lms_degrades_at_60"].text
"""

from __future__ import annotations

import base64
import io
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from sdlab.errors import SdlabError, closest

__all__ = [
    "VERDICTS",
    "SOURCES",
    "SAME",
    "DIFFERENT",
    "TOL",
    "Evidence",
    "Claim",
    "Lab",
    "Run",
    "CLAIMS",
    "NOT_TESTED",
    "run_claims",
    "check",
    "get_claim",
    "verdict_table",
    "verdict_markdown",
    "verdict_figure",
    "save_verdicts",
    "show_evidence",
    "save_evidence",
]

VERDICTS = ("supported", "refuted", "mixed", "inconclusive")

SOURCES = {
    "ru": "«Что такое семплеры и какое их влияние?» (Russian; quotes Reddit comparisons of 2022)",
    "es": "«Guía completa de samplers en Stable Diffusion» (Spanish)",
}

# ---------------------------------------------------------------------------------------------------------------
# thresholds: every verdict is computed from these (change one and the verdicts follow)

SAME = 0.2  # two images whose latent distance is below 20 % of the seed-to-seed distance are "the same image"
DIFFERENT = 0.5  # above 50 % of it they are "a different image"; between the two: neither
TOL = 0.02  # ground truth: an error below 2 % of the data's spread (std ~1) counts as converged
BETTER = 0.1  # "better" needs an error at least 10 % lower; within 10 % counts as a tie
DEGRADE = 0.25  # "degrades" needs the error to rise by 25 % above its best at fewer steps
TWICE = (1.75, 2.05)  # "twice the cost": model evaluations per step relative to a 1-NFE sampler in this range
HALF = 0.6  # "converges twice as fast": needs at most 60 % of the other sampler's steps ...
NOT_HALF = 0.8  # ... and more than 80 % of them clearly is not
SETTLES = 0.5  # a path "settles" when its change from N to 2N steps shrinks below 50 % across the step range
ORDER_SLACK = 0.35  # a fitted order within 0.35 of the stated one confirms it
MMD_SIGMAS = 2.0  # MMD differences smaller than 2 noise-floor standard deviations are ties
CONVERGED_RMSE = 0.05  # embedded model: latent RMSE to the reference below which an image is "done"
# (sdlab.experiments.DEFAULT_THRESHOLD: 5 % of the final latents' spread)
PERTURBATION = 1e-3  # relative size of the nudge to the initial noise in the stability test
ENSD = 31337  # the "eta noise seed delta" A1111 users copied from NovelAI

DEFAULT_PROMPT = "a red circle above a blue square, sunset sky"  # a caption of the embedded model's training set
REFERENCE = ("DPM++ 2M", "Karras")  # the embedded model's reference run: this sampler and schedule at many steps


# ---------------------------------------------------------------------------------------------------------------
# evidence and claims


@dataclass
class Evidence:
    """What one experiment found: a verdict computed from ``table``, its summary, images and a chart.

    ``table``: tidy rows (ground, sampler, steps, metric, value, ...); ``images``: ``{title: (3, H, W) in [0, 1]}``;
    ``figure``: a matplotlib figure (or None); ``seconds``: how long the experiment ran.
    """

    verdict: str
    summary: str
    table: pd.DataFrame
    images: dict[str, Any] = field(default_factory=dict)
    figure: Any = None
    seconds: float = math.nan
    _png: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def figure_png(self) -> bytes | None:
        """The chart as PNG bytes (rendered once), or None without a chart."""
        if self._png is None and self.figure is not None:
            buf = io.BytesIO()
            self.figure.savefig(buf, format="png", dpi=100)
            self._png = buf.getvalue()
        return self._png

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise SdlabError(
                f"unknown verdict {self.verdict!r}", verdict=self.verdict, hint=closest(self.verdict, VERDICTS)
            )


@dataclass(frozen=True)
class Claim:
    """One statement from an article: quoted in English (``text``), its article (``source``, a key of
    :data:`SOURCES`), the original words (``original``), how it is tested (``method``), the experiment
    (``experiment(lab) -> Evidence``) and the judge that turns an evidence table into (verdict, summary)."""

    id: str
    text: str
    source: str
    experiment: Callable[..., Evidence]
    judge: Callable[[pd.DataFrame], tuple[str, str]]
    original: str = ""
    method: str = ""

    def run(self, lab: Lab | None = None, **lab_options: Any) -> Evidence:
        """Run the experiment on ``lab`` (default: a new :class:`Lab` from ``lab_options``: smoke, model, seeds)."""
        lab = lab if lab is not None else Lab(**lab_options)
        start = time.perf_counter()
        evidence = self.experiment(lab)
        evidence.seconds = time.perf_counter() - start
        lab.evidence[self.id] = evidence
        return evidence

    @property
    def source_title(self) -> str:
        return ", ".join(SOURCES[s] for s in self.source.split(","))


CLAIMS: dict[str, Claim] = {}
"""Every tested claim by id, in the order the notebook shows them."""

NOT_TESTED: tuple[tuple[str, str, str], ...] = (
    ("Euler a is not the best sampler; it is popular because it is WebUI's default.", "ru",
     "about popularity, not about the sampler"),
    ("Generating a batch at 8-30 steps and picking the best can save hours of compute.", "ru",
     "workflow advice; its premise (convergence in few steps) is tested by the step-count claims"),
    ("Euler a follows complex prompts better with higher steps.", "ru",
     "needs a prompt-adherence score; the embedded model knows simple captions only"),
    ("Euler a and DPM2 a give more anime / cartoon-like results.", "ru", "a style judgement, no metric here"),
    ("Switching the sampler shakes up the noise pattern and removes artifacts.", "ru",
     "artifacts of a real checkpoint; no artifact detector here"),
    ("DDPM needs a great many steps and is no longer in Automatic1111.", "es",
     "about A1111's menu; DDPM's step needs follow from the DDIM claim's ground truth"),
    ("DPM adaptive's composition differs from all other samplers and resembles DPM fast.", "es",
     "one image in the article; the DPM fast claim tests the 'different result' part"),
    ("Karras variants were developed by Tero Karras (Nvidia); Heun's method is over a century old.", "es",
     "history, not behaviour"),
)  # fmt: skip
"""Statements the articles make that these experiments cannot settle: (statement, source, why)."""


def _claim(
    id: str, text: str, source: str, *, judge: Callable[[pd.DataFrame], tuple[str, str]], original: str, method: str
) -> Callable[[Callable[[Lab], Evidence]], Callable[[Lab], Evidence]]:
    """Register an experiment as the test of one claim."""

    def register(experiment: Callable[[Lab], Evidence]) -> Callable[[Lab], Evidence]:
        CLAIMS[id] = Claim(id, text, source, experiment, judge, original, method)
        return experiment

    return register


def get_claim(claim_id: str) -> Claim:
    """The claim with this id (a "did you mean" hint for a near miss)."""
    if claim_id not in CLAIMS:
        raise SdlabError(f"unknown claim {claim_id!r}", claim=claim_id, hint=closest(claim_id, list(CLAIMS)))
    return CLAIMS[claim_id]


# ---------------------------------------------------------------------------------------------------------------
# the lab: runs on the embedded model and on the ground truth, each made once and shared by the claims


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
    and reused by every claim that needs it; so are ground-truth runs and true solutions.
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
        self._sd: Any = None
        self._runs: dict[tuple[Any, ...], dict[str, Any]] = {}
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
    def sd(self) -> Any:
        if self._sd is None:
            from sdlab.generation import load

            self._sd = load(self.model, device=self.device)
        return self._sd

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
        from sdlab.generation import generate, schedule_for

        seeds = list(self.seeds if seeds is None else seeds)
        resolved = schedule_for(sampler, schedule, int(steps), self.sd)[1].lower()  # "Automatic" is a name too
        key = (sampler, resolved, int(steps), tuple(sorted((k, repr(v)) for k, v in options.items())))
        entry = {"per_seed": {}} if fresh else self._runs.setdefault(key, {"per_seed": {}})
        missing = [s for s in seeds if s not in entry["per_seed"]]
        if missing:
            res = generate(
                self.prompt, sampler=sampler, schedule=schedule, steps=int(steps), cfg=self.cfg, seeds=missing,
                size=self.size, model=self.sd, **options,
            )  # fmt: skip
            for k, s in enumerate(missing):
                entry["per_seed"][s] = (res.latents[k], res.images[k])
            entry.update(nfe=res.nfe, seconds=res.seconds / len(missing), schedule=res.specs[0].schedule_resolved)
            entry["sigma_max"] = float(res.sigmas[0])
        lat, img = zip(*(entry["per_seed"][s] for s in seeds), strict=True)
        return Run(
            sampler, entry["schedule"], int(steps), seeds, torch.stack(lat), torch.stack(img), entry["nfe"],
            entry["seconds"], entry["sigma_max"],
        )  # fmt: skip

    def reference(self) -> Run:
        """The embedded model's reference: DPM++ 2M Karras at 40 steps (smoke) or 100 steps."""
        return self.run(REFERENCE[0], self.pick(40, 100), schedule=REFERENCE[1])

    # --- the ground truth --------------------------------------------------------------------------------------

    @property
    def dist(self) -> Any:
        """The ground truth's 2-D Gaussian mixture (:func:`sdlab.groundtruth.toy_mixture`)."""
        if self._dist is None:
            from sdlab.groundtruth import toy_mixture

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
            for schedule in schedules[:1] if _ignores_schedule(name) else schedules:
                for k in steps:
                    key = (name, schedule, int(k), stop_at_sigma_min)
                    if key not in self._gt_rows:
                        self._gt_rows[key] = self._gt_run(name, schedule, int(k), stop_at_sigma_min)
                    rows += self._gt_rows[key]
        return pd.DataFrame(rows)

    def _gt_run(self, name: str, schedule: str, steps: int, stop: bool) -> list[dict[str, Any]]:
        from sdlab.groundtruth import run_sampler, true_solution
        from sdlab.samplers import resolve_sampler

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
            "claimed_order": resolve_sampler(name).info.order,
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
            from sdlab.groundtruth import distribution_vs_steps

            self._distribution = distribution_vs_steps(
                DISTRIBUTION_SAMPLERS, steps=self.pick((4, 8, 16), (4, 8, 16, 32, 64)), dist=self.dist,
                n=self.pick(300, 2000), repeats=self.pick(3, 10), compare=("double",), seed=self.seeds[0],
            ).assign(ground="ground truth")  # fmt: skip
        return self._distribution


DISTRIBUTION_SAMPLERS = ("Euler a", "DPM2 a", "DPM++ SDE", "DPM++ 2M SDE", "Euler", "DPM++ 2M")


def _ignores_schedule(name: str) -> bool:
    """A1111 runs DDIM / PLMS / UniPC on their own timesteps and DPM fast / adaptive on their own range."""
    from sdlab.samplers import resolve_sampler

    r = resolve_sampler(name)
    return bool(r.schedule) or (
        r.flavour == "a1111" and (r.info.timesteps or r.info.key in ("dpm_fast", "dpm_adaptive"))
    )


# ---------------------------------------------------------------------------------------------------------------
# rows: distances between runs on the embedded model


def _distance(a: Tensor, b: Tensor) -> float:
    """Latent RMSE of two latents (C, h, w) (:func:`sdlab.metrics.latent_rmse`)."""
    from sdlab.metrics import latent_rmse

    return float(latent_rmse(a[None].float(), b[None].float())[0])


def _pair_rows(a: Run, b: Run, metric: str, *, seeds: Sequence[int] | None = None, **extra: Any) -> list[dict]:
    """Per common seed: the distance between run ``a`` and run ``b``."""
    seeds = [s for s in (a.seeds if seeds is None else seeds) if s in b.seeds]
    against = f"{b.sampler} at {b.steps}" + (f" ({b.schedule})" if b.schedule != a.schedule else "")
    base = {"ground": "embedded model", "sampler": a.sampler, "schedule": a.schedule, "steps": a.steps}
    return [
        {**base, "against": against, "seed": s, "metric": metric, "value": _distance(a.latent(s), b.latent(s)), **extra}
        for s in seeds
    ]


def _seed_rows(*runs: Run) -> list[dict]:
    """Per run and pair of seeds: the distance between two seeds' images, the scale "a different image" has."""
    rows = []
    for r in runs:
        for s, t in combinations(r.seeds, 2):
            rows.append(
                {"ground": "embedded model", "sampler": r.sampler, "schedule": r.schedule, "steps": r.steps,
                 "against": f"seed {t}", "seed": s, "metric": "seed_to_seed",
                 "value": _distance(r.latent(s), r.latent(t))}
            )  # fmt: skip
    return rows


def _cost_rows(*runs: Run) -> list[dict]:
    """Model evaluations and seconds per image of each run (seconds depend on the machine and its load)."""
    rows = []
    for r in runs:
        base = {"ground": "embedded model", "sampler": r.sampler, "schedule": r.schedule, "steps": r.steps}
        rows += [{**base, "metric": "nfe", "value": float(r.nfe)}, {**base, "metric": "seconds", "value": r.seconds}]
    return rows


def _seed_scale(table: pd.DataFrame) -> float:
    """The median seed-to-seed distance in a table (NaN without seed-to-seed rows)."""
    rows = table[table["metric"] == "seed_to_seed"]
    return float(rows["value"].median()) if len(rows) else math.nan


def _ratio(table: pd.DataFrame, metric: str, **where: Any) -> float:
    """Median of ``metric`` (rows matching ``where``) over the median seed-to-seed distance."""
    rows = _select(table, metric=metric, **where)
    return float(rows["value"].median()) / _seed_scale(table) if len(rows) else math.nan


def _select(table: pd.DataFrame, **where: Any) -> pd.DataFrame:
    """Rows whose columns equal the given values (a list or tuple value: any of them)."""
    rows = table
    for column, value in where.items():
        if column not in rows.columns:
            return rows.iloc[0:0]
        rows = rows[rows[column].isin(value) if isinstance(value, (list, tuple, set)) else rows[column] == value]
    return rows


def _images(runs: Iterable[Run], seed: int, label: Callable[[Run], str] | None = None) -> dict[str, Tensor]:
    return {(label(r) if label else f"{r.sampler}, {r.steps} steps"): r.image(seed) for r in runs}


# ---------------------------------------------------------------------------------------------------------------
# small pieces of judgement


def _combine(flags: Iterable[bool | None]) -> str:
    """All True: supported; all False: refuted; None is "in between" (neither): with anything else, mixed;
    no flag, or only None: inconclusive."""
    flags = list(flags)
    decided = [f for f in flags if f is not None]
    if not decided:
        return "inconclusive"
    if len(decided) == len(flags) and all(decided):
        return "supported"
    if len(decided) == len(flags) and not any(decided):
        return "refuted"
    return "mixed"


def _band(value: float, low: float, high: float) -> bool | None:
    """True below ``low``, False above ``high``, None between (or NaN)."""
    if not math.isfinite(value) and not math.isinf(value):
        return None
    return True if value <= low else False if value >= high else None


def _curve(
    table: pd.DataFrame, sampler: str, *, x: str = "steps", metric: str = "median_error", **where: Any
) -> pd.Series:
    """Mean value per ``x`` for one sampler (sorted by ``x``)."""
    rows = _select(table, sampler=sampler, metric=metric, **where)
    return rows.groupby(x)["value"].mean().sort_index()


def _reach(curve: pd.Series, tol: float = TOL) -> float:
    """The (log-log interpolated) step count from which ``curve`` stays at or below ``tol``; inf if it never
    gets there within the range measured, NaN for an empty curve."""
    if curve.empty:
        return math.nan
    above = [i for i, v in enumerate(curve.to_numpy()) if v > tol]
    if not above:
        return float(curve.index[0])
    i = above[-1]
    if i == len(curve) - 1:
        return math.inf
    (x0, y0), (x1, y1) = (float(curve.index[i]), curve.iloc[i]), (float(curve.index[i + 1]), curve.iloc[i + 1])
    if y1 <= 0:
        return x1
    t = (math.log(tol) - math.log(y0)) / (math.log(y1) - math.log(y0))
    return math.exp(math.log(x0) + t * (math.log(x1) - math.log(x0)))


def _fmt_steps(v: float) -> str:
    return "never (within the steps measured)" if math.isinf(v) else "n/a" if math.isnan(v) else f"{v:.0f}"


def _fmt(v: float, digits: int = 3) -> str:
    return "n/a" if not math.isfinite(v) else f"{v:.{digits}g}"


def _nfe_per_step(table: pd.DataFrame, sampler: str) -> float:
    """Model evaluations per step at the largest step count measured."""
    rows = _select(table, sampler=sampler).dropna(subset=["nfe"])
    if rows.empty:
        return math.nan
    last = rows[rows["steps"] == rows["steps"].max()].iloc[0]
    return float(last["nfe"]) / float(last["steps"])


def _lowest(table: pd.DataFrame, samplers: Sequence[str], steps: int, **where: Any) -> str | None:
    """The sampler with the lowest error at ``steps`` (None when one of them is missing)."""
    values = {s: _curve(table, s, **where).get(steps, math.nan) for s in samplers}
    if any(not math.isfinite(v) for v in values.values()):
        return None
    return min(values, key=values.get)


# ---------------------------------------------------------------------------------------------------------------
# charts (matplotlib figures, shown and saved by show_evidence / save_evidence)


_PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def _new_figure(width: float = 7.5, height: float = 4.2) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def _line_chart(
    table: pd.DataFrame,
    *,
    x: str = "steps",
    series: Sequence[str] = ("sampler",),
    title: str,
    ylabel: str,
    xlabel: str | None = None,
    logx: bool = True,
    logy: bool = True,
    hlines: Mapping[str, float] | None = None,
    scale: float = 1.0,
) -> Any:
    """One line per ``series`` (median of ``value`` per ``x``), values divided by ``scale``: a colour per value of
    the first series column, a line style per value of the second; dashed grey ``hlines``."""
    fig, ax = _new_figure()
    cols = [c for c in series if c in table.columns]
    groups = list(table.groupby(cols, sort=False)) if cols else [((), table)]
    firsts = list(dict.fromkeys(k[0] if isinstance(k, tuple) else k for k, _ in groups))
    seconds = list(dict.fromkeys(k[1] for k, _ in groups if isinstance(k, tuple) and len(k) > 1))
    for keys, g in groups:
        keys = keys if isinstance(keys, tuple) else (keys,)
        curve = g.groupby(x)["value"].median().sort_index() / scale
        curve = curve[curve > 0] if logy else curve
        if len(curve):
            color = _PALETTE[firsts.index(keys[0]) % len(_PALETTE)] if keys else None
            style = ("-", "--", ":", "-.")[seconds.index(keys[1]) % 4] if len(keys) > 1 else "-"
            ax.plot(curve.index, curve.to_numpy(), style, marker="o", ms=3.5, color=color,
                    label=" / ".join(str(k) for k in keys))  # fmt: skip
    for k, (label, y) in enumerate((hlines or {}).items()):
        ax.axhline(y, color=("#555", "#999", "#bbb")[k % 3], ls="--", lw=1, label=label)
    ax.set(title=title, xlabel=xlabel or x, ylabel=ylabel)
    if logx:
        ax.set_xscale("log")
        ticks = sorted(table[x].dropna().unique())
        if 0 < len(ticks) <= 12:
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
            ax.minorticks_off()
    if logy:
        ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7)
    return fig


def _bar_chart(
    values: Mapping[str, float], *, title: str, xlabel: str, lines: Mapping[str, float] | None = None
) -> Any:
    """Horizontal bars, one per label, with dashed reference ``lines``."""
    fig, ax = _new_figure(height=max(2.6, 0.42 * len(values) + 1.2))
    labels = list(values)
    ax.barh(labels, [values[k] if math.isfinite(values[k]) else 0 for k in labels], color="#4c78a8")
    for k, label in enumerate(labels):
        ax.annotate(f" {_fmt(values[label])}", (values[label] if math.isfinite(values[label]) else 0, k), va="center",
                    fontsize=8)  # fmt: skip
    for k, (label, x) in enumerate((lines or {}).items()):
        ax.axvline(x, color=("#d62728", "#ff7f0e", "#555")[k % 3], ls="--", lw=1, label=label)
    ax.invert_yaxis()
    ax.set(title=title, xlabel=xlabel)
    ax.tick_params(axis="y", labelsize=8)
    if lines:
        ax.legend(fontsize=7, loc="lower right")
    ax.grid(True, axis="x", alpha=0.25)
    return fig


def _evidence(judge: Callable[[pd.DataFrame], tuple[str, str]], rows: list[dict] | pd.DataFrame, **kw: Any) -> Evidence:
    table = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    verdict, summary = judge(table)
    return Evidence(verdict, summary, table, **kw)


# ===============================================================================================================
# the claims
# ===============================================================================================================

# --- 1. all non-ancestral samplers converge to the same image --------------------------------------------------


def judge_converge_same_image(
    table: pd.DataFrame, *, same: float = SAME, different: float = DIFFERENT
) -> tuple[str, str]:
    """At the largest step count, the farthest pair of deterministic samplers against the seed-to-seed distance."""
    top = int(table["steps"].max())
    at_top = table[table["steps"] == top]
    pairs = _select(at_top, metric="pair_distance")
    if pairs.empty or not math.isfinite(_seed_scale(at_top)):
        return "inconclusive", "no pairs measured"
    per_pair = pairs.groupby(["sampler", "against"])["value"].median() / _seed_scale(at_top)
    worst, (a, b) = float(per_pair.max()), per_pair.idxmax()
    anc = _ratio(at_top, "ancestral_distance")
    verdict = {True: "supported", False: "refuted", None: "mixed"}[_band(worst, same, different)]
    return verdict, (
        f"At {top} steps the farthest pair of deterministic samplers ({a} vs {b}) is {worst:.2f} x the seed-to-seed "
        f"distance (same image below {same}, different above {different}); Euler a lands {_fmt(anc, 2)} x away."
    )


@_claim(
    "converge_same_image",
    "All the regular (non-ancestral) samplers converge to the same image after a lot of steps.",
    "ru",
    judge=judge_converge_same_image,
    original="All the regular samples converge to the same image after a lot of steps.",
    method="embedded model: deterministic samplers at high steps against each other, beside seed-to-seed distance",
)
def _converge_same_image(lab: Lab) -> Evidence:
    samplers = lab.pick(
        ("Euler", "Heun", "LMS", "DPM++ 2M"), ("Euler", "Heun", "DPM2", "LMS", "DPM++ 2M", "UniPC", "DDIM")
    )
    rows: list[dict] = []
    for n in lab.pick((8, 16), (20, 40, 80)):
        runs = {s: lab.run(s, n) for s in samplers}
        anc = lab.run("Euler a", n)
        rows += _seed_rows(*runs.values())
        for a, b in combinations(samplers, 2):
            rows += _pair_rows(runs[a], runs[b], "pair_distance")
        for s in samplers:
            rows += _pair_rows(anc, runs[s], "ancestral_distance")
    table = pd.DataFrame(rows)
    plot = _converge_lines(table)
    fig = _line_chart(
        plot, series=("line",), title="Distance between samplers / seed-to-seed distance", ylabel="ratio",
        hlines={f"same image ({SAME})": SAME, f"different image ({DIFFERENT})": DIFFERENT},
    )  # fmt: skip
    images = _images([*runs.values(), anc], lab.seeds[0])
    return _evidence(judge_converge_same_image, table, images=images, figure=fig)


def _converge_lines(table: pd.DataFrame) -> pd.DataFrame:
    """Per step count: the farthest and the median pair of deterministic samplers, and Euler a against them, each
    a median over seeds divided by the seed-to-seed distance at that step count."""
    scale = table[table["metric"] == "seed_to_seed"].groupby("steps")["value"].median()
    med = table[table["metric"] != "seed_to_seed"].groupby(["metric", "steps", "sampler", "against"])["value"].median()
    ratio = (med / med.index.get_level_values("steps").map(scale).to_numpy()).rename("value").reset_index()
    pairs, anc = ratio[ratio["metric"] == "pair_distance"], ratio[ratio["metric"] == "ancestral_distance"]
    return pd.concat(
        [pairs.groupby("steps")["value"].max().reset_index().assign(line="farthest deterministic pair"),
         pairs.groupby("steps")["value"].median().reset_index().assign(line="median deterministic pair"),
         anc.groupby("steps")["value"].median().reset_index().assign(line="Euler a vs each deterministic (median)")],
        ignore_index=True,
    )  # fmt: skip


# --- 2, 3. Heun and DPM2: fewer steps, twice the cost; twice as fast as LMS ------------------------------------

SECOND_ORDER = ("Heun", "DPM2")


def judge_heun_dpm2_fewer_steps(
    table: pd.DataFrame, *, tol: float = TOL, twice: tuple[float, float] = TWICE
) -> tuple[str, str]:
    """Steps to reach ``tol`` (Heun, DPM2 vs Euler, per schedule) and model evaluations per step."""
    fewer, parts = [], []
    for schedule in sorted(table["schedule"].unique()):
        euler = _reach(_curve(table, "Euler", schedule=schedule), tol)
        for s in SECOND_ORDER:
            mine = _reach(_curve(table, s, schedule=schedule), tol)
            if math.isnan(mine) or math.isnan(euler) or (math.isinf(mine) and math.isinf(euler)):
                continue
            fewer.append(mine < euler)
            nfe_mine = mine * _nfe_per_step(_select(table, schedule=schedule), s)
            reach = f"{mine:.0f} steps ({nfe_mine:.0f} NFE)" if math.isfinite(mine) else _fmt_steps(mine)
            parts.append(f"{s} {reach} vs Euler {_fmt_steps(euler)} ({schedule})")
    cost = [_nfe_per_step(table, s) for s in SECOND_ORDER]
    double = all(twice[0] <= c <= twice[1] for c in cost)
    verdict = _combine([{"supported": True, "refuted": False}.get(_combine(fewer)), double])
    return verdict, (
        f"Fewer steps than Euler in {sum(fewer)} of {len(fewer)} (sampler, schedule) cells. To reach the true "
        f"solution within {tol}: {'; '.join(parts) or 'not measured'}. Model evaluations per step: "
        f"Heun {_fmt(cost[0])}, DPM2 {_fmt(cost[1])} (twice = {twice[0]}-{twice[1]})."
    )


@_claim(
    "heun_dpm2_fewer_steps_twice_cost",
    "Heun and DPM2 converge in fewer steps, but are slower (twice the cost per step).",
    "ru",
    judge=judge_heun_dpm2_fewer_steps,
    original="Методы K_HEUN и K_DPM_2 сходятся за меньшее количество шагов (но медленнее).",
    method="ground truth: steps and model evaluations to reach the true ODE solution within TOL, Karras and uniform",
)
def _heun_dpm2_fewer_steps(lab: Lab) -> Evidence:
    table = lab.gt_errors(("Euler", "Heun", "DPM2", "LMS"), _gt_steps(lab), schedules=("karras", "uniform"))
    fig = _gt_chart(table, "True error against steps (Karras and uniform)")
    return _evidence(judge_heun_dpm2_fewer_steps, table, figure=fig)


def _gt_steps(lab: Lab) -> tuple[int, ...]:
    return lab.pick((4, 8, 16, 32), (4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64, 100))


def _gt_chart(table: pd.DataFrame, title: str, *, x: str = "steps", metric: str = "median_error") -> Any:
    rows = table[table["metric"] == metric]
    series = ("sampler", "schedule") if rows.groupby("sampler")["schedule"].nunique().max() > 1 else ("sampler",)
    return _line_chart(
        rows, x=x, series=series, title=title, ylabel=f"{metric.replace('_', ' ')} vs the true solution",
        xlabel="model evaluations (NFE)" if x == "nfe" else "steps", hlines={f"converged ({TOL})": TOL},
    )  # fmt: skip


def judge_heun_dpm2_twice_lms(
    table: pd.DataFrame, *, tol: float = TOL, half: float = HALF, not_half: float = NOT_HALF
) -> tuple[str, str]:
    """Heun's and DPM2's steps to ``tol`` over LMS's: at most ``half`` confirms "twice as fast"."""
    flags, parts = [], []
    for schedule in sorted(table["schedule"].unique()):
        lms = _reach(_curve(table, "LMS", schedule=schedule), tol)
        for s in SECOND_ORDER:
            mine = _reach(_curve(table, s, schedule=schedule), tol)
            if not (math.isfinite(mine) and math.isfinite(lms)):
                if math.isinf(mine) == math.isinf(lms):
                    continue  # neither (or only one of NaN) reached the tolerance: nothing to compare
                flags.append(math.isinf(lms))
                parts.append(f"{s} {_fmt_steps(mine)} vs LMS {_fmt_steps(lms)} ({schedule})")
                continue
            ratio = mine / lms
            flags.append(_band(ratio, half, not_half))
            parts.append(f"{s}/LMS = {ratio:.2f} ({schedule})")
    return _combine(flags), (
        f"Steps to reach the true solution within {tol}, as a fraction of LMS's: {'; '.join(parts)} "
        f"(twice as fast: <= {half}; clearly not: >= {not_half}). Per model evaluation they pay twice."
    )


@_claim(
    "heun_dpm2_twice_as_fast_as_lms",
    "At 20-40+ steps Heun and DPM2 are twice as slow but converge twice as fast as LMS.",
    "ru",
    judge=judge_heun_dpm2_twice_lms,
    original="K_HEUN и K_DPM_2 в 2 раза медленнее, но сходятся в 2 раза быстрее, чем K_LMS",
    method="ground truth: steps to reach the true solution within TOL, Heun and DPM2 over LMS",
)
def _heun_dpm2_twice_lms(lab: Lab) -> Evidence:
    table = lab.gt_errors(("Heun", "DPM2", "LMS"), _gt_steps(lab), schedules=("karras", "uniform"))
    return _evidence(judge_heun_dpm2_twice_lms, table, figure=_gt_chart(table, "True error against steps"))


# --- 4. LMS is best at 8 steps or fewer ------------------------------------------------------------------------

LOW_STEP_SAMPLERS = ("Euler", "Heun", "DPM2", "LMS")


def judge_lms_best_low_steps(table: pd.DataFrame, *, max_steps: int = 8) -> tuple[str, str]:
    """In every (ground, schedule, steps <= ``max_steps``) cell: is LMS's error the lowest? Failing that, is it the
    lowest at equal model evaluations (the others interpolated to LMS's NFE)?"""
    cells, at_nfe, parts = [], [], []
    low = table[table["steps"] <= max_steps]
    for (ground, schedule), g in low.groupby(["ground", "schedule"]):
        metric = "median_error" if ground == "ground truth" else "reference_distance"
        for n in sorted(g["steps"].unique()):
            best = _lowest(g, LOW_STEP_SAMPLERS, n, metric=metric)
            if best is None:
                continue
            cells.append(best == "LMS")
            at_nfe.append(_lms_best_at_equal_nfe(g, n, metric))
            parts.append(f"{ground} {schedule} {n}: {best}")
    n_best, n_nfe = sum(cells), sum(bool(v) for v in at_nfe)
    verdict = _combine(cells)
    if verdict == "refuted" and n_nfe:
        verdict = "mixed"
    return verdict, (
        f"Lowest error at equal steps: LMS in {n_best} of {len(cells)} cells ({'; '.join(parts)}). At equal model "
        f"evaluations LMS is lowest in {n_nfe} of {len(at_nfe)} (Heun and DPM2 spend 2 per step)."
    )


def _lms_best_at_equal_nfe(g: pd.DataFrame, n: int, metric: str) -> bool:
    lms = _curve(g, "LMS", metric=metric).get(n, math.nan)
    for s in LOW_STEP_SAMPLERS[:-1]:
        rows = _select(g, sampler=s, metric=metric).groupby("nfe")["value"].mean().sort_index()
        if len(rows) and rows.index.min() <= n <= rows.index.max():
            other = float(np.exp(np.interp(np.log(n), np.log(rows.index.to_numpy(float)), np.log(rows.to_numpy()))))
            if other <= lms:
                return False
    return math.isfinite(lms)


@_claim(
    "lms_best_at_8_steps",
    "At very few steps (8 or fewer) LMS is best; Heun and DPM2 are not recommended.",
    "ru",
    judge=judge_lms_best_low_steps,
    original="При очень малом количестве шагов (≤ 8) лучше всего подходит метод K_LMS",
    method="ground truth (Karras and uniform) and the embedded model (distance to the reference) at 4-8 steps",
)
def _lms_best_low_steps(lab: Lab) -> Evidence:
    steps = lab.pick((4, 8), (4, 5, 6, 8))
    gt = lab.gt_errors(LOW_STEP_SAMPLERS, steps, schedules=("karras", "uniform"))
    ref = lab.reference()
    runs = [lab.run(s, n) for s in LOW_STEP_SAMPLERS for n in lab.pick((6,), (4, 6, 8))]
    rows = [r | {"nfe": run.nfe} for run in runs for r in _pair_rows(run, ref, "reference_distance")]
    rows = [{**r, "schedule": "A1111 default"} for r in rows]  # one cell per step count, whatever each default is
    table = pd.concat([gt, pd.DataFrame(rows)], ignore_index=True)
    fig = _gt_chart(gt, "True error at few steps")
    images = _images([r for r in runs if r.steps == runs[0].steps] + [ref], lab.seeds[0])
    return _evidence(judge_lms_best_low_steps, table, images=images, figure=fig)


# --- 5. LMS degrades around 60 steps ---------------------------------------------------------------------------


def judge_lms_degrades(table: pd.DataFrame, *, degrade: float = DEGRADE, around: int = 50) -> tuple[str, str]:
    """Per ground and schedule: does LMS's error at >= ``around`` steps rise ``degrade`` above its best below it?
    The other samplers are the control."""
    flags, parts, controls = [], [], []
    for (ground, schedule), g in table.groupby(["ground", "schedule"]):
        metric = "median_error" if ground == "ground truth" else "reference_distance"
        for sampler in g["sampler"].unique():
            curve = _curve(g, sampler, metric=metric)
            before, after = curve[curve.index < around], curve[curve.index >= around]
            if before.empty or after.empty:
                continue
            rise = float(after.max() / before.min()) - 1
            if sampler == "LMS":
                flags.append(rise > degrade)
                parts.append(f"{ground} {schedule}: {rise:+.0%}")
            elif rise > degrade:
                controls.append(f"{sampler} ({ground} {schedule}) {rise:+.0%}")
    return _combine(flags), (
        f"LMS's largest error at >= {around} steps against its best below: {'; '.join(parts) or 'not measured'} "
        f"(degrades: > +{degrade:.0%}). Other samplers that degrade: {', '.join(controls) or 'none'}."
    )


@_claim(
    "lms_degrades_at_60",
    "LMS is limited and starts to degrade at around 60 steps.",
    "ru",
    judge=judge_lms_degrades,
    original="LMS-K ограничен и начинает демонстрировать некоторую деградацию примерно на 60 шагах.",
    method="ground truth at 30-80 steps (Karras, uniform); full mode adds the embedded model at 40-80 steps",
)
def _lms_degrades(lab: Lab) -> Evidence:
    samplers = ("LMS", "Euler", "DPM++ 2M", "Heun")
    table = lab.gt_errors(samplers, lab.pick((30, 60), (30, 40, 50, 60, 70, 80)), schedules=("karras", "uniform"))
    images = {}
    if not lab.smoke:  # image-level half: 540 model evaluations, full mode only
        ref = lab.reference()
        runs = [lab.run(s, n) for s in samplers[:3] for n in (40, 60, 80)]
        rows = [{**r, "schedule": "A1111 default"} for run in runs for r in _pair_rows(run, ref, "reference_distance")]
        table = pd.concat([table, pd.DataFrame(rows)], ignore_index=True)
        images = _images([r for r in runs if r.sampler == "LMS"] + [ref], lab.seeds[0])
    fig = _gt_chart(_select(table, ground="ground truth"), "True error at 30-80 steps")
    return _evidence(judge_lms_degrades, table, images=images, figure=fig)


# --- 6. DPM2 a resembles Euler a on the previous seed ----------------------------------------------------------


def judge_dpm2a_prev_seed(table: pd.DataFrame, *, close: float = 0.5, far: float = 0.8) -> tuple[str, str]:
    """DPM2 a at seed s against Euler a at s - 1, as a fraction of its distance to Euler a at unrelated seeds."""
    unrelated = _select(table, metric="unrelated_seed")["value"].median()
    prev = _select(table, metric="previous_seed")["value"].median()
    same = _select(table, metric="same_seed")["value"].median()
    if not (math.isfinite(prev) and math.isfinite(unrelated) and unrelated > 0):
        return "inconclusive", "not enough seeds to compare"
    r_prev, r_same = prev / unrelated, same / unrelated
    verdict = {True: "supported", False: "refuted", None: "mixed"}[_band(r_prev, close, far)]
    return verdict, (
        f"DPM2 a at seed s vs Euler a at s - 1: {r_prev:.2f} x its distance to Euler a at unrelated seeds (similar: "
        f"<= {close}; no closer than chance: >= {far}); vs Euler a at the same seed: {r_same:.2f} x."
    )


@_claim(
    "dpm2a_is_euler_a_previous_seed",
    "DPM2 a generates images very similar to Euler a's on the previous seed.",
    "ru",
    judge=judge_dpm2a_prev_seed,
    original="in some comparisons DPM2-A generates very similar images as Euler-A... on the previous seed.",
    method="embedded model: DPM2 a at seed s against Euler a at seeds s - 1, s and unrelated seeds",
)
def _dpm2a_prev_seed(lab: Lab) -> Evidence:
    n = lab.pick(16, 30)
    targets = [s for s in lab.seeds if s >= 1] or [1]
    euler_seeds = sorted({t + d for t in targets for d in (-1, 0, 1)} | set(lab.seeds))
    euler, dpm2a = lab.run("Euler a", n, seeds=euler_seeds), lab.run("DPM2 a", n, seeds=targets)
    rows = []
    for s in targets:
        for t in euler_seeds:
            kind = "previous_seed" if t == s - 1 else "same_seed" if t == s else "unrelated_seed"
            rows.append(
                {"ground": "embedded model", "sampler": "DPM2 a", "steps": n, "seed": s, "against": f"Euler a seed {t}",
                 "metric": kind, "value": _distance(dpm2a.latent(s), euler.latent(t))}
            )  # fmt: skip
    table = pd.DataFrame(rows)
    means = table.groupby("metric")["value"].median()
    fig = _bar_chart(
        {k.replace("_", " "): float(means.get(k, math.nan)) for k in ("previous_seed", "same_seed", "unrelated_seed")},
        title="DPM2 a at seed s against Euler a", xlabel="latent RMSE (median over seeds)",
    )  # fmt: skip
    s = targets[0]
    images = {f"DPM2 a seed {s}": dpm2a.image(s), f"Euler a seed {s - 1}": euler.image(s - 1)}
    images |= {f"Euler a seed {s}": euler.image(s), f"Euler a seed {s + 1}": euler.image(s + 1)}
    return _evidence(judge_dpm2a_prev_seed, table, images=images, figure=fig)


# --- 7. Karras schedules help at low step counts ---------------------------------------------------------------


def judge_karras_low_steps(
    table: pd.DataFrame, *, better: float = BETTER, tol: float = TOL, low_max: int = 10
) -> tuple[str, str]:
    """Low steps (<= ``low_max``): in how many (ground, sampler, steps) cells is Karras's error ``better`` lower
    than uniform's? High steps: are both within ``tol`` (the difference invisible)?"""
    wins, losses, ties, high_ok = 0, 0, 0, []
    for (ground, sampler), g in table.groupby(["ground", "sampler"]):
        metric = "median_error" if ground == "ground truth" else "reference_distance"
        k, u = (
            _curve(g, sampler, metric=metric, schedule="karras"),
            _curve(g, sampler, metric=metric, schedule="uniform"),
        )
        for n in sorted(set(k.index) & set(u.index)):
            if n <= low_max:
                wins += k[n] < (1 - better) * u[n]
                losses += u[n] < (1 - better) * k[n]
                ties += (1 - better) * u[n] <= k[n] and (1 - better) * k[n] <= u[n]
            elif ground == "ground truth":
                tie = (1 - better) * u[n] <= k[n] and (1 - better) * k[n] <= u[n]
                high_ok.append(tie or max(k[n], u[n]) <= tol)
    cells = wins + losses + ties
    if not cells:
        return "inconclusive", "no low-step cells measured"
    share = wins / cells
    low = True if share >= 0.75 else False if share <= 0.25 else None
    verdict = "refuted" if low is False else "supported" if low and (not high_ok or all(high_ok)) else "mixed"
    return verdict, (
        f"At <= {low_max} steps Karras beats uniform (by > {better:.0%}) in {wins} of {cells} cells, loses in "
        f"{losses} (helps: >= 75 % of cells). At > {low_max} steps the two are within {better:.0%} of each other "
        f"or both within {tol} of the truth (hard to see) in {sum(high_ok)} of {len(high_ok)} ground-truth cells."
    )


@_claim(
    "karras_helps_low_steps",
    "Karras schedules give better results at low step counts; at high step counts the difference is hard to see.",
    "es",
    judge=judge_karras_low_steps,
    original="la versión Karras tiene la ventaja de ofrecer mejores resultados en un número reducido de pasos",
    method="ground truth and embedded model: Karras against uniform (A1111's pre-Karras default) per sampler",
)
def _karras_low_steps(lab: Lab) -> Evidence:
    samplers = ("Euler", "Heun", "DPM2", "LMS", "DPM++ 2M")
    steps = lab.pick((4, 8, 32), (4, 6, 8, 10, 32, 64, 100))
    gt = lab.gt_errors(samplers, steps, schedules=("karras", "uniform"))
    ref = lab.reference()
    runs = [
        lab.run(s, n, schedule=sched)
        for s in lab.pick(("Euler", "DPM++ 2M"), samplers)
        for n in lab.pick((6,), (6, 10))
        for sched in ("Karras", "Uniform")
    ]
    rows = [{**r, "schedule": run.schedule.lower()} for run in runs for r in _pair_rows(run, ref, "reference_distance")]
    table = pd.concat([gt, pd.DataFrame(rows)], ignore_index=True)
    fig = _gt_chart(gt, "True error: Karras against uniform")
    images = _images(
        runs[: 2 * len(lab.pick((6,), (6, 10)))] + [ref], lab.seeds[0], lambda r: f"{r.sampler} {r.schedule} {r.steps}"
    )
    return _evidence(judge_karras_low_steps, table, images=images, figure=fig)


# --- 8, 9. DPM adaptive ignores the step count; it is the slowest ----------------------------------------------


def judge_dpm_adaptive_ignores_steps(table: pd.DataFrame, *, atol: float = 1e-9) -> tuple[str, str]:
    """Same result (largest difference <= ``atol``) and same model evaluations at every step count, per ground."""
    same_result, same_cost, parts = [], [], []
    for ground, g in table.groupby("ground"):
        diff = float(_select(g, metric="max_difference")["value"].max())
        nfe = _select(g, metric="nfe")["value"]
        same_result.append(diff <= atol)
        same_cost.append(nfe.nunique() == 1)
        parts.append(f"{ground}: largest difference {diff:.2g}, NFE {sorted(set(nfe.astype(int)))}")
    verdict = _combine([all(same_result), all(same_cost)]) if same_result else "inconclusive"
    steps = [int(n) for n in sorted(table["steps"].unique())]
    return verdict, f"DPM adaptive at {steps} steps: {'; '.join(parts)} (the same result: difference <= {atol})."


@_claim(
    "dpm_adaptive_ignores_steps",
    "DPM adaptive ignores the step count you set and adapts its own step size.",
    "es",
    judge=judge_dpm_adaptive_ignores_steps,
    original="es como si se ignorase el número de pasos especificado",
    method="ground truth at several step counts (smoke); full mode adds the embedded model",
)
def _dpm_adaptive_ignores_steps(lab: Lab) -> Evidence:
    from sdlab.groundtruth import run_sampler

    steps = lab.pick((5, 20, 50), (5, 10, 20, 50, 100))
    noise = torch.randn(32, lab.dist.dim, generator=torch.Generator().manual_seed(lab.seeds[0]), dtype=torch.float64)
    runs = {n: run_sampler("DPM adaptive", lab.dist, noise, steps=n, stop_at_sigma_min=False) for n in steps}
    first = runs[steps[0]].x_end
    rows = []
    for n, r in runs.items():
        base = {"ground": "ground truth", "sampler": "DPM adaptive", "steps": n}
        rows += [{**base, "metric": "nfe", "value": float(r.nfe)},
                 {**base, "metric": "max_difference", "value": float((r.x_end - first).abs().max())}]  # fmt: skip
    images = {}
    if not lab.smoke:  # ~100 model evaluations per run on the embedded model
        model_runs = [lab.run("DPM adaptive", n, seeds=lab.seeds[:1]) for n in (10, 30)]
        for r in model_runs:
            base = {"ground": "embedded model", "sampler": "DPM adaptive", "steps": r.steps}
            rows += [{**base, "metric": "nfe", "value": float(r.nfe)},
                     {**base, "metric": "max_difference",
                      "value": float((r.latents - model_runs[0].latents).abs().max())}]  # fmt: skip
        images = _images(model_runs, lab.seeds[0])
    table = pd.DataFrame(rows)
    fig = _bar_chart(
        {f"{g} {n} steps": v for g, n, v in _select(table, metric="nfe")[["ground", "steps", "value"]].to_numpy()},
        title="DPM adaptive: model evaluations at each step count", xlabel="NFE",
    )  # fmt: skip
    return _evidence(judge_dpm_adaptive_ignores_steps, table, images=images, figure=fig)


def judge_dpm_adaptive_slowest(table: pd.DataFrame) -> tuple[str, str]:
    """DPM adaptive's model evaluations (embedded model) against every fixed-step A1111 sampler's at the same steps."""
    adaptive = _select(table, sampler="DPM adaptive", metric="nfe")["value"]
    others = _select(table, metric="nfe")
    others = others[others["sampler"] != "DPM adaptive"]
    if adaptive.empty or others.empty:
        return "inconclusive", "not measured"
    a, top = float(adaptive.median()), others.loc[others["value"].idxmax()]
    median, steps = float(others["value"].median()), int(table["steps"].max())
    verdict = "supported" if a > top["value"] else "refuted"
    return verdict, (
        f"DPM adaptive: {a:.0f} model evaluations per image on the embedded model at {steps} steps; the most "
        f"expensive fixed-step sampler: {top['sampler']} {top['value']:.0f}; their median {median:.0f} "
        f"(DPM adaptive costs {a / median:.1f} x the median)."
    )


@_claim(
    "dpm_adaptive_slowest",
    "DPM adaptive is the slowest sampler (three to four times the time of the others).",
    "es",
    judge=judge_dpm_adaptive_slowest,
    original="ha tardado el triple o cuádruple de tiempo con respecto a otros samplers",
    method="embedded model: DPM adaptive's model evaluations against every A1111 sampler's at 20 steps",
)
def _dpm_adaptive_slowest(lab: Lab) -> Evidence:
    from sdlab.groundtruth import run_sampler
    from sdlab.samplers.catalogue import A1111_SAMPLERS

    n = 20  # A1111's default step count
    adaptive = lab.run("DPM adaptive", n, seeds=lab.seeds[:1])
    rows = [
        {
            "ground": "embedded model",
            "sampler": "DPM adaptive",
            "steps": n,
            "metric": "nfe",
            "value": float(adaptive.nfe),
        }
    ]
    noise = torch.zeros(1, lab.dist.dim, dtype=torch.float64)  # fixed-step samplers: NFE does not depend on the model
    for name in A1111_SAMPLERS:
        if name in ("DPM adaptive", "LCM"):
            continue
        r = run_sampler(name, lab.dist, noise, steps=n, stop_at_sigma_min=False, eta=0.0 if name != "Restart" else 1.0)
        rows.append({"ground": "embedded model", "sampler": name, "steps": n, "metric": "nfe", "value": float(r.nfe)})
    table = pd.DataFrame(rows)
    fig = _bar_chart(
        dict(zip(table["sampler"], table["value"], strict=True)), title=f"Model evaluations per image at {n} steps",
        xlabel="NFE",
    )  # fmt: skip
    return _evidence(judge_dpm_adaptive_slowest, table, images=_images([adaptive], lab.seeds[0]), figure=fig)


# --- 10, 11. ancestral and SDE samplers never converge ---------------------------------------------------------


def _settling(table: pd.DataFrame, sampler: str) -> tuple[float, float, float]:
    """Ground truth: (path change N -> 2N at the largest N over at the smallest N, MMD at the largest N, the MMD
    noise floor + its margin there)."""
    rows = _select(table, ground="ground truth", sampler=sampler)
    path = _curve(rows, sampler, metric="path_change_double")
    mmd = _select(rows, metric="mmd")
    if path.empty or mmd.empty:
        return math.nan, math.nan, math.nan
    last = mmd[mmd["steps"] == mmd["steps"].max()].iloc[0]
    return float(path.iloc[-1] / path.iloc[0]), float(last["value"]), float(last["floor_mean"] + 3 * last["floor_std"])


def _model_change(table: pd.DataFrame, sampler: str) -> float:
    """Embedded model: the change from N to 2N steps at the largest N, over the seed-to-seed distance."""
    rows = _select(table, ground="embedded model", sampler=sampler, metric="n_to_2n")
    if rows.empty:
        return math.nan
    return float(rows[rows["steps"] == rows["steps"].max()]["value"].median()) / _seed_scale(table)


def judge_ancestral_never_converge(
    table: pd.DataFrame, *, settles: float = SETTLES, same: float = SAME
) -> tuple[str, str]:
    """Each seed's path (ground truth: does its N -> 2N change shrink below ``settles`` x? embedded model: is the
    image at 2N steps still the same image, within ``same`` x seed-to-seed, as at N?) and the distribution (MMD
    against its noise floor): paths that never settle but a distribution that converges make it "mixed"."""
    paths, parts, dist_ok = [], [], []
    for sampler in ("Euler a", "DPM2 a"):
        shrink, mmd, floor = _settling(table, sampler)
        if math.isfinite(shrink):
            paths.append(shrink > settles)
            dist_ok.append(mmd <= floor)
            parts.append(f"{sampler}: path change x{shrink:.2f} over the steps, MMD {mmd:.3f} (floor {floor:.3f})")
        change = _model_change(table, sampler)
        if math.isfinite(change):
            paths.append(change > same)
            parts.append(f"{sampler} on the model: N -> 2N = {change:.2f} x seed-to-seed")
    never = _combine(paths)
    if never == "supported" and dist_ok and all(dist_ok):
        never = "mixed"
    return never, (
        f"{'; '.join(parts)}. A path settles when its change shrinks below x{settles} over the steps (ground "
        f"truth) or stays within {same} x seed-to-seed from N to 2N (model: the same image); the distribution has "
        "converged when its MMD is within 3 sd of the noise floor."
    )


@_claim(
    "ancestral_never_converge",
    "Ancestral samplers never converge, because of the random noise they add at every step.",
    "es",
    judge=judge_ancestral_never_converge,
    original="Samplers con esta característica nunca convergen debido al ruido aleatorio que se añade en cada paso.",
    method="ground truth: each seed's path and the distribution (MMD) vs steps; embedded model: N vs 2N steps",
)
def _ancestral_never_converge(lab: Lab) -> Evidence:
    dist = _select(lab.gt_distribution(), sampler=["Euler a", "DPM2 a", "Euler"])
    rows, images = _n_to_2n(lab, ("Euler a", "Euler"))
    table = pd.concat([dist, pd.DataFrame(rows)], ignore_index=True)
    fig = _line_chart(
        _select(dist, metric=["path_change_double", "mmd"]), series=("sampler", "metric"),
        title="Ground truth: each seed's change N -> 2N, and MMD to the true distribution", ylabel="distance",
        hlines={"MMD noise floor": float(dist["floor_mean"].iloc[0])},
    )  # fmt: skip
    return _evidence(judge_ancestral_never_converge, table, images=images, figure=fig)


def _n_to_2n(lab: Lab, samplers: Sequence[str]) -> tuple[list[dict], dict[str, Tensor]]:
    """Embedded model: each sampler at N and 2N steps, their distance, plus seed-to-seed rows."""
    rows, images = [], {}
    for s in samplers:
        for n in lab.pick((8,), (10, 20, 40)):
            a, b = lab.run(s, n), lab.run(s, 2 * n)
            rows += _pair_rows(a, b, "n_to_2n") + _seed_rows(b)
            images |= _images([a, b], lab.seeds[0])
    return rows, images


def judge_sde_never_converge(table: pd.DataFrame, *, settles: float = SETTLES, same: float = SAME) -> tuple[str, str]:
    """Does each seed's path keep changing as steps grow? Ground truth: its N -> 2N change does not shrink below
    ``settles`` x; embedded model: the image at 2N steps is not the same (> ``same`` x seed-to-seed) as at N."""
    flags, parts = [], []
    for sampler in ("DPM++ SDE", "DPM++ 2M SDE"):
        shrink, _, _ = _settling(table, sampler)
        if math.isfinite(shrink):
            flags.append(shrink > settles)
            parts.append(f"{sampler}: path change x{shrink:.2f} from fewest to most steps")
        change = _model_change(table, sampler)
        if math.isfinite(change):
            flags.append(change > same)
            parts.append(f"{sampler} on the model: N -> 2N = {change:.2f} x seed-to-seed")
    euler_a, _, _ = _settling(table, "Euler a")
    return _combine(flags), (
        f"{'; '.join(parts)} (Euler a for comparison: x{_fmt(euler_a, 2)}). Never converges: the change does not "
        f"shrink below x{settles} (ground truth), or the image at 2N steps is not the same as at N (model: above "
        f"{same} x seed-to-seed)."
    )


@_claim(
    "sde_never_converge",
    "SDE samplers are stochastic and never converge: more steps give variations, not quality, like ancestral ones.",
    "es",
    judge=judge_sde_never_converge,
    original=(
        "Al ser estocástico nunca converge, por lo que a mayor número de pasos no ofrecen mayor calidad, si no más "
        "variaciones"
    ),
    method="ground truth: each seed's change N -> 2N (Brownian-tree noise); embedded model: N vs 2N steps",
)
def _sde_never_converge(lab: Lab) -> Evidence:
    dist = _select(lab.gt_distribution(), sampler=["DPM++ SDE", "DPM++ 2M SDE", "Euler a"])
    rows, images = _n_to_2n(lab, ("DPM++ 2M SDE",))
    table = pd.concat([dist, pd.DataFrame(rows)], ignore_index=True)
    fig = _line_chart(
        _select(dist, metric="path_change_double"), title="Ground truth: each seed's change from N to 2N steps",
        ylabel="mean distance",
    )  # fmt: skip
    return _evidence(judge_sde_never_converge, table, images=images, figure=fig)


# --- 12. ancestral samplers land far from their twins and close to each other ----------------------------------


def judge_ancestral_far_from_twins(table: pd.DataFrame, *, different: float = DIFFERENT) -> tuple[str, str]:
    """Each ancestral sampler against its deterministic twin (far: >= ``different`` x seed-to-seed) and the two
    ancestral samplers against each other (closer than to their twins)."""
    twins = _select(table, metric="vs_twin").groupby("sampler")["value"].median() / _seed_scale(table)
    each_other = _ratio(table, "vs_other_ancestral")
    if twins.empty or not math.isfinite(each_other):
        return "inconclusive", "not measured"
    far = bool((twins >= different).all())
    closer = bool(each_other < twins.min())
    return _combine([far, closer]), (
        f"Distance to the deterministic twin / seed-to-seed: {', '.join(f'{k} {v:.2f}' for k, v in twins.items())} "
        f"(far: >= {different}); Euler a vs DPM2 a: {each_other:.2f} (closer to each other than to their twins: "
        f"{'yes' if closer else 'no'})."
    )


@_claim(
    "ancestral_far_from_twins",
    (
        "Ancestral samplers land much further away from the corresponding non-ancestral samplers, and closer to each "
        "other."
    ),
    "ru",
    judge=judge_ancestral_far_from_twins,
    original=(
        "The Ancestral samplers are deceptively much further away from the corresponding non-Ancestral samplers and "
        "closer to each other."
    ),
    method="embedded model: Euler a vs Euler, DPM2 a vs DPM2, Euler a vs DPM2 a, same seed, beside seed-to-seed",
)
def _ancestral_far_from_twins(lab: Lab) -> Evidence:
    n = lab.pick(16, 40)
    ea, e, da, d = (lab.run(s, n) for s in ("Euler a", "Euler", "DPM2 a", "DPM2"))
    rows = _pair_rows(ea, e, "vs_twin") + _pair_rows(da, d, "vs_twin") + _pair_rows(ea, da, "vs_other_ancestral")
    rows += _seed_rows(e, d)
    table = pd.DataFrame(rows)
    scale = _seed_scale(table)
    bars = {
        f"{k[0]} vs {k[1]}": v / scale
        for k, v in table[table["metric"] != "seed_to_seed"].groupby(["sampler", "against"])["value"].median().items()
    }
    fig = _bar_chart(
        bars, title="Distance / seed-to-seed distance", xlabel="ratio", lines={f"different ({DIFFERENT})": DIFFERENT}
    )
    return _evidence(judge_ancestral_far_from_twins, table, images=_images([ea, e, da, d], lab.seeds[0]), figure=fig)


# --- 13, 14. reruns and implementations ------------------------------------------------------------------------

ANCESTRAL = ("Euler a", "DPM2 a")
DETERMINISTIC = ("Euler", "DPM++ 2M")


def judge_ancestral_same_on_rerun(table: pd.DataFrame, *, margin: float = 0.8) -> tuple[str, str]:
    """Reruns bit-identical (ancestral and deterministic), and "more stable": an ancestral sampler's change under a
    tiny nudge of the initial noise below ``margin`` x a deterministic one's."""
    ident = _select(table, metric="rerun_identical")
    anc_same = bool(_select(ident, kind="ancestral")["value"].min() == 1) if len(ident) else None
    det_same = bool(_select(ident, kind="deterministic")["value"].min() == 1) if len(ident) else None
    nudge = _select(table, metric="perturbed_change").groupby("kind")["value"].median()
    if anc_same is None or nudge.size < 2:
        return "inconclusive", "not measured"
    more_stable = bool(nudge["ancestral"] < margin * nudge["deterministic"]) or (anc_same and not det_same)
    verdict = "refuted" if not anc_same else "supported" if more_stable else "mixed"
    return verdict, (
        f"Reruns bit-identical: ancestral {'yes' if anc_same else 'NO'}, deterministic {'yes' if det_same else 'NO'}. "
        f"A {PERTURBATION:g} nudge of the initial noise (a stand-in for the tiny differences non-deterministic GPU "
        f"kernels make) moves the final latent by {nudge['ancestral']:.3g} (ancestral) vs "
        f"{nudge['deterministic']:.3g} (deterministic); more stable needs < {margin} x."
    )


@_claim(
    "ancestral_same_on_rerun",
    "Ancestral (_a) samplers give more stable results, which do not differ when the generation is repeated.",
    "ru",
    judge=judge_ancestral_same_on_rerun,
    original=(
        "Методы выборки _ancestral/_a дают более стабильные результаты, которые не будут отличаться при повторных "
        "итерациях генерации."
    ),
    method="embedded model: each sampler rerun (bit-identical?) and with its initial noise nudged by 0.1 %",
)
def _ancestral_same_on_rerun(lab: Lab) -> Evidence:
    n = lab.pick(6, 20)
    rows, images = [], {}
    for kind, samplers in (("ancestral", ANCESTRAL), ("deterministic", DETERMINISTIC)):
        for s in lab.pick(samplers[:1], samplers):
            base, again = lab.run(s, n), lab.run(s, n, fresh=True)
            g = torch.Generator().manual_seed(lab.seeds[0] + 1)
            delta = PERTURBATION * base.sigma_max * torch.randn(base.latents.shape, generator=g)
            nudged = lab.run(s, n, fresh=True, latents=delta)
            common = {"ground": "embedded model", "sampler": s, "steps": n, "kind": kind}
            for seed in lab.seeds:
                same = torch.equal(base.latent(seed), again.latent(seed)) and torch.equal(
                    base.image(seed), again.image(seed)
                )
                rows += [{**common, "seed": seed, "metric": "rerun_identical", "value": float(same)},
                         {**common, "seed": seed, "metric": "perturbed_change",
                          "value": _distance(base.latent(seed), nudged.latent(seed))}]  # fmt: skip
            images |= {f"{s}": base.image(lab.seeds[0]), f"{s} rerun": again.image(lab.seeds[0]),
                       f"{s} nudged": nudged.image(lab.seeds[0])}  # fmt: skip
    table = pd.DataFrame(rows)
    fig = _bar_chart(
        table[table["metric"] == "perturbed_change"].groupby("sampler")["value"].median().to_dict(),
        title=f"Change of the final latent after a {PERTURBATION:g} nudge of the initial noise", xlabel="latent RMSE",
    )  # fmt: skip
    return _evidence(judge_ancestral_same_on_rerun, table, images=images, figure=fig)


def judge_ancestral_implementation(table: pd.DataFrame, *, same: float = SAME) -> tuple[str, str]:
    """With a different noise stream for the later steps (A1111's ENSD), do ancestral images change (> ``same`` x
    seed-to-seed) while deterministic ones stay bit-identical?"""
    anc = _ratio(table, "ensd_change", kind="ancestral")
    det = _select(table, metric="ensd_identical", kind="deterministic")["value"]
    if not math.isfinite(anc) or det.empty:
        return "inconclusive", "not measured"
    det_same = bool(det.min() == 1)
    return _combine([anc > same, det_same]), (
        f"Another stream for the per-step noise (ENSD {ENSD}) moves ancestral images by {anc:.2f} x the seed-to-seed "
        f"distance (changed: > {same}); deterministic images bit-identical: {'yes' if det_same else 'no'}."
    )


@_claim(
    "ancestral_not_reproducible_across_implementations",
    "If the same seed and parameters do not reproduce an image, an ancestral sampler may be why: different "
    "implementations add different random noise.",
    "es",
    judge=judge_ancestral_implementation,
    original="diferentes implementaciones o versiones del sampler casi seguro que generan diferentes resultados",
    method=(
        "embedded model: the same seed with another per-step noise stream (A1111's ENSD), ancestral vs deterministic"
    ),
)
def _ancestral_implementation(lab: Lab) -> Evidence:
    n = lab.pick(6, 20)
    rows, images = [], {}
    for kind, samplers in (("ancestral", ANCESTRAL), ("deterministic", DETERMINISTIC)):
        for s in lab.pick(samplers[:1], samplers):
            base, other = lab.run(s, n), lab.run(s, n, ensd=ENSD)
            rows += [{**r, "kind": kind} for r in _pair_rows(other, base, "ensd_change") + _seed_rows(base)]
            for seed in lab.seeds:
                same = float(torch.equal(base.latent(seed), other.latent(seed)))
                rows.append({"ground": "embedded model", "sampler": s, "steps": n, "seed": seed, "kind": kind,
                             "metric": "ensd_identical", "value": same})  # fmt: skip
            images |= {f"{s}": base.image(lab.seeds[0]), f"{s}, ENSD {ENSD}": other.image(lab.seeds[0])}
    table = pd.DataFrame(rows)
    scale = _seed_scale(table)
    bars = (_select(table, metric="ensd_change").groupby("sampler")["value"].median() / scale).to_dict()
    fig = _bar_chart(bars, title="Change with another per-step noise stream (ENSD)", xlabel="distance / seed-to-seed",
                     lines={f"changed ({SAME})": SAME})  # fmt: skip
    return _evidence(judge_ancestral_implementation, table, images=images, figure=fig)


# --- 15. Euler a is good at few steps --------------------------------------------------------------------------


def judge_euler_a_low_steps(table: pd.DataFrame, *, sigmas: float = MMD_SIGMAS, low_max: int = 10) -> tuple[str, str]:
    """At each step count <= ``low_max``: Euler a's MMD to the true distribution against Euler's (ties within
    ``sigmas`` noise-floor sd)."""
    flags, parts = [], []
    for n in sorted(table["steps"].unique()):
        if n > low_max:
            continue
        a, e = (
            _select(table, sampler="Euler a", steps=n, metric="mmd"),
            _select(table, sampler="Euler", steps=n, metric="mmd"),
        )
        if a.empty or e.empty:
            continue
        margin = sigmas * float(a["floor_std"].iloc[0]) * math.sqrt(2)
        diff = float(e["value"].iloc[0] - a["value"].iloc[0])
        flags.append(True if diff > margin else False if diff < -margin else None)
        parts.append(f"{n} steps: Euler a {a['value'].iloc[0]:.3f} vs Euler {e['value'].iloc[0]:.3f} (+-{margin:.3f})")
    verdict = _combine(flags)
    return verdict, f"MMD to the true distribution (lower is better; a tie within the margin): {'; '.join(parts)}."


@_claim(
    "euler_a_good_at_few_steps",
    (
        "Euler a generates good results in few steps (5-10): the extra noise helps get something cohesive at low step "
        "counts."
    ),
    "ru",
    judge=judge_euler_a_low_steps,
    original=(
        "k_euler_ancestral — генерировать высококачественные результаты за небольшое количество шагов (5-10 шагов)"
    ),
    method="ground truth: the distribution of results (MMD to the true one) of Euler a against Euler at few steps",
)
def _euler_a_low_steps(lab: Lab) -> Evidence:
    table = _select(lab.gt_distribution(), sampler=["Euler a", "Euler", "DPM++ 2M"])
    fig = _line_chart(
        _select(table, metric="mmd"), title="MMD to the true distribution", ylabel="MMD",
        hlines={"noise floor": float(table["floor_mean"].iloc[0])},
    )  # fmt: skip
    return _evidence(judge_euler_a_low_steps, table, figure=fig)


# --- 16, 17, 18. LMS needs ~100 steps; PLMS bad at few steps; DDIM needs many steps ----------------------------


def judge_lms_needs_100(table: pd.DataFrame, *, tol: float = TOL, needs: int = 60) -> tuple[str, str]:
    """LMS's steps to reach ``tol`` per schedule: >= ``needs`` and more than Euler's confirms it."""
    flags, parts = [], []
    for schedule in sorted(table["schedule"].unique()):
        lms, euler = (_reach(_curve(table, s, schedule=schedule), tol) for s in ("LMS", "Euler"))
        if math.isnan(lms) or (math.isinf(lms) and table["steps"].max() < needs):
            continue  # not reached within the steps measured, and those stop short of `needs`
        flags.append(lms >= needs)
        parts.append(f"{schedule}: LMS {_fmt_steps(lms)}, Euler {_fmt_steps(euler)}")
    return _combine(
        flags
    ), f"Steps to reach the true solution within {tol}: {'; '.join(parts)} (needs ~100: >= {needs})."


@_claim(
    "lms_needs_100_steps",
    "LMS is not worth it: it needs around 100 steps to give something decent (psychedelic images at few steps).",
    "es",
    judge=judge_lms_needs_100,
    original=(
        "es un sampler que no merece la pena porque a pesar de ser rápido necesita en torno a 100 pasos para ofrecer "
        "algo decente"
    ),
    method="ground truth: steps LMS needs to reach the true solution within TOL, against Euler",
)
def _lms_needs_100(lab: Lab) -> Evidence:
    table = lab.gt_errors(("LMS", "Euler"), _gt_steps(lab), schedules=("karras", "uniform"))
    return _evidence(judge_lms_needs_100, table, figure=_gt_chart(table, "True error: LMS against Euler"))


def judge_plms_low_steps(
    table: pd.DataFrame, *, tol: float = TOL, needs: int = 50, low_max: int = 10
) -> tuple[str, str]:
    """PLMS against DDIM (the method it improves) at few steps, on each ground, and PLMS's steps to ``tol``."""
    worse = []
    for ground, g in table.groupby("ground"):
        metric = "median_error" if ground == "ground truth" else "reference_distance"
        for n in sorted(g["steps"].unique()):
            if n <= low_max:
                p, d = (
                    _curve(g, "PLMS", metric=metric).get(n, math.nan),
                    _curve(g, "DDIM", metric=metric).get(n, math.nan),
                )
                if math.isfinite(p) and math.isfinite(d):
                    worse.append(p > d)
    reach = _reach(_curve(_select(table, ground="ground truth"), "PLMS"), tol)
    slow = reach >= needs if not math.isnan(reach) else None
    low = _combine(worse)
    verdict = _combine([low == "supported" if low in ("supported", "refuted") else None, slow])
    return verdict, (
        f"At <= {low_max} steps PLMS is worse than DDIM in {sum(worse)} of {len(worse)} cells; it reaches the true "
        f"solution within {tol} at {_fmt_steps(reach)} steps (needs 50-100: >= {needs})."
    )


@_claim(
    "plms_bad_at_few_steps",
    "(P)LMS suffer from ugly artifacts at low step counts: PLMS cannot clean the noise in few steps, it needs 50-100.",
    "ru,es",
    judge=judge_plms_low_steps,
    original="En el caso de PLMS no podemos utilizar pocos pasos porque no es capaz de limpiar el ruido",
    method="ground truth and embedded model: PLMS against DDIM at few steps; PLMS's steps to reach TOL",
)
def _plms_low_steps(lab: Lab) -> Evidence:
    gt = lab.gt_errors(("PLMS", "DDIM"), _gt_steps(lab))
    ref = lab.reference()
    runs = [lab.run(s, n) for s in ("PLMS", "DDIM") for n in lab.pick((6,), (5, 8, 10))]
    rows = [r for run in runs for r in _pair_rows(run, ref, "reference_distance")]
    table = pd.concat([gt, pd.DataFrame(rows)], ignore_index=True)
    return _evidence(
        judge_plms_low_steps,
        table,
        images=_images(runs + [ref], lab.seeds[0]),
        figure=_gt_chart(gt, "True error: PLMS and DDIM"),
    )


def judge_ddim_many_steps(
    table: pd.DataFrame, *, tol: float = TOL, many: float = 2.0, same: float = 1.2
) -> tuple[str, str]:
    """DDIM's steps to ``tol`` over DPM++ 2M's: >= ``many`` confirms "needs many steps", <= ``same`` refutes it."""
    ddim, dpm = _reach(_curve(table, "DDIM"), tol), _reach(_curve(table, "DPM++ 2M"), tol)
    if math.isnan(ddim) or math.isnan(dpm) or math.isinf(dpm):
        return "inconclusive", "DPM++ 2M did not reach the tolerance"
    ratio = ddim / dpm if math.isfinite(ddim) else float(table["steps"].max()) / dpm
    verdict = {True: "refuted", False: "supported", None: "mixed"}[_band(ratio, same, many)]
    return verdict, (
        f"Steps to reach the true solution within {tol}: DDIM {_fmt_steps(ddim)}, DPM++ 2M {_fmt_steps(dpm)}: "
        f"{'>= ' if math.isinf(ddim) else ''}{ratio:.1f} x (many: >= {many}; as few: <= {same}). Both cost 1 NFE "
        "per step."
    )


@_claim(
    "ddim_needs_many_steps",
    "DDIM is fast per step but inefficient: it needs many steps (100+) for a good result; better alternatives exist.",
    "ru,es",
    judge=judge_ddim_many_steps,
    original=(
        "DDIM ... It's quite fast per step, but relatively inefficient in that it takes a bunch of steps to get a "
        "good result."
    ),
    method="ground truth: DDIM's steps to reach the true solution within TOL against DPM++ 2M's",
)
def _ddim_many_steps(lab: Lab) -> Evidence:
    table = lab.gt_errors(("DDIM", "DPM++ 2M"), _gt_steps(lab))
    return _evidence(judge_ddim_many_steps, table, figure=_gt_chart(table, "True error: DDIM and DPM++ 2M"))


# --- 19, 20. UniPC at very few steps; DPM++ 2M Karras at 20-30 steps -------------------------------------------


def judge_unipc_low_steps(table: pd.DataFrame, *, low_max: int = 10) -> tuple[str, str]:
    """In each (ground, steps <= ``low_max``) cell: is UniPC's error the lowest of UniPC, DPM++ 2M, DPM++ 2S?"""
    flags, parts = [], []
    for ground, g in table.groupby("ground"):
        metric = "median_error" if ground == "ground truth" else "reference_distance"
        rivals = [s for s in ("UniPC", "DPM++ 2M", "DPM++ 2S a") if s in set(g["sampler"])]
        for n in sorted(g["steps"].unique()):
            best = _lowest(g, rivals, n, metric=metric) if n <= low_max else None
            if best is not None:
                flags.append(best == "UniPC")
                parts.append(f"{ground} {n}: {best}")
    return _combine(
        flags
    ), f"Lowest error at equal steps ({'; '.join(parts)}); DPM++ 2S (DPM++ 2S a at eta 0) costs 2 NFE per step."


@_claim(
    "unipc_best_at_few_steps",
    "UniPC gives the best results at very low step counts (quality images in 5-10 steps), better than DPM++ 2S / 2M.",
    "es",
    judge=judge_unipc_low_steps,
    original="con la particularidad de ofrecer mejores resultados cuando el número de pasos es muy bajo",
    method="ground truth and embedded model: UniPC, DPM++ 2M and DPM++ 2S at 4-10 steps",
)
def _unipc_low_steps(lab: Lab) -> Evidence:
    steps = lab.pick((4, 8), (4, 5, 6, 8, 10))
    gt = lab.gt_errors(("UniPC", "DPM++ 2M", "DPM++ 2S a"), steps)
    ref = lab.reference()
    runs = [lab.run(s, n) for s in ("UniPC", "DPM++ 2M") for n in lab.pick((6,), (5, 8, 10))]
    rows = [r for run in runs for r in _pair_rows(run, ref, "reference_distance")]
    table = pd.concat([gt, pd.DataFrame(rows)], ignore_index=True)
    return _evidence(
        judge_unipc_low_steps,
        table,
        images=_images(runs + [ref], lab.seeds[0]),
        figure=_gt_chart(gt, "True error at few steps"),
    )


def judge_dpmpp_2m_karras_20_30(
    table: pd.DataFrame, *, converged: float = CONVERGED_RMSE, tol: float = TOL
) -> tuple[str, str]:
    """At 20-30 steps: embedded model within ``converged`` latent RMSE of the reference (every seed), ground truth
    within ``tol``."""
    flags, parts = [], []
    for n, g in _select(table, ground="embedded model", metric="reference_distance").groupby("steps"):
        flags.append(bool(g["value"].max() <= converged))
        parts.append(f"model {n} steps: worst seed {g['value'].max():.3f}")
    for n, v in _curve(_select(table, ground="ground truth"), "DPM++ 2M").items():
        flags.append(v <= tol)
        parts.append(f"ground truth {n} steps: {v:.4f}")
    return _combine(
        flags
    ), f"{'; '.join(parts)} (converged: latent RMSE <= {converged} to the reference, true error <= {tol})."


@_claim(
    "dpmpp_2m_karras_good_at_20_30",
    "DPM++ 2M Karras gives very good results at 20-30 steps.",
    "es",
    judge=judge_dpmpp_2m_karras_20_30,
    original="Con estos samplers mencionados obtendrás buenos resultados en 20-30 pasos",
    method="embedded model: distance to the reference at 20 and 30 steps; ground truth error at 20 and 30",
)
def _dpmpp_2m_karras(lab: Lab) -> Evidence:
    ref = lab.reference()
    runs = [lab.run("DPM++ 2M", n, schedule="Karras") for n in lab.pick((20,), (20, 30))]
    rows = [r for run in runs for r in _pair_rows(run, ref, "reference_distance")]
    gt = lab.gt_errors(("DPM++ 2M",), (20, 30))
    table = pd.concat([gt, pd.DataFrame(rows)], ignore_index=True)
    dist = _select(table, metric="reference_distance")
    fig = _bar_chart(
        {f"seed {s:.0f}, {n:.0f} steps": v for s, n, v in dist[["seed", "steps", "value"]].to_numpy()},
        title=f"DPM++ 2M Karras against {ref.sampler} {ref.schedule} at {ref.steps} steps", xlabel="latent RMSE",
        lines={f"converged ({CONVERGED_RMSE})": CONVERGED_RMSE},
    )  # fmt: skip
    return _evidence(judge_dpmpp_2m_karras_20_30, table, images=_images(runs + [ref], lab.seeds[0]), figure=fig)


# --- 21, 22, 23. what samplers cost: DPM++ 2M vs 2S, LMS, SDE --------------------------------------------------


def _cost_table(lab: Lab, samplers: Sequence[str], steps: Sequence[int]) -> pd.DataFrame:
    return lab.gt_errors(samplers, steps)


def judge_dpmpp_2m_vs_2s(table: pd.DataFrame, *, better: float = BETTER) -> tuple[str, str]:
    """Is DPM++ 2M slower per step than DPM++ 2S, and more precise at equal steps (``better`` lower error in
    most step counts)?"""
    m, s = _nfe_per_step(table, "DPM++ 2M"), _nfe_per_step(table, "DPM++ 2S a")
    c_m, c_s = _curve(table, "DPM++ 2M"), _curve(table, "DPM++ 2S a")
    common = sorted(set(c_m.index) & set(c_s.index))
    wins = sum(c_m[n] < (1 - better) * c_s[n] for n in common)
    precise = wins > len(common) / 2 if common else None
    return _combine([m > s, precise]), (
        f"Model evaluations per step: DPM++ 2M {m:.2f}, DPM++ 2S {s:.2f}. DPM++ 2M's true error is lower at "
        f"{wins} of {len(common)} step counts (more precise: most of them, by > {better:.0%})."
    )


@_claim(
    "dpmpp_2m_multistep_slower",
    "In DPM++ 2M the M (multistep) means several calculations per step: more precise but slower than 2S (single step).",
    "es",
    judge=judge_dpmpp_2m_vs_2s,
    original=(
        "la letra M proviene de Multi step, un enfoque en el cual se realizan múltiples cálculos en cada paso ... a "
        "costa de tardar más"
    ),
    method="ground truth: model evaluations per step and true error of DPM++ 2M and DPM++ 2S (2S a at eta 0)",
)
def _dpmpp_2m_vs_2s(lab: Lab) -> Evidence:
    table = _cost_table(lab, ("DPM++ 2M", "DPM++ 2S a"), _gt_steps(lab))
    return _evidence(judge_dpmpp_2m_vs_2s, table, figure=_gt_chart(table, "True error: DPM++ 2M and 2S"))


def judge_lms_precise_slower(table: pd.DataFrame, *, better: float = BETTER) -> tuple[str, str]:
    """LMS against Euler: lower true error at most step counts, and more model evaluations per step?"""
    gt = _select(table, ground="ground truth")
    c_l, c_e = _curve(gt, "LMS"), _curve(gt, "Euler")
    common = sorted(set(c_l.index) & set(c_e.index))
    wins = sum(c_l[n] < (1 - better) * c_e[n] for n in common)
    ratio = _nfe_per_step(gt, "LMS") / _nfe_per_step(gt, "Euler")
    secs = _select(table, ground="embedded model", metric="seconds").groupby("sampler")["value"].median()
    wall = (
        f"; seconds per image on this machine: LMS {secs['LMS']:.3g}, Euler {secs['Euler']:.3g}"
        if {"LMS", "Euler"} <= set(secs.index)
        else ""
    )
    return _combine([wins > len(common) / 2 if common else None, ratio > 1.05]), (
        f"LMS's true error is lower than Euler's at {wins} of {len(common)} step counts; model evaluations per step "
        f"LMS / Euler = {ratio:.2f} (slower: > 1.05){wall}."
    )


@_claim(
    "lms_precise_but_slower",
    "LMS uses the previous steps to be more precise, at the cost of more computation (slower).",
    "es",
    judge=judge_lms_precise_slower,
    original="Ofrece una mejor precisión a cambio de mayores requerimientos de computación (más lento).",
    method="ground truth: true error and model evaluations per step of LMS and Euler; embedded model: seconds",
)
def _lms_precise_slower(lab: Lab) -> Evidence:
    gt = _cost_table(lab, ("LMS", "Euler"), _gt_steps(lab))
    n = lab.pick(8, 20)
    table = pd.concat([gt, pd.DataFrame(_cost_rows(lab.run("LMS", n), lab.run("Euler", n)))], ignore_index=True)
    return _evidence(judge_lms_precise_slower, table, figure=_gt_chart(gt, "True error: LMS and Euler"))


SDE = ("DPM++ SDE", "DPM++ 2M SDE", "DPM++ 3M SDE")


def judge_sde_slower(table: pd.DataFrame) -> tuple[str, str]:
    """Each SDE sampler's model evaluations per step against DPM++ 2M's."""
    base = _nfe_per_step(table, "DPM++ 2M")
    per = {s: _nfe_per_step(table, s) for s in SDE if s in set(table["sampler"])}
    flags = [v > 1.05 * base for v in per.values()]
    return _combine(flags), (
        f"Model evaluations per step: {', '.join(f'{k} {v:.2f}' for k, v in per.items())}; DPM++ 2M {base:.2f} "
        "(slower: > 5 % more). The Brownian-tree noise adds some time per step on top, small beside a real UNet."
    )


@_claim(
    "sde_slower",
    "SDE samplers model the noise more precisely, giving higher quality at the cost of being slower.",
    "es",
    judge=judge_sde_slower,
    original="lo que en principio generaría imágenes de mayor calidad a cambio de ser más lentos",
    method="ground truth (NFE counted on the denoiser): model evaluations per step of the SDE samplers vs DPM++ 2M",
)
def _sde_slower(lab: Lab) -> Evidence:
    from sdlab.groundtruth import run_sampler

    rows = []
    noise = torch.zeros(1, lab.dist.dim, dtype=torch.float64)
    for s in (*SDE, "DPM++ 2M"):
        for n in (10, 20):
            r = run_sampler(s, lab.dist, noise, steps=n, stop_at_sigma_min=False)
            rows.append(
                {
                    "ground": "ground truth",
                    "sampler": s,
                    "steps": n,
                    "nfe": r.nfe,
                    "metric": "nfe",
                    "value": float(r.nfe),
                }
            )
    table = pd.DataFrame(rows)
    fig = _bar_chart(
        {s: _nfe_per_step(table, s) for s in table["sampler"].unique()},
        title="Model evaluations per step",
        xlabel="NFE / step",
    )
    return _evidence(judge_sde_slower, table, figure=fig)


# --- 24. more steps are better for non-ancestral samplers ------------------------------------------------------

MONOTONE_SAMPLERS = ("Euler", "Heun", "DPM2", "LMS", "DPM++ 2M", "DDIM", "PLMS", "UniPC")


def judge_more_steps_better(table: pd.DataFrame, *, slack: float = BETTER) -> tuple[str, str]:
    """Per (sampler, schedule): does the true error never rise by more than ``slack`` from one step count to the
    next? All: supported; at least half: mixed; fewer: refuted."""
    bad = []
    cells = 0
    for (sampler, schedule), g in table.groupby(["sampler", "schedule"]):
        curve = _curve(g, sampler)
        cells += 1
        rises = [
            (a, b) for a, b in zip(curve.index, curve.index[1:], strict=False) if curve[b] > (1 + slack) * curve[a]
        ]
        if rises:
            bad.append(f"{sampler} ({schedule}) {rises[0][0]} -> {rises[0][1]}")
    if not cells:
        return "inconclusive", "not measured"
    share = 1 - len(bad) / cells
    verdict = "supported" if not bad else "mixed" if share >= 0.5 else "refuted"
    return verdict, (
        f"The true error never rises by > {slack:.0%} with more steps in {cells - len(bad)} of {cells} "
        f"(sampler, schedule) curves; it does for: {', '.join(bad) or 'none'}."
    )


@_claim(
    "more_steps_better",
    "With non-ancestral samplers, more steps means better results.",
    "ru",
    judge=judge_more_steps_better,
    original=(
        "Non-ancestral models have the advantage of being easier to reason about; generally, more steps == more good "
        "there."
    ),
    method="ground truth: is every deterministic sampler's true error non-increasing in steps (Karras and uniform)?",
)
def _more_steps_better(lab: Lab) -> Evidence:
    table = lab.gt_errors(MONOTONE_SAMPLERS, _gt_steps(lab), schedules=("karras", "uniform"))
    return _evidence(judge_more_steps_better, table, figure=_gt_chart(table, "True error against steps"))


# --- 25. DPM fast: useless at few steps, a different result ----------------------------------------------------


def judge_dpm_fast_different(
    table: pd.DataFrame, *, different: float = DIFFERENT, worse: float = 2.0
) -> tuple[str, str]:
    """DPM fast (A1111: eta 1) against DPM++ 2M at the most steps (different: >= ``different`` x seed-to-seed), and
    its distance to the reference at the fewest steps against Euler's (useless: >= ``worse`` x)."""
    top, low = int(table["steps"].max()), int(table["steps"].min())
    diff = _ratio(table, "vs_dpmpp_2m", sampler="DPM fast", steps=top)
    diff0 = _ratio(table, "vs_dpmpp_2m", sampler="DPM fast eta 0", steps=top)
    fast = _select(table, metric="reference_distance", sampler="DPM fast", steps=low)["value"].median()
    euler = _select(table, metric="reference_distance", sampler="Euler", steps=low)["value"].median()
    useless = fast / euler if euler > 0 else math.nan
    flags = [diff >= different if math.isfinite(diff) else None, useless >= worse if math.isfinite(useless) else None]
    return _combine(flags), (
        f"At {top} steps DPM fast lands {diff:.2f} x the seed-to-seed distance from DPM++ 2M (different: >= "
        f"{different}); at eta 0 {_fmt(diff0, 2)} x: A1111's eta 1 makes the difference. At {low} steps its "
        f"distance to the reference is {useless:.1f} x Euler's (useless: >= {worse} x)."
    )


@_claim(
    "dpm_fast_different",
    "DPM fast is useless at few steps, and gives a different result from the rest of the samplers.",
    "es",
    judge=judge_dpm_fast_different,
    original="utilizando pocos pasos es inservible. Curiosamente ofrece un resultado distinto al resto de samplers",
    method=(
        "embedded model: DPM fast (A1111's eta 1, and eta 0) against DPM++ 2M, and against the reference at few steps"
    ),
)
def _dpm_fast_different(lab: Lab) -> Evidence:
    low, high = lab.pick((8, 16), (10, 40))
    ref, twin = lab.reference(), lab.run("DPM++ 2M", high)
    fast_low, fast, fast0 = lab.run("DPM fast", low), lab.run("DPM fast", high), lab.run("DPM fast", high, eta=0.0)
    rows = _pair_rows(fast, twin, "vs_dpmpp_2m") + [
        {**r, "sampler": "DPM fast eta 0"} for r in _pair_rows(fast0, twin, "vs_dpmpp_2m")
    ]
    rows += _pair_rows(fast_low, ref, "reference_distance") + _pair_rows(
        lab.run("Euler", low), ref, "reference_distance"
    )
    rows += _seed_rows(twin)
    table = pd.DataFrame(rows)
    images = _images(
        [fast_low, fast, fast0, twin],
        lab.seeds[0],
        lambda r: f"{r.sampler} {r.steps}" + (" eta 0" if r is fast0 else ""),
    )
    scale = _seed_scale(table)
    fig = _bar_chart(
        {"DPM fast vs DPM++ 2M": _ratio(table, "vs_dpmpp_2m", sampler="DPM fast"),
         "DPM fast (eta 0) vs DPM++ 2M": _ratio(table, "vs_dpmpp_2m", sampler="DPM fast eta 0")},
        title=f"At {high} steps: distance / seed-to-seed ({_fmt(scale)})", xlabel="ratio",
        lines={f"different ({DIFFERENT})": DIFFERENT, f"same ({SAME})": SAME},
    )  # fmt: skip
    return _evidence(judge_dpm_fast_different, table, images=images, figure=fig)


# --- 26. Euler previews, Heun finishes -------------------------------------------------------------------------


def judge_euler_previews_heun(
    table: pd.DataFrame, *, same: float = SAME, different: float = DIFFERENT
) -> tuple[str, str]:
    """Euler at few steps against Heun at more (a preview: <= ``same`` x seed-to-seed), and Heun closer to the
    reference than Euler at the same steps (more detail)."""
    preview = _ratio(table, "euler_vs_heun")
    heun = _select(table, metric="reference_distance", sampler="Heun")["value"].median()
    euler = _select(table, metric="reference_distance", sampler="Euler")["value"].median()
    flags = [_band(preview, same, different), heun < euler]
    return _combine(flags), (
        f"Euler at few steps vs Heun at more: {preview:.2f} x the seed-to-seed distance (a preview: <= {same}; a "
        f"different image: >= {different}); at equal steps Heun is {heun:.3f} from the reference, Euler {euler:.3f}."
    )


@_claim(
    "euler_previews_heun",
    "Euler and Heun make a nice pair: Euler to iterate fast until you like the image, then Heun for better detail.",
    "ru",
    judge=judge_euler_previews_heun,
    original=(
        "Euler for fast iteration over a seed+prompt+config until you get something you like, then run Heun to get a "
        "better level of details."
    ),
    method="embedded model: Euler at few steps against Heun at more steps; each against the reference",
)
def _euler_previews_heun(lab: Lab) -> Evidence:
    low, high = lab.pick((8, 16), (10, 30))
    ref, euler, heun, euler_high = lab.reference(), lab.run("Euler", low), lab.run("Heun", high), lab.run("Euler", high)
    rows = _pair_rows(euler, heun, "euler_vs_heun") + _seed_rows(heun)
    rows += _pair_rows(heun, ref, "reference_distance") + _pair_rows(euler_high, ref, "reference_distance")
    table = pd.DataFrame(rows)
    scale = _seed_scale(table)
    fig = _bar_chart(
        {f"Euler {low} vs Heun {high} / seed-to-seed": _ratio(table, "euler_vs_heun"),
         f"Heun {high} to the reference / seed-to-seed": _ratio(table, "reference_distance", sampler="Heun"),
         f"Euler {high} to the reference / seed-to-seed": _ratio(table, "reference_distance", sampler="Euler")},
        title=f"Distances / seed-to-seed distance ({_fmt(scale)})", xlabel="ratio", lines={f"same ({SAME})": SAME},
    )  # fmt: skip
    return _evidence(
        judge_euler_previews_heun, table, images=_images([euler, heun, euler_high, ref], lab.seeds[0]), figure=fig
    )


# --- 27. stated orders -----------------------------------------------------------------------------------------

STATED_ORDERS = {"Euler": 1.0, "Heun": 2.0, "DPM2": 2.0, "DPM++ 2M": 2.0}


def judge_stated_orders(table: pd.DataFrame, *, slack: float = ORDER_SLACK) -> tuple[str, str]:
    """Fitted order of accuracy (:func:`sdlab.groundtruth.fit_order`, median error, schedules stopping at
    sigma_min) within ``slack`` of the order the articles state."""
    from sdlab.groundtruth import fit_order

    fits = fit_order(table, metric="median_error", steps_range=None, x=("steps",))
    flags, parts = [], []
    for _, f in fits.iterrows():
        stated = STATED_ORDERS.get(f["sampler"])
        if stated is None or not math.isfinite(f["order"]):
            continue
        flags.append(abs(f["order"] - stated) <= slack)
        parts.append(f"{f['sampler']} {f['order']:.2f} (stated {stated:g})")
    return _combine(flags), f"Fitted orders: {'; '.join(parts)} (confirmed within +-{slack})."


@_claim(
    "stated_orders",
    "Heun is a second-order improvement of Euler; the 2 in DPM2 and DPM++ 2M means second order.",
    "es",
    judge=judge_stated_orders,
    original=(
        "Heun realiza dos tareas en cada paso, convirtiéndolo en un sampler de segundo orden ... el número 2 "
        "significa que son de segundo orden"
    ),
    method="ground truth: order of accuracy fitted to the true error against steps (Karras, stopping at sigma_min)",
)
def _stated_orders(lab: Lab) -> Evidence:
    table = lab.gt_errors(STATED_ORDERS, lab.pick((8, 16, 32), (16, 24, 32, 48, 64)), stop_at_sigma_min=True)
    return _evidence(judge_stated_orders, table, figure=_gt_chart(table, "True error against steps (to sigma_min)"))


# ===============================================================================================================
# running, showing, saving
# ===============================================================================================================


def run_claims(
    ids: Sequence[str] | None = None,
    *,
    smoke: bool = True,
    model: Any = None,
    seeds: Sequence[int] | None = None,
    progress: bool = True,
    lab: Lab | None = None,
) -> tuple[pd.DataFrame, dict[str, Evidence]]:
    """Run the claims (``ids``, default all) on one :class:`Lab` and return the verdict table (claim, source,
    verdict, summary, seconds) and the evidence by claim id. ``smoke=True`` keeps every experiment small."""
    claims = [get_claim(i) for i in (list(CLAIMS) if ids is None else ids)]
    lab = lab if lab is not None else Lab(smoke=smoke, model=model, seeds=seeds)
    if progress:
        from tqdm.auto import tqdm

        claims = tqdm(claims, desc="claims", unit="claim")
    evidence = {c.id: c.run(lab) for c in claims}
    return verdict_table(evidence), evidence


def check(claim_id: str, lab: Lab, *, out_dir: str | Path | None = None, show: bool = True) -> Evidence:
    """Run one claim on ``lab``, show it (claim, verdict, summary, chart, images) and save it under ``out_dir``."""
    claim = get_claim(claim_id)
    evidence = claim.run(lab)
    if out_dir is not None:
        save_evidence(evidence, out_dir, claim_id)
    if show:
        show_evidence(evidence, claim=claim)
    return evidence


def verdict_table(evidence: Mapping[str, Evidence]) -> pd.DataFrame:
    """One row per claim: id, the claim, its article, the computed verdict, the evidence summary, seconds."""
    rows = []
    for claim_id, ev in evidence.items():
        claim = get_claim(claim_id)
        rows.append(
            {"claim": claim_id, "text": claim.text, "source": claim.source, "verdict": ev.verdict,
             "summary": ev.summary, "seconds": round(ev.seconds, 2)}
        )  # fmt: skip
    return pd.DataFrame(rows, columns=["claim", "text", "source", "verdict", "summary", "seconds"])


def verdict_markdown(table: pd.DataFrame) -> str:
    """The verdict table as a Markdown table (claim, article, verdict, evidence)."""
    lines = ["| claim | article | verdict | evidence |", "|---|---|---|---|"]
    for row in table.itertuples(index=False):
        cells = [f"{row.text} (`{row.claim}`)", row.source, f"**{row.verdict}**", row.summary]
        lines.append("| " + " | ".join(str(c).replace("|", "/").replace("\n", " ") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def verdict_figure(table: pd.DataFrame) -> Any:
    """Every claim on one line with its verdict in colour (a matplotlib figure)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.0, 0.3 * len(table) + 0.8), layout="constrained")
    ax = fig.add_subplot()
    for k, row in enumerate(table.itertuples(index=False)):
        ax.text(0.0, k, row.verdict, color="white", fontsize=8, fontweight="bold", va="center",
                bbox={"facecolor": _COLOURS[row.verdict], "edgecolor": "none", "pad": 2})  # fmt: skip
        text = row.text if len(row.text) <= 110 else row.text[:107] + "..."
        ax.text(0.14, k, f"{text} [{row.source}]", fontsize=8, va="center")
    ax.set(xlim=(0, 1), ylim=(len(table) - 0.5, -0.5), title="Sampler folklore: computed verdicts")
    ax.axis("off")
    return fig


def save_verdicts(table: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Write the verdict table as ``verdicts.csv``, ``verdicts.md`` and ``verdicts.png``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "verdicts.csv", index=False)
    (out / "verdicts.md").write_text(verdict_markdown(table), encoding="utf-8")
    verdict_figure(table).savefig(out / "verdicts.png", dpi=110)
    return [out / "verdicts.csv", out / "verdicts.md", out / "verdicts.png"]


_COLOURS = {"supported": "#2ca02c", "refuted": "#d62728", "mixed": "#ff7f0e", "inconclusive": "#7f7f7f"}


def show_evidence(evidence: Evidence, *, claim: Claim | None = None, return_html: bool = False) -> str | None:
    """Show a verdict in Jupyter: the claim, a coloured verdict, the summary, the chart and the images side by side.
    ``return_html=True`` returns the HTML instead (for tests and pages)."""
    from html import escape

    from sdlab.display import show_images

    colour = _COLOURS[evidence.verdict]
    head = ""
    if claim is not None:
        head = f"<p><i>“{escape(claim.text)}”</i> — {escape(claim.source_title)}</p>"
    badge = (
        f"<span style='background:{colour};color:white;padding:2px 8px;border-radius:4px;font-weight:bold'>"
        f"{evidence.verdict.upper()}</span>"
    )
    parts = [head, f"<p>{badge} {escape(evidence.summary)}</p>"]
    row = []
    if evidence.figure is not None:
        data = base64.b64encode(evidence.figure_png()).decode("ascii")
        row.append(f"<img src='data:image/png;base64,{data}' style='max-width:620px'>")
    if evidence.images:
        row.append(show_images(evidence.images, return_html=True, columns=4))
    parts.append(
        "<div style='display:flex;gap:16px;align-items:flex-start;flex-wrap:wrap'>"
        + "".join(f"<div>{r}</div>" for r in row)
        + "</div>"
    )
    html = "".join(parts)
    if return_html:
        return html
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
    except ImportError:
        return None
    if get_ipython() is not None:
        display(HTML(html))
    return None


def save_evidence(evidence: Evidence, out_dir: str | Path, name: str) -> list[Path]:
    """Write ``<name>.png`` (the chart), ``<name>_images.png`` (an image strip) and ``<name>.csv`` (the table)."""
    from sdlab.display import image_strip, save_image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if evidence.figure is not None:
        (out / f"{name}.png").write_bytes(evidence.figure_png())
        written.append(out / f"{name}.png")
    if evidence.images:
        save_image(image_strip(evidence.images, scale=2), out / f"{name}_images.png")
        written.append(out / f"{name}_images.png")
    evidence.table.to_csv(out / f"{name}.csv", index=False)
    written.append(out / f"{name}.csv")
    return written
