"""Pictures of the ground-truth experiments (:mod:`sdlab.groundtruth`): densities, paths against the exact ODE
solution, error and MMD against steps, sample clouds and image grids (matplotlib, imported inside each function).

>>> from sdlab import groundtruth as gt
>>> from sdlab.viz.groundtruth import plot_error_vs_steps
>>> df = gt.error_vs_steps(["Euler", "Heun"], steps=(8, 16, 32), dist=gt.toy_mixture(), n=32)
>>> plot_error_vs_steps(df, path="figures/orders.png")     # log-log, reference slopes -1, -2, -3

Every function returns the matplotlib ``Figure`` and, given ``path``, also saves it there as a PNG (folders
created). 2-D only where a density is drawn; sample coordinates are the data's own units. Each sampler has its
colour from :func:`sdlab.viz.palette.sampler_color`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from sdlab.errors import SdlabError
from sdlab.groundtruth import true_path
from sdlab.viz.mpl import LINE_STYLES, plain_log_ticks, save_png, subplot_grid
from sdlab.viz.palette import sampler_color

__all__ = [
    "draw_density",
    "plot_densities",
    "plot_trajectories",
    "plot_error_vs_steps",
    "plot_samples",
    "plot_mmd_vs_steps",
    "plot_image_grid",
]


def draw_density(
    ax: Any, dist: Any, *, sigma: float = 0.0, lim: float = 2.6, grid: int = 160, cmap: str = "Greys"
) -> None:
    """Shade ``ax`` with the density of ``dist`` noised to ``sigma`` (2-D distributions only)."""
    if dist.dim != 2:
        raise SdlabError("draw_density needs a 2-D distribution", dim=dist.dim, hint="use toy_mixture()")
    u = torch.linspace(-lim, lim, grid, dtype=torch.float64)
    xx, yy = torch.meshgrid(u, u, indexing="xy")
    p = dist.log_density(torch.stack([xx.flatten(), yy.flatten()], 1), sigma).exp().reshape(grid, grid)
    ax.imshow(p.numpy() ** 0.5, extent=(-lim, lim, -lim, lim), origin="lower", cmap=cmap, alpha=0.9)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_densities(
    dist: Any, sigmas: Sequence[float] = (0.0, 0.1, 0.3, 1.0), *, lim: float = 2.6, path: str | Path | None = None
) -> Any:
    """The distribution noised to each of ``sigmas``: what the denoiser sees along the way."""
    fig, axes = subplot_grid(len(sigmas), len(sigmas))
    for ax, s in zip(axes, sigmas, strict=True):
        draw_density(ax, dist, sigma=float(s), lim=lim)
        ax.set_title(f"sigma = {s:g}")
    return save_png(fig, path)


def _true_paths(dist: Any, runs: Mapping[str, Any], points: int) -> dict[str, Tensor]:
    """Each run's exact path from its own start, on a fine log-sigma grid (shared between runs that start alike)."""
    cache: dict[tuple[str, float, float], Tensor] = {}
    paths = {}
    for label, run in runs.items():
        key = (run.start, run.sigma_start, run.sigma_end)
        if key not in cache:
            grid = torch.logspace(math.log10(run.sigma_start), math.log10(run.sigma_end), points, dtype=torch.float64)
            grid[0], grid[-1] = run.sigma_start, run.sigma_end
            cache[key] = true_path(dist, run.x_start, grid, rtol=1e-10)[0]
        paths[label] = cache[key]
    return paths


def plot_trajectories(
    dist: Any,
    runs: Mapping[str, Any],
    *,
    truth: Tensor | Mapping[str, Tensor] | str | None = "auto",
    lim: float = 2.6,
    ncols: int = 4,
    clip_sigma: float = 3.0,
    points: int = 300,
    path: str | Path | None = None,
) -> Any:
    """One panel per sampler: its states at each step (red dots, joined; x its result) over the data density,
    beside the exact path (green; o its end).

    ``runs``: ``{label: SamplerRun}`` recorded with ``record=True``. ``truth``: ``"auto"`` solves each run's
    exact path from its own start (DDIM / PLMS / UniPC start elsewhere), or pass paths (T, B, 2), shared or per
    label, e.g. from :func:`~sdlab.groundtruth.true_path`. States above ``clip_sigma`` are left out.
    """
    if isinstance(truth, str):
        if truth != "auto":
            raise SdlabError("truth must be 'auto', None, a tensor or a mapping", truth=truth)
        truth = _true_paths(dist, runs, points)
    fig, axes = subplot_grid(len(runs), ncols)
    for ax, (label, run) in zip(axes, runs.items(), strict=True):
        draw_density(ax, dist, lim=lim)
        exact = truth.get(label) if isinstance(truth, Mapping) else truth
        if exact is not None:
            for b in range(exact.shape[1]):
                ax.plot(exact[:, b, 0], exact[:, b, 1], color="tab:green", lw=1.6, alpha=0.8)
                ax.plot(exact[-1, b, 0], exact[-1, b, 1], "o", color="tab:green", ms=4, mfc="none")
        keep = run.path_sigmas <= clip_sigma
        pts = run.path[keep]
        for b in range(pts.shape[1]):
            ax.plot(pts[:, b, 0], pts[:, b, 1], "-o", color="tab:red", ms=2.5, lw=0.8, alpha=0.9)
            ax.plot(pts[-1, b, 0], pts[-1, b, 1], "x", color="black", ms=5)
        ax.set_title(f"{label} ({run.n_steps} steps, {run.nfe} NFE)", fontsize=9)
    return save_png(fig, path)


def plot_error_vs_steps(
    df: pd.DataFrame,
    *,
    x: str = "steps",
    metric: str = "rms_error",
    slopes: Sequence[int] = (1, 2, 3),
    schedule: str | None = None,
    path: str | Path | None = None,
) -> Any:
    """Log-log error against ``x`` ("steps" or "nfe") per sampler, with dashed reference slopes -1, -2, ...

    The grey band at the bottom is 10x the true solution's own error estimate: below it nothing is measured.
    """
    import matplotlib.pyplot as plt

    data = df[df["metric"] == metric]
    if schedule is not None:
        data = data[data["schedule"] == schedule]
    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    several = data.groupby("sampler")["schedule"].nunique().max() > 1
    styles = {s: LINE_STYLES[k % len(LINE_STYLES)] for k, s in enumerate(data["schedule"].unique())}
    for (sampler, sched), g in data.groupby(["sampler", "schedule"], sort=False):
        g = g.sort_values(x)
        ax.loglog(g[x], g["value"], styles[sched], marker="o", ms=3, color=sampler_color(sampler),
                  label=f"{sampler} / {sched}" if several else sampler)  # fmt: skip
    xs = np.array([data[x].min(), data[x].max()], dtype=float)
    low, top = float(data["value"].min()) / 3, float(data["value"].max()) * 2
    for p in slopes:
        ax.loglog(xs, top / 2 * (xs / xs[0]) ** (-p), "k--", lw=0.8, alpha=0.6)
        ax.annotate(f"order {p}", (xs[1], top / 2 * (xs[1] / xs[0]) ** (-p)), fontsize=8, alpha=0.7)
    if "truth_error" in data:  # shown only where it comes near the data: usually it is far below
        floor = 10 * float(data["truth_error"].max())
        if floor > low / 100:
            low = min(low, floor / 3)
            ax.axhspan(low, floor, color="0.85", zorder=0, label="10x the truth's error estimate")
        ax.set_title(f"true solution's error estimate: {float(data['truth_error'].max()):.0e}", fontsize=9)
    ax.set_ylim(max(low, 1e-15), top)
    plain_log_ticks(ax, data[x].astype(int), spread=1.2)
    ax.set_xlabel("model evaluations (NFE)" if x == "nfe" else x.replace("_", " "))
    ax.set_ylabel(metric.replace("_", " ") + " vs the true ODE solution")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, which="both", alpha=0.2)
    return save_png(fig, path)


def plot_samples(
    dist: Any,
    sets: Mapping[str, Tensor],
    *,
    truth: Tensor | None = None,
    sigma: float = 0.0,
    lim: float = 2.6,
    ncols: int = 4,
    max_points: int = 1500,
    path: str | Path | None = None,
) -> Any:
    """Scatter each set of results over the density at ``sigma`` (and a true sample set as its own panel)."""
    panels = ({"true samples": truth} if truth is not None else {}) | dict(sets)
    fig, axes = subplot_grid(len(panels), ncols)
    for ax, (label, pts) in zip(axes, panels.items(), strict=True):
        draw_density(ax, dist, sigma=sigma, lim=lim)
        pts = pts[:max_points]
        ax.scatter(pts[:, 0], pts[:, 1], s=2, color="tab:green" if label == "true samples" else "tab:red", alpha=0.5)
        ax.set_title(label, fontsize=9)
    return save_png(fig, path)


def plot_mmd_vs_steps(df: pd.DataFrame, *, path: str | Path | None = None) -> Any:
    """Left: MMD to the true distribution vs steps, the noise floor (mean +- 2 std) as a band. Right: how far each
    seed's result moves between N and N + 1 (solid) or 2N (dashed) steps."""
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    mmd_rows = df[df["metric"] == "mmd"]
    for sampler, g in mmd_rows.groupby("sampler", sort=False):
        g = g.sort_values("steps")
        ax1.loglog(g["steps"], g["value"], "-o", ms=3, color=sampler_color(sampler), label=sampler)
    floor_mean, floor_std = float(mmd_rows["floor_mean"].iloc[0]), float(mmd_rows["floor_std"].iloc[0])
    ax1.axhspan(max(floor_mean - 2 * floor_std, 1e-6), floor_mean + 2 * floor_std, color="0.8", label="noise floor")
    ax1.set_xlabel("steps")
    ax1.set_ylabel("MMD to the true distribution")
    ax1.legend(fontsize=7)
    for metric, style in (("path_change_plus_one", "-o"), ("path_change_double", "--s")):
        for sampler, g in df[df["metric"] == metric].groupby("sampler", sort=False):
            g = g.sort_values("steps")
            ax2.loglog(g["steps"], g["value"], style, ms=3, color=sampler_color(sampler), label=f"{sampler}")
    ax2.set_xlabel("steps N")
    ax2.set_ylabel("mean |x(N) - x(N+1)| (solid), |x(N) - x(2N)| (dashed)")
    handles, labels = ax2.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    ax2.legend(unique.values(), unique.keys(), fontsize=7)
    for ax in (ax1, ax2):
        ax.grid(True, which="both", alpha=0.2)
        plain_log_ticks(ax, df["steps"].astype(int), spread=1.2)
    return save_png(fig, path)


def plot_image_grid(
    x: Tensor,
    shape: Sequence[int],
    *,
    ncols: int = 8,
    titles: Sequence[str] | None = None,
    path: str | Path | None = None,
) -> Any:
    """Show flattened RGB items (B, 3*h*w) in [-1, 1] (as :meth:`IdealDenoiser.from_scenes` makes them) as images."""
    imgs = ((x.reshape(len(x), *shape).clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).numpy()
    fig, axes = subplot_grid(len(imgs), ncols, size=1.4)
    for i, (ax, img) in enumerate(zip(axes, imgs, strict=True)):
        ax.imshow(img, interpolation="nearest")
        ax.axis("off")
        if titles is not None:
            ax.set_title(titles[i], fontsize=7)
    return save_png(fig, path, small=False)  # images: all their colours
