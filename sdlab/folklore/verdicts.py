"""Verdicts and what they are computed from: the four verdicts, the thresholds every judge reads, the evidence an
experiment returns, and the small pieces of judgement the judges share (select rows, a curve per sampler, the step
count a curve reaches a tolerance at, combining flags into a verdict).

Change a threshold and the verdicts follow: every judge takes its thresholds as keyword arguments whose defaults
are the constants below.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from sdlab.errors import SdlabError, closest
from sdlab.viz.mpl import figure_png

__all__ = [
    "VERDICTS",
    "SAME",
    "DIFFERENT",
    "TOL",
    "BETTER",
    "DEGRADE",
    "TWICE",
    "HALF",
    "NOT_HALF",
    "SETTLES",
    "ORDER_SLACK",
    "MMD_SIGMAS",
    "CONVERGED_RMSE",
    "PERTURBATION",
    "ENSD",
    "Evidence",
    "make_evidence",
    "combine",
    "band",
    "band_verdict",
    "select",
    "curve",
    "reach",
    "seed_scale",
    "ratio",
    "nfe_per_step",
    "lowest",
    "lower_at",
    "error_metric",
    "fmt",
    "fmt_steps",
]

VERDICTS = ("supported", "refuted", "mixed", "inconclusive")

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


# ---------------------------------------------------------------------------------------------------------------
# evidence


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
        """The chart as PNG bytes (rendered once, 100 dpi), or None without a chart."""
        if self._png is None and self.figure is not None:
            self._png = figure_png(self.figure, dpi=100)
        return self._png

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise SdlabError(
                f"unknown verdict {self.verdict!r}", verdict=self.verdict, hint=closest(self.verdict, VERDICTS)
            )


def make_evidence(
    judge: Callable[[pd.DataFrame], tuple[str, str]], rows: list[dict] | pd.DataFrame, **kw: Any
) -> Evidence:
    """Evidence whose verdict and summary ``judge`` computes from ``rows`` (a table or a list of row dicts);
    ``kw``: images, figure."""
    table = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    verdict, summary = judge(table)
    return Evidence(verdict, summary, table, **kw)


# ---------------------------------------------------------------------------------------------------------------
# small pieces of judgement


def combine(flags: Iterable[bool | None]) -> str:
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


def band(value: float, low: float, high: float) -> bool | None:
    """True below ``low``, False above ``high``, None between (or NaN)."""
    if not math.isfinite(value) and not math.isinf(value):
        return None
    return True if value <= low else False if value >= high else None


def band_verdict(value: float, low: float, high: float) -> str:
    """Supported at or below ``low``, refuted at or above ``high``, mixed between (or NaN): :func:`band` as a
    verdict."""
    return {True: "supported", False: "refuted", None: "mixed"}[band(value, low, high)]


def select(table: pd.DataFrame, **where: Any) -> pd.DataFrame:
    """Rows whose columns equal the given values (a list or tuple value: any of them)."""
    rows = table
    for column, value in where.items():
        if column not in rows.columns:
            return rows.iloc[0:0]
        rows = rows[rows[column].isin(value) if isinstance(value, (list, tuple, set)) else rows[column] == value]
    return rows


def curve(
    table: pd.DataFrame, sampler: str, *, x: str = "steps", metric: str = "median_error", **where: Any
) -> pd.Series:
    """Mean value per ``x`` for one sampler (sorted by ``x``)."""
    rows = select(table, sampler=sampler, metric=metric, **where)
    return rows.groupby(x)["value"].mean().sort_index()


def reach(values: pd.Series, tol: float = TOL) -> float:
    """The (log-log interpolated) step count from which the curve ``values`` stays at or below ``tol``; inf if it
    never gets there within the range measured, NaN for an empty curve."""
    if values.empty:
        return math.nan
    above = [i for i, v in enumerate(values.to_numpy()) if v > tol]
    if not above:
        return float(values.index[0])
    i = above[-1]
    if i == len(values) - 1:
        return math.inf
    (x0, y0), (x1, y1) = (float(values.index[i]), values.iloc[i]), (float(values.index[i + 1]), values.iloc[i + 1])
    if y1 <= 0:
        return x1
    t = (math.log(tol) - math.log(y0)) / (math.log(y1) - math.log(y0))
    return math.exp(math.log(x0) + t * (math.log(x1) - math.log(x0)))


def seed_scale(table: pd.DataFrame) -> float:
    """The median seed-to-seed distance in a table (NaN without seed-to-seed rows)."""
    rows = table[table["metric"] == "seed_to_seed"]
    return float(rows["value"].median()) if len(rows) else math.nan


def ratio(table: pd.DataFrame, metric: str, **where: Any) -> float:
    """Median of ``metric`` (rows matching ``where``) over the median seed-to-seed distance."""
    rows = select(table, metric=metric, **where)
    return float(rows["value"].median()) / seed_scale(table) if len(rows) else math.nan


def nfe_per_step(table: pd.DataFrame, sampler: str) -> float:
    """Model evaluations per step at the largest step count measured."""
    rows = select(table, sampler=sampler).dropna(subset=["nfe"])
    if rows.empty:
        return math.nan
    last = rows[rows["steps"] == rows["steps"].max()].iloc[0]
    return float(last["nfe"]) / float(last["steps"])


def lowest(table: pd.DataFrame, samplers: Sequence[str], steps: int, **where: Any) -> str | None:
    """The sampler with the lowest error at ``steps`` (None when one of them is missing)."""
    values = {s: curve(table, s, **where).get(steps, math.nan) for s in samplers}
    if any(not math.isfinite(v) for v in values.values()):
        return None
    return min(values, key=values.get)


def lower_at(a: pd.Series, b: pd.Series, better: float = BETTER) -> tuple[int, int]:
    """At how many of their common step counts curve ``a`` is ``better`` lower than curve ``b``, of how many."""
    common = sorted(set(a.index) & set(b.index))
    return sum(a[n] < (1 - better) * b[n] for n in common), len(common)


def error_metric(ground: str) -> str:
    """The error a ground measures: the true error on the ground truth, the distance to the reference run on a
    model."""
    return "median_error" if ground == "ground truth" else "reference_distance"


def fmt_steps(v: float) -> str:
    """A step count for a summary: "never ..." for inf, "n/a" for NaN."""
    return "never (within the steps measured)" if math.isinf(v) else "n/a" if math.isnan(v) else f"{v:.0f}"


def fmt(v: float, digits: int = 3) -> str:
    """A number for a summary (``digits`` significant digits), "n/a" when not finite."""
    return "n/a" if not math.isfinite(v) else f"{v:.{digits}g}"
