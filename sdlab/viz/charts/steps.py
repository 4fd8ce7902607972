"""Charts of one run, step by step: how much the denoised prediction still changes at each step, with a step
slider and the image at that step, and the per-step table they are drawn from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from sdlab.errors import SdlabError
from sdlab.experiments import step_deltas
from sdlab.viz.charts.render import mpl_figure, render, set_twin, slider_figure
from sdlab.viz.charts.series import (
    SIMILARITIES,
    ChartAxes,
    ChartLine,
    by_panel,
    metric_rows,
    need_columns,
    panel_of,
)
from sdlab.viz.images import to_images
from sdlab.viz.palette import sampler_color, series_colors

__all__ = ["delta_chart", "trajectory_table"]


def delta_chart(
    table: pd.DataFrame,
    *,
    images: Any = None,
    metric: str = "latent_rmse",
    comparisons: Sequence[str] = ("next", "final"),
    x: str = "step",
    panels: str | None = "auto",
    title: str | None = None,
    backend: str = "plotly",
) -> Any:
    """Per-step change within a run: the denoised prediction at step i against step i+1 (solid, ``next``) and
    against the final result (dashed, ``final``), log y. ``table``: per-step rows (``step >= 0``), e.g.
    :func:`trajectory_table` or a convergence table's ``next`` / ``final`` rows.

    ``images``: the denoised image at each step ((steps, 3, H, W) in [0, 1], e.g. ``trajectory.decode(model)``).
    With them the plotly chart gets an image panel and a step slider (plotly frames) that moves a marker along
    the curves and shows that step's image; the matplotlib twin draws six of them under the chart.

    Several samplers (one run each): a sampler's own colour, and with ``panels`` (as in
    :func:`~sdlab.viz.charts.convergence_chart`) small multiples by sampler family. Similarities (ssim, psnr) get
    a linear y axis.
    """
    need_columns(table, ["metric", "value", "step", "comparison"], "delta_chart")
    rows = table[(table["step"] >= 0) & table["comparison"].isin(list(comparisons))]
    rows = metric_rows(rows, metric, "delta_chart")
    series = [c for c in ("sampler", "schedule_resolved", "steps", "seed") if c in rows.columns]
    varying = [rows[c].nunique() > 1 for c in series]
    keys = [tuple(k) for k in rows[series].itertuples(index=False)] if series else [()]
    colors = series_colors(keys)
    by_sampler = (  # one run per sampler (its schedule aside): each in its own colour, in its family's panel
        "sampler" in series and varying[series.index("sampler")] and len(colors) == rows["sampler"].nunique()
    )
    if by_sampler:
        colors = {k: sampler_color(str(k[series.index("sampler")])) for k in colors}
    panel = panel_of(panels if by_sampler else None, rows["sampler"].tolist() if by_sampler else [])
    log_y = metric not in SIMILARITIES
    dash = {"next": "solid", "final": "dash"}
    one_kind = rows["comparison"].iloc[0] if rows["comparison"].nunique() == 1 else None
    lines = []
    groups = rows.groupby([*series, "comparison"], sort=False) if series else rows.groupby(["comparison"])
    for keys, g in groups:
        keys = keys if isinstance(keys, tuple) else (keys,)
        *ident, comparison = keys
        g = g.sort_values("step")
        g = g[((g["value"] > 0) | (not log_y)) & np.isfinite(g["value"].astype(float))]
        if g.empty:
            continue
        shown = [(c, k) for c, k, v in zip(series, ident, varying, strict=True) if v]
        label = " / ".join(f"seed {k}" if c == "seed" else f"{k} steps" if c == "steps" else str(k) for c, k in shown)
        what = "step i vs i+1" if comparison == "next" else f"step i vs {comparison}"
        name = (f"{label}: {what}" if one_kind is None else label) if label else what  # the title says which one
        sig = g["sigma"].tolist() if "sigma" in g.columns else [math.nan] * len(g)
        texts = [f"sigma {s:.4g}" for s in sig]
        xs = g[x].astype(float).tolist()
        lines.append(
            ChartLine(name, xs, g["value"].astype(float).tolist(), color=colors[tuple(ident)],
                      dash=dash.get(comparison, "dot"), hover=texts, group=str(comparison),
                      panel=panel(ident[series.index("sampler")]) if by_sampler else "")
        )  # fmt: skip
    axes = ChartAxes(
        title
        or f"Per-step change of the denoised prediction ({metric})"
        + ("" if one_kind is None else f": step i vs {'i+1' if one_kind == 'next' else one_kind}"),
        "step i" if x == "step" else x,
        metric + ("" if log_y else " (higher is closer)"),
        xlog=x == "sigma",
        ylog=log_y,
        xreverse=x == "sigma",
    )
    lines = by_panel(lines)
    if images is None:
        return render(lines, axes, backend)
    frames, _ = to_images(images)
    picks = np.unique(np.linspace(0, len(frames) - 1, min(6, len(frames))).round().astype(int))
    strip = [(f"step {i}", frames[i]) for i in picks]
    if backend == "matplotlib":
        return render(lines, axes, backend, strip=strip)
    return set_twin(slider_figure(lines, axes, frames), lambda: mpl_figure(lines, axes, strip=strip))


def trajectory_table(
    result: Any,
    *,
    model: Any = None,
    image_metrics: Sequence[str] = (),
    decode: str = "preview",
) -> pd.DataFrame:
    """Per-step deltas of every image of a :class:`~sdlab.generation.GenerateResult` made with
    ``trajectory=True``, as one long table: sampler, schedule, seed, step, sigma, comparison ("next" / "final"),
    metric, value, nfe, elapsed. Latent RMSE always; ``image_metrics`` (ssim, psnr, lpips) on the decoded
    predictions (``model`` decodes them; ``decode="preview"`` is cheap, ``"tiny"`` close to the VAE, ``"full"`` the
    VAE).
    """
    if getattr(result, "trajectories", None) is None:
        raise SdlabError("the result has no trajectories", hint="run sdlab.generate(..., trajectory=True)")
    rows = []
    for k, (spec, traj) in enumerate(zip(result.specs, result.trajectories, strict=True)):
        for row in step_deltas(traj, result.latents[k], model=model, image_metrics=image_metrics, decode=decode):
            rows.append(
                {
                    "sampler": spec.sampler,
                    "schedule_resolved": spec.schedule_resolved,
                    "steps": spec.steps,
                    "seed": spec.seed,
                    **row,
                }
            )
    return pd.DataFrame(rows)
