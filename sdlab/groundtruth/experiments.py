"""Experiments against the true solution: each sampler's real error, its order of accuracy, and what the
stochastic samplers converge to. Every function returns a tidy long-format DataFrame (one row per sampler x
schedule x steps x metric, the run's settings as columns).

Samplers run by name through :func:`sdlab.sample` with A1111's semantics: sigmas from :func:`sdlab.get_sigmas`,
DDIM / PLMS / UniPC on their own timesteps (``sdlab.generation.schedule_for(name, "Automatic", ...)``, starting
from A1111's ``noise * sqrt(1 + sigma_0^2)`` and ending at a training sigma, not 0), DPM fast / DPM adaptive
between the model's sigma_min and sigma_max with ``n = steps``. Stochastic samplers run at ``eta = 0`` for the
ODE experiments.

>>> gmm = toy_mixture()
>>> df = error_vs_steps(["Euler", "DPM++ 2M"], steps=(8, 16, 32), dist=gmm, n=16)
>>> fit_order(df, steps_range=(8, 32))[["sampler", "x", "order", "r2"]]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from sdlab.errors import SdlabError
from sdlab.generation import schedule_for
from sdlab.groundtruth.ode import TrueSolution, true_solution
from sdlab.noise.brownian import BrownianTreeNoiseSampler
from sdlab.samplers import resolve_sampler, sample, sampler_options
from sdlab.schedules import get_sigmas

__all__ = [
    "A1111_DETERMINISTIC",
    "A1111_ETA0",
    "A1111_STOCHASTIC",
    "SamplerRun",
    "claimed_order",
    "ignores_schedule",
    "run_sampler",
    "error_vs_steps",
    "final_step_error",
    "fit_order",
    "mmd",
    "median_bandwidth",
    "distribution_vs_steps",
]

A1111_DETERMINISTIC = ("Euler", "Heun", "DPM2", "LMS", "DPM++ 2M", "DPM fast", "DPM adaptive", "DDIM", "PLMS", "UniPC")
"""A1111's deterministic samplers (DPM fast / DPM adaptive at eta 0; A1111's own default for them is eta 1)."""

A1111_ETA0 = ("Euler a", "DPM2 a", "DPM++ 2S a", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 3M SDE")
"""A1111's stochastic samplers that have an eta: at eta 0 each is an ODE solver of its own."""

A1111_STOCHASTIC = ("Euler a", "DPM2 a", "DPM++ 2S a", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 3M SDE")
"""Ancestral (fresh noise each step) and SDE (Brownian-tree noise) samplers, for the distribution experiments."""

_OWN_RANGE = ("dpm_fast", "dpm_adaptive")  # A1111 runs these between the model's sigma_min and sigma_max


@contextmanager
def _default_dtype(dtype: torch.dtype | None) -> Iterator[None]:
    """k-diffusion's DPM-Solver keeps its log-SNR times in the default dtype; float64 removes that rounding."""
    old = torch.get_default_dtype()
    if dtype is not None:
        torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


@dataclass
class SamplerRun:
    """One sampler run on an exact denoiser: where it started and ended, and what it cost.

    ``x_start`` at ``sigma_start``; ``x_end`` at ``sigma_end`` (the true solution compares there).
    ``path`` / ``path_sigmas``: the state at the start of every step plus the result (with ``record=True``).
    """

    sampler: str
    sampler_key: str
    schedule: str
    steps: int
    n_steps: int
    nfe: int
    sigmas: Tensor
    sigma_start: float
    sigma_end: float
    start: str  # "sigma" (x = noise * sigma_0), "vp" (A1111 timestep samplers), or "exact" (x0 + sigma_0 noise)
    x_start: Tensor
    x_end: Tensor
    options: dict[str, Any] = field(default_factory=dict)
    path: Tensor | None = None
    path_sigmas: Tensor | None = None


def _resolve_schedule(resolved: Any, schedule: str) -> str:
    if resolved.schedule:
        return resolved.schedule
    return resolved.info.default_schedule if schedule.lower() == "automatic" else schedule


def _plan(
    resolved: Any, schedule: str, steps: int, dist: Any, stop_at_sigma_min: bool
) -> tuple[Tensor, str, str, float, float]:
    """(sigmas, schedule label, start mode, sigma_start, sigma_end) for one run with A1111's semantics."""
    info = resolved.info
    f64 = torch.float64
    if resolved.own_timesteps:  # A1111's own fixed timesteps, whatever the schedule
        sigmas, label = schedule_for(resolved, "Automatic", steps, dist)
        sigmas = sigmas.to(f64)
        return sigmas, label, "vp", float(sigmas[0]), float(sigmas[-1])
    if resolved.uses_model_sigma_range:  # n = steps, between the model's own range
        sigmas = get_sigmas("karras", steps, dist, dtype=f64)  # only its length matters
        label = "log-SNR uniform (model range)" if info.key == "dpm_fast" else "adaptive (model range)"
        return sigmas, label, "sigma", float(dist.sigma_max), float(dist.sigma_min)
    name = _resolve_schedule(resolved, schedule)
    if stop_at_sigma_min:  # the A1111 (steps + 1)-step schedule without its final jump to 0: `steps` steps
        sigmas = get_sigmas(name, steps, dist, dtype=f64)
        if float(sigmas[-1]) == 0:
            sigmas = get_sigmas(name, steps + 1, dist, dtype=f64)[:-1]
    else:
        sigmas, name = schedule_for(resolved, name, steps, dist, dtype=f64)
    if info.key in _OWN_RANGE:
        return sigmas, name, "sigma", float(sigmas[0]), float(sigmas[sigmas > 0].min())
    return sigmas, name, "sigma", float(sigmas[0]), float(sigmas[-1])


def _noise_sampler(resolved: Any, x: Tensor, sigmas: Tensor, eta: float, seed: int) -> Callable[..., Tensor]:
    """Zero noise at eta 0; else one stream for the batch, the same draws at any step count for the same seed
    (fresh-noise samplers: draw k is the same vector; SDE samplers: one Brownian tree indexed by sigma)."""
    if not eta:
        return lambda sigma, sigma_next: torch.zeros_like(x)
    if resolved.info.brownian:
        return BrownianTreeNoiseSampler(x, sigmas[sigmas > 0].min(), sigmas.max(), seed=int(seed))
    generator = torch.Generator().manual_seed(int(seed))
    return lambda sigma, sigma_next: torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)


def _options(resolved: Any, fn_options: Any, options: dict[str, Any], eta: float) -> dict[str, Any]:
    """The sampler's keyword options: its front end's, the caller's, and ``eta`` where the sampler takes one;
    refuses eta 0 for a sampler that always injects noise."""
    opts = {**resolved.options, **options}
    if "eta" in fn_options:
        opts["eta"] = float(eta)
    elif resolved.info.stochastic == "yes" and not eta:
        raise SdlabError(
            f"sampler {resolved.label!r} always injects noise: it has no deterministic (eta 0) form",
            sampler=resolved.label,
            hint="leave it out of the ODE experiments, or study it with distribution_vs_steps",
        )
    return opts


def run_sampler(
    sampler: str,
    dist: Any,
    noise: Tensor,
    *,
    schedule: str = "karras",
    steps: int = 20,
    stop_at_sigma_min: bool = True,
    eta: float = 0.0,
    seed: int = 0,
    x0: Tensor | None = None,
    record: bool = False,
    float64_times: bool = True,
    **options: Any,
) -> SamplerRun:
    """Run ``sampler`` (an A1111 or ComfyUI name) on the exact denoiser ``dist`` from unit ``noise`` (B, *dims).

    The start is ``noise * sigma_0`` (A1111's k-diffusion samplers), ``noise * sqrt(1 + sigma_0^2)`` (A1111's
    DDIM / PLMS / UniPC), or with ``x0`` given the exact marginal ``x0 + sigma_0 * noise``. ``eta`` goes to
    every sampler that takes one (0: the sampler's ODE form; samplers that always inject noise, such as
    Restart or LCM, raise). ``stop_at_sigma_min``: end at the schedule's sigma_min with no final jump to 0.
    ``float64_times``: run k-diffusion's DPM-Solver log-SNR times in float64 (k-diffusion keeps them in
    float32, which alone leaves a ~1e-7 relative error floor).
    """
    resolved = resolve_sampler(sampler)
    info = resolved.info
    fn_options = sampler_options(info.fn)
    opts = _options(resolved, fn_options, options, eta)
    sigmas, label, start, sigma_start, sigma_end = _plan(resolved, schedule, steps, dist, stop_at_sigma_min)
    if info.key == "dpm_fast":
        opts.setdefault("n", steps)
    noise = noise.to(torch.float64)
    if x0 is not None:
        x, start = x0.to(noise).reshape(noise.shape) + sigma_start * noise, "exact"
    else:
        x = noise * (math.sqrt(1 + sigma_start**2) if start == "vp" else sigma_start)
    path: list[Tensor] = []
    path_sigmas: list[float] = []

    def record_step(step: dict[str, Any]) -> None:
        path.append(step["x"].detach().clone())
        path_sigmas.append(float(step["sigma"]))

    dist.nfe = 0
    with _default_dtype(torch.float64 if float64_times else None):
        x_end = sample(
            dist,
            x,
            sigmas,
            resolved,
            noise_sampler=_noise_sampler(resolved, x, sigmas, eta, seed),
            callback=record_step if record else None,
            **opts,
        )
    nfe = dist.nfe
    if record:
        path.append(x_end.detach().clone())
        path_sigmas.append(sigma_end)
    return SamplerRun(
        sampler=resolved.label,
        sampler_key=info.key,
        schedule=label,
        steps=int(steps),
        n_steps=len(sigmas) - 1 if info.key != "dpm_fast" else int(opts["n"]),
        nfe=nfe,
        sigmas=sigmas,
        sigma_start=sigma_start,
        sigma_end=sigma_end,
        start=start,
        x_start=x,
        x_end=x_end,
        options={k: v for k, v in opts.items() if k in fn_options},
        path=torch.stack(path) if record else None,
        path_sigmas=torch.tensor(path_sigmas, dtype=torch.float64) if record else None,
    )


class _Truths:
    """True solutions from one noise tensor, cached by (start mode, sigma_start, sigma_end)."""

    def __init__(self, dist: Any, noise: Tensor, rtol: float) -> None:
        self.dist, self.noise, self.rtol = dist, noise, rtol
        self.cache: dict[tuple[str, float, float], TrueSolution] = {}

    def __call__(self, run: SamplerRun, sigma_end: float | None = None) -> TrueSolution:
        end = run.sigma_end if sigma_end is None else sigma_end
        key = (run.start, run.sigma_start, end)
        if key not in self.cache:
            self.cache[key] = true_solution(self.dist, run.x_start, run.sigma_start, end, rtol=self.rtol)
        return self.cache[key]


_METRICS = ("rms_error", "median_error", "max_error")


def _errors(x: Tensor, truth: Tensor) -> tuple[float, float, float]:
    """RMS, median and max over samples of |x - truth|, |.| the Euclidean norm of each sample's error."""
    per_sample = (x - truth).reshape(len(x), -1).norm(dim=1)
    return float(per_sample.pow(2).mean().sqrt()), float(per_sample.median()), float(per_sample.max())


def _progress(items: list[Any], progress: bool, desc: str) -> Any:
    if not progress:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc)


def _unit_noise(dist: Any, n: int, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(int(seed))
    return torch.randn(n, dist.dim, generator=g, dtype=torch.float64)


def claimed_order(sampler: str) -> str:
    """The sampler's order of accuracy as commonly stated (its catalogue ``order_range``), as the tables' column
    ``claimed_order`` shows it: ``"2"``, ``"2-3"``, ``"?"`` when unknown."""
    order = resolve_sampler(sampler).info.order_range
    if order is None:
        return "?"
    low, high = order
    return str(low) if low == high else f"{low}-{high}"


def ignores_schedule(sampler: str) -> bool:
    """Whether the sampler runs on sigmas of its own whatever the schedule: a name that carries its schedule
    ("DPM++ 2M Karras"), A1111's DDIM / PLMS / UniPC on their own timesteps, DPM fast / adaptive on the model's
    sigma range. Experiments run such a sampler once per step count, on the first schedule asked for."""
    r = resolve_sampler(sampler)
    return bool(r.schedule) or r.own_timesteps or r.uses_model_sigma_range


def _base_row(run: SamplerRun, dist: Any, n: int, seed: int) -> dict[str, Any]:
    return {
        "sampler": run.sampler,
        "sampler_key": run.sampler_key,
        "claimed_order": claimed_order(run.sampler),
        "schedule": run.schedule,
        "steps": run.steps,
        "n_steps": run.n_steps,
        "nfe": run.nfe,
        "sigma_start": run.sigma_start,
        "sigma_end": run.sigma_end,
        "start": run.start,
        "dist": getattr(dist, "name", type(dist).__name__),
        "dim": dist.dim,
        "n": n,
        "seed": seed,
    }


def _runs(samplers: Sequence[str], schedules: Sequence[str], steps: Sequence[int]) -> list[tuple[str, str, int]]:
    """(sampler, schedule, steps) to run; samplers that ignore the schedule run once per step count."""
    jobs = []
    for name in samplers:
        for schedule in schedules[:1] if ignores_schedule(name) else schedules:
            jobs += [(name, schedule, int(s)) for s in steps]
    return jobs


def error_vs_steps(
    samplers: Sequence[str] = A1111_DETERMINISTIC,
    schedules: Sequence[str] = ("karras",),
    steps: Sequence[int] = (4, 6, 8, 12, 16, 24, 32, 48, 64),
    *,
    dist: Any,
    n: int = 64,
    stop_at_sigma_min: bool = True,
    seed: int = 0,
    rtol: float = 1e-12,
    progress: bool = False,
    **options: Any,
) -> pd.DataFrame:
    """Each sampler's true error against the exact PF-ODE solution, per schedule and step count.

    The same ``n`` noise samples (from ``seed``) start every run; the error is compared at the run's own end
    sigma (sigma_min with ``stop_at_sigma_min``; 0 for full A1111 schedules; a training sigma for DDIM / PLMS /
    UniPC). Metrics: ``rms_error`` (RMS over samples of the per-sample Euclidean error), ``median_error`` and
    ``max_error``. RMS and max are dominated by the few samples that start near a boundary between modes, where
    the flow stretches errors most; the median shows the asymptotic order from fewer steps.
    Columns include ``nfe`` (counted on the denoiser) and ``truth_error`` (the true solution's own error
    estimate: a measured error below ~10x it means nothing). Stochastic samplers run at eta 0.
    """
    noise = _unit_noise(dist, n, seed)
    truths = _Truths(dist, noise, rtol)
    rows = []
    for name, schedule, k in _progress(_runs(samplers, schedules, steps), progress, "error_vs_steps"):
        run = run_sampler(name, dist, noise, schedule=schedule, steps=k, stop_at_sigma_min=stop_at_sigma_min, **options)
        truth = truths(run)
        base = {**_base_row(run, dist, n, seed), "stop_at_sigma_min": stop_at_sigma_min}
        base |= {"truth_error": truth.error_estimate, "truth_nfe": truth.nfe}
        for metric, value in zip(_METRICS, _errors(run.x_end, truth.x_end), strict=True):
            rows.append({**base, "metric": metric, "value": value})
    return pd.DataFrame(rows)


def final_step_error(
    samplers: Sequence[str] = A1111_DETERMINISTIC,
    schedules: Sequence[str] = ("karras",),
    steps: Sequence[int] = (8, 16, 32, 64),
    *,
    dist: Any,
    n: int = 64,
    seed: int = 0,
    rtol: float = 1e-12,
    statistic: str = "rms",
    progress: bool = False,
) -> pd.DataFrame:
    """The full A1111 schedules, final jump to 0 included, with that last step's error on its own.

    ``statistic``: "rms" or "median" over samples of the per-sample Euclidean error.

    Metrics per run: ``error_before_final``: the state at ``sigmas[-2]`` (sigma_min) against the truth there;
    ``error_at_end``: the result against the truth at the run's end (0 for most; DPM fast / adaptive stop at
    sigma_min, DDIM / PLMS / UniPC at a training sigma); ``error_vs_zero``: the result as A1111 decodes it
    (``x / sqrt(1 + sigma^2)`` for the timestep samplers, ``x`` otherwise) against the true x(0);
    ``denoise_gap``: |D(x_true(sigma_min), sigma_min) - x_true(0)|, the error a plain final denoise (the Euler
    family's last step) makes even from the exact state: a floor no number of steps removes.
    """
    if statistic not in ("rms", "median"):
        raise SdlabError("statistic must be 'rms' or 'median'", statistic=statistic)
    pick = 0 if statistic == "rms" else 1
    noise = _unit_noise(dist, n, seed)
    truths = _Truths(dist, noise, rtol)
    rows = []
    for name, schedule, k in _progress(_runs(samplers, schedules, steps), progress, "final_step_error"):
        run = run_sampler(name, dist, noise, schedule=schedule, steps=k, stop_at_sigma_min=False, record=True)
        base = {**_base_row(run, dist, n, seed), "stop_at_sigma_min": False}
        end = truths(run)
        zero = truths(run, 0.0)
        metrics = {"error_at_end": _errors(run.x_end, end.x_end)[pick]}
        decoded = run.x_end / math.sqrt(1 + run.sigma_end**2) if run.start == "vp" else run.x_end
        metrics["error_vs_zero"] = _errors(decoded, zero.x_end)[pick]
        if run.sigma_end == 0 and run.path is not None and len(run.path) >= 2:
            sigma_before = float(run.path_sigmas[-2])
            before = truths(run, sigma_before)
            metrics["error_before_final"] = _errors(run.path[-2], before.x_end)[pick]
            s = torch.full((n,), sigma_before, dtype=torch.float64)
            nfe = dist.nfe
            metrics["denoise_gap"] = _errors(dist(before.x_end, s), zero.x_end)[pick]
            dist.nfe = nfe
            base["sigma_before_final"] = sigma_before
        truth_error = max(end.error_estimate, zero.error_estimate)
        for metric, value in metrics.items():
            rows.append({**base, "truth_error": truth_error, "statistic": statistic, "metric": metric, "value": value})
    return pd.DataFrame(rows)


def _fit_line(x: np.ndarray, y: np.ndarray, confidence: float) -> dict[str, float]:
    """Least squares y = a + b x with a t-distribution confidence interval on b, and R^2."""
    from scipy import stats

    n = len(x)
    xm, ym = x.mean(), y.mean()
    sxx = float(((x - xm) ** 2).sum())
    b = float(((x - xm) * (y - ym)).sum() / sxx)
    a = float(ym - b * xm)
    resid = y - (a + b * x)
    sse, sst = float((resid**2).sum()), float(((y - ym) ** 2).sum())
    r2 = 1 - sse / sst if sst > 0 else float("nan")
    if n > 2:
        se = math.sqrt(sse / (n - 2) / sxx)
        half = float(stats.t.ppf((1 + confidence) / 2, n - 2)) * se
    else:
        half = float("nan")
    return {"slope": b, "intercept": a, "half_width": half, "r2": r2}


def fit_order(
    df: pd.DataFrame,
    *,
    metric: str = "rms_error",
    steps_range: tuple[float, float] | None = (16, 64),
    x: Sequence[str] = ("steps", "nfe"),
    by: Sequence[str] | None = None,
    confidence: float = 0.95,
    floor_factor: float = 10.0,
) -> pd.DataFrame:
    """Empirical order of accuracy: minus the least-squares slope of log error against log steps (and log NFE).

    One row per group (``by``: default every setting column present among sampler, schedule, dist,
    stop_at_sigma_min) and per ``x`` column, with the ``confidence`` interval (t-distribution on the
    regression slope), the number of points, R^2 and the fitted range. Points whose error is below
    ``floor_factor`` x the true solution's error estimate (column ``truth_error``) are left out
    (``n_dropped``): there the "truth" no longer resolves the error. A group whose x does not vary (DPM
    adaptive ignores the step count) gets NaN and a note.
    """
    if not 0 < confidence < 1:
        raise SdlabError("confidence must lie in (0, 1)", confidence=confidence, hint="e.g. 0.95")
    data = df[df["metric"] == metric] if "metric" in df else df
    if steps_range is not None:
        data = data[(data["steps"] >= steps_range[0]) & (data["steps"] <= steps_range[1])]
    if by is None:
        by = [c for c in ("sampler", "schedule", "dist", "stop_at_sigma_min") if c in data]
    rows = []
    for keys, group in data.groupby(list(by), sort=False, dropna=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        ok = group["value"] > 0
        if "truth_error" in group:
            ok &= group["value"] > floor_factor * group["truth_error"]
        kept = group[ok]
        for col in x:
            if col not in group:
                continue
            row: dict[str, Any] = dict(zip(by, keys, strict=True))
            row |= {"x": col, "n_points": len(kept), "n_dropped": int((~ok).sum())}
            if "claimed_order" in group:
                row["claimed_order"] = group["claimed_order"].iloc[0]
            xs, ys = np.log(kept[col].to_numpy(float)), np.log(kept["value"].to_numpy(float))
            note = ""
            if len(kept) < 2:
                note = "fewer than 2 points above the truth's error floor"
            elif np.ptp(xs) == 0:
                note = f"{col} does not vary: an order is meaningless"
            elif np.ptp(ys) == 0 and "nfe" in group and group["nfe"].nunique() == 1:
                note = "the same result at every step count (the sampler ignores steps)"
            if note:
                row |= {"order": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "r2": float("nan")}
            else:
                fit = _fit_line(xs, ys, confidence)
                order = -fit["slope"]
                row |= {"order": order, "ci_low": order - fit["half_width"], "ci_high": order + fit["half_width"]}
                row |= {"r2": fit["r2"], "intercept": fit["intercept"]}
            if len(kept):
                row |= {"x_min": float(kept[col].min()), "x_max": float(kept[col].max())}
            row["note"] = note
            rows.append(row)
    return pd.DataFrame(rows)


def median_bandwidth(reference: Tensor) -> float:
    """The median heuristic: the median pairwise Euclidean distance within ``reference`` (at most 1000 points)."""
    ref = reference.reshape(len(reference), -1)[:1000].to(torch.float64)
    d = torch.cdist(ref, ref)
    return float(d[torch.triu(torch.ones_like(d, dtype=torch.bool), diagonal=1)].median())


def mmd(x: Tensor, y: Tensor, *, bandwidth: float | None = None) -> float:
    """Maximum mean discrepancy with the RBF kernel exp(-|a - b|^2 / (2 h^2)): sqrt of the biased (V) MMD^2.

    ``bandwidth`` h defaults to the median heuristic on ``y`` (the reference set). The biased estimate is
    exactly 0 for a set against itself and never negative; its positive bias (~1/n) is what the noise floor
    of two independent true sets measures.
    """
    x, y = x.reshape(len(x), -1).to(torch.float64), y.reshape(len(y), -1).to(torch.float64)
    if x.shape[1] != y.shape[1]:
        raise SdlabError("both sets need the same dimension", x=tuple(x.shape), y=tuple(y.shape))
    h = median_bandwidth(y) if bandwidth is None else float(bandwidth)
    if not h > 0:
        raise SdlabError("bandwidth must be > 0", bandwidth=h, hint="the reference set may hold one point only")

    def k(a: Tensor, b: Tensor) -> float:
        return float(torch.exp(-torch.cdist(a, b).pow(2) / (2 * h * h)).mean())

    return math.sqrt(max(k(x, x) + k(y, y) - 2 * k(x, y), 0.0))


def distribution_vs_steps(
    samplers: Sequence[str] = A1111_STOCHASTIC,
    steps: Sequence[int] = (4, 8, 16, 32, 64),
    *,
    dist: Any,
    n: int = 2000,
    eta: float = 1.0,
    schedule: str = "karras",
    stop_at_sigma_min: bool = True,
    repeats: int = 10,
    compare: Sequence[str] = ("plus_one", "double"),
    seed: int = 0,
    progress: bool = False,
) -> pd.DataFrame:
    """Does the distribution of results converge while each seed's path does not? MMD and path change vs steps.

    Runs start from the exact marginal at sigma_max (``x0 + sigma_max * noise``, x0 drawn from ``dist``) so
    that a perfect sampler ends exactly on the true distribution at its end sigma: the data noised to
    sigma_min with ``stop_at_sigma_min`` (default), the data itself otherwise. Metrics per sampler x steps:
    ``mmd`` between the ``n`` results and ``n`` fresh true samples, beside the noise floor (columns
    ``floor_mean``, ``floor_std``: MMD of two independent true sets over ``repeats`` draws), and
    ``path_change_plus_one`` / ``path_change_double``: the mean per-sample distance between the results at N
    and at N + 1 (or 2N) steps for the same seed, start and noise stream (``compare`` picks which). The
    stream is A1111's per-seed one: the k-th fresh draw goes to the k-th step, so at N and N + 1 steps each
    draw lands at nearly the same sigma, at N and 2N at very different ones; SDE samplers read one Brownian
    path at the same sigmas either way. The kernel bandwidth is the median heuristic, fixed once from a true set.
    """
    compare = (compare,) if isinstance(compare, str) else tuple(compare)
    if not compare or any(c not in ("plus_one", "double") for c in compare):
        raise SdlabError("compare must hold 'plus_one' and/or 'double'", compare=compare)
    g = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(n, dist.dim, generator=g, dtype=torch.float64)
    x0 = dist.sample(n, g)

    def truth_set(sigma_end: float) -> Tensor:
        y = dist.sample(n, g)
        return y + sigma_end * torch.randn(y.shape, generator=g, dtype=torch.float64) if sigma_end > 0 else y

    floors: dict[float, tuple[float, float, float]] = {}

    def floor(sigma_end: float) -> tuple[float, float, float]:
        if sigma_end not in floors:
            h = median_bandwidth(truth_set(sigma_end))
            values = [mmd(truth_set(sigma_end), truth_set(sigma_end), bandwidth=h) for _ in range(repeats)]
            floors[sigma_end] = (h, float(np.mean(values)), float(np.std(values, ddof=1)) if repeats > 1 else 0.0)
        return floors[sigma_end]

    rows = []
    jobs = [(name, int(k)) for name in samplers for k in steps]
    for name, k in _progress(jobs, progress, "distribution_vs_steps"):
        kw = {"schedule": schedule, "stop_at_sigma_min": stop_at_sigma_min, "eta": eta, "seed": seed, "x0": x0}
        run = run_sampler(name, dist, noise, steps=k, **kw)
        h, floor_mean, floor_std = floor(run.sigma_end)
        base = {**_base_row(run, dist, n, seed), "eta": eta, "stop_at_sigma_min": stop_at_sigma_min}
        base |= {"bandwidth": h, "floor_mean": floor_mean, "floor_std": floor_std}
        rows.append({**base, "metric": "mmd", "value": mmd(run.x_end, truth_set(run.sigma_end), bandwidth=h)})
        for how in compare:
            other = run_sampler(name, dist, noise, steps=k + 1 if how == "plus_one" else 2 * k, **kw)
            change = float((run.x_end - other.x_end).reshape(n, -1).norm(dim=1).mean())
            rows.append({**base, "metric": f"path_change_{how}", "value": change})
    return pd.DataFrame(rows)
