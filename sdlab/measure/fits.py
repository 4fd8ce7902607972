"""Conclusions drawn from distances to a reference: the steps a sampler needs to converge (:func:`steps_to_converge`)
and the power law of distance vs steps (:func:`fit_power_law`), per sampler and schedule.

Both read a long table's ``comparison == "reference"`` rows at the final step (``step == -1``): a convergence
experiment's table or a sweep's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from sdlab.errors import SdlabError
from sdlab.measure.common import SIMILARITIES

__all__ = ["DEFAULT_THRESHOLD", "steps_to_converge", "fit_power_law"]


# "converged" thresholds (sdlab's choice; change them per study): latent RMSE 0.05 is 5 % of the embedded model's
# final-latent spread (std ~1.0); 35 dB PSNR is an RMS pixel error of 1.8 % (~4.5 of 255 levels); SSIM 0.98 and
# LPIPS 0.02 are near-identical images side by side.
# FLIP 0.16 and MS-SSIM 0.95 are what LPIPS 0.02 corresponds to on sdlab's images
# (benchmarks/results/perceptual_agreement.md)
DEFAULT_THRESHOLD = {"latent_rmse": 0.05, "psnr": 35.0, "ssim": 0.98, "lpips": 0.02, "flip": 0.16, "ms_ssim": 0.95}


def _reference_rows(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    rows = table[(table["comparison"] == "reference") & (table["step"] == -1) & (table["metric"] == metric)]
    if "against_key" in rows.columns:
        rows = rows[rows["spec_key"] != rows["against_key"]]  # the reference measured against itself
    return rows


def steps_to_converge(
    table: pd.DataFrame,
    threshold: float | Mapping[str, float] | None = None,
    *,
    by: Sequence[str] = ("sampler", "schedule_resolved"),
) -> pd.DataFrame:
    """The first step count from which the distance to the reference stays within ``threshold``, per group.

    ``threshold``: one number (latent RMSE) or ``{metric: value}`` (default :data:`DEFAULT_THRESHOLD`); distances
    must stay <= it, similarities (ssim, psnr) >= it. Per seed first, then the worst seed: ``steps_to_converge``
    is NaN when some seed is not converged at the largest step count measured.
    """
    if threshold is None:
        threshold = DEFAULT_THRESHOLD
    elif not isinstance(threshold, Mapping):
        threshold = {"latent_rmse": float(threshold)}
    out = []
    for metric, limit in threshold.items():
        rows = _reference_rows(table, metric)
        for group, frame in rows.groupby(list(by), dropna=False):
            per_seed = []
            for _, seed_rows in frame.groupby("seed"):
                curve = seed_rows.groupby("steps")["value"].mean().sort_index()
                ok = curve >= limit if metric in SIMILARITIES else curve <= limit
                bad = [s for s, good in ok.items() if not good]
                later = [s for s in curve.index if not bad or s > max(bad)]
                per_seed.append(min(later) if later else math.nan)
            worst = math.nan if any(math.isnan(s) for s in per_seed) else max(per_seed)
            out.append(
                {
                    **dict(zip(by, group, strict=True)),
                    "metric": metric,
                    "threshold": float(limit),
                    "steps_to_converge": worst,
                    "seeds_converged": int(sum(not math.isnan(s) for s in per_seed)),
                    "seeds": len(per_seed),
                }
            )
    return pd.DataFrame(out)


def fit_power_law(
    table: pd.DataFrame,
    *,
    metric: str = "latent_rmse",
    method: str = "loglog",
    confidence: float = 0.95,
    by: Sequence[str] = ("sampler", "schedule_resolved"),
) -> pd.DataFrame:
    """Exponent b of distance-to-reference vs steps, ``d ~ a * steps**b``, with a ``confidence`` interval.

    ``method="loglog"``: least squares of log d on log steps with one intercept per image (prompt x seed), so b
    comes from how each image's distance falls, not from the spread between images (the reference's own run and
    zero distances left out); the CI is Student's t on the slope's standard error. ``method="gaessler"``:
    ``d = a * (steps**b - steps_ref**b)`` (J. Gaessler's stable-diffusion-insights, for a reference that is the
    same sampler at ``steps_ref``), fitted by nonlinear least squares. Published SD 1.x values (Gaessler, mean
    red pixel value vs a 1000-step reference): Euler -0.82, Heun -1.19, DPM2 -1.64, LMS -1.33.
    """
    if method not in ("loglog", "gaessler"):
        raise SdlabError("unknown fit method", method=method, hint="use 'loglog' or 'gaessler'")
    if metric in SIMILARITIES:
        raise SdlabError("fit a distance, not a similarity", metric=metric, hint="latent_rmse or lpips")
    rows = _reference_rows(table, metric)
    rows = rows[np.isfinite(rows["value"]) & (rows["value"] > 0)]
    out = []
    for group, frame in rows.groupby(list(by), dropna=False):
        x, y = frame["steps"].to_numpy(float), frame["value"].to_numpy(float)
        ids = [c for c in ("prompt", "seed") if c in frame.columns]
        image = frame[ids].astype(str).agg("|".join, axis=1).to_numpy() if ids else np.zeros(len(frame), dtype=int)
        fit = {"a": math.nan, "b": math.nan, "b_low": math.nan, "b_high": math.nan, "r2": math.nan}
        if len(np.unique(x)) >= 2:
            fit = _fit_loglog(x, y, image, confidence)
            if method == "gaessler":
                fit = _fit_gaessler(x, y, frame, fit, confidence)
        out.append(
            {
                **dict(zip(by, group, strict=True)),
                "metric": metric,
                "method": method,
                **fit,
                "n": len(x),
                "steps_min": int(x.min()),
                "steps_max": int(x.max()),
            }
        )
    return pd.DataFrame(out)


def _fit_loglog(x: np.ndarray, y: np.ndarray, image: np.ndarray, confidence: float) -> dict[str, float]:
    """Slope of log y on log x with one intercept per image (prompt x seed): each image's own offset is not noise.

    ``a`` is the geometric mean of the images' prefactors; ``r2`` the share of within-image variance explained.
    """
    from scipy import stats

    lx, ly = np.log(x), np.log(y)
    dx, dy = lx.copy(), ly.copy()
    for g in np.unique(image):
        m = image == g
        dx[m] -= lx[m].mean()
        dy[m] -= ly[m].mean()
    sxx = float((dx**2).sum())
    b = float((dx * dy).sum()) / sxx
    log_a = float(np.mean([ly[image == g].mean() - b * lx[image == g].mean() for g in np.unique(image)]))
    resid = dy - b * dx
    ssr, ss_tot = float((resid**2).sum()), float((dy**2).sum())
    r2 = 1 - ssr / ss_tot if ss_tot > 0 else math.nan
    dof = len(x) - len(np.unique(image)) - 1
    half = float(stats.t.ppf(0.5 + confidence / 2, dof)) * math.sqrt(ssr / dof / sxx) if dof > 0 else math.nan
    return {"a": math.exp(log_a), "b": b, "b_low": b - half, "b_high": b + half, "r2": r2}


def _fit_gaessler(
    x: np.ndarray, y: np.ndarray, frame: pd.DataFrame, start: dict[str, float], confidence: float
) -> dict[str, float]:
    from scipy import optimize, stats

    if "reference_steps" not in frame or frame["reference_steps"].nunique() != 1:
        raise SdlabError("the gaessler fit needs one reference step count per group (a convergence table)")
    x_ref = float(frame["reference_steps"].iloc[0])

    def model(x: np.ndarray, a: float, b: float) -> np.ndarray:
        return a * (x**b - x_ref**b)

    try:
        (a, b), cov = optimize.curve_fit(model, x, y, p0=(start["a"], start["b"]), maxfev=10_000)
    except (RuntimeError, ValueError, optimize.OptimizeWarning):
        return {**start, "b": math.nan, "b_low": math.nan, "b_high": math.nan}
    n = len(x)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 2)) * math.sqrt(cov[1, 1]) if n > 2 else math.nan
    resid = y - model(x, a, b)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1 - float((resid**2).sum()) / ss_tot if ss_tot > 0 else math.nan
    return {"a": float(a), "b": float(b), "b_low": b - half, "b_high": b + half, "r2": r2}
