"""Charts that compare runs: noise schedules, distance to the reference against steps, cost against quality,
stochastic samplers against their deterministic twins, and same-seed stability.

Each takes a long-format table of :mod:`sdlab.experiments` (and optionally its images, for hover thumbnails) and
returns a plotly figure with a matplotlib twin, or with ``backend="matplotlib"`` the matplotlib figure. A
sampler has its own colour (:func:`sdlab.viz.palette.sampler_color`) in every chart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from sdlab.errors import SdlabError
from sdlab.viz.charts.render import render
from sdlab.viz.charts.series import (
    SIMILARITIES,
    ChartAxes,
    ChartBar,
    ChartLine,
    by_panel,
    final_rows,
    fmt_value,
    group_columns,
    image_thumbs,
    metric_rows,
    need_columns,
    panel_of,
    series_label,
    summarise,
)
from sdlab.viz.palette import series_colors

__all__ = [
    "schedule_chart",
    "convergence_chart",
    "cost_quality_chart",
    "divergence_chart",
    "stability_chart",
]


def schedule_chart(
    schedules: Mapping[str, Any],
    *,
    log: bool = True,
    title: str = "Noise schedules: sigma at each step",
    backend: str = "plotly",
) -> Any:
    """Sigma against step index for each schedule (``{name: sigmas}``, 1-D tensors or arrays, as
    :func:`sdlab.get_sigmas` returns them). On the log axis the final sigma 0 cannot be drawn and is left out.

    >>> schedule_chart({k: sdlab.get_sigmas(k, 20) for k in ("Karras", "Exponential", "Uniform")})
    """
    if not isinstance(schedules, Mapping) or not schedules:
        raise SdlabError("schedule_chart takes {name: sigmas}", hint='e.g. {"Karras": sdlab.get_sigmas("Karras", 20)}')
    colors = series_colors(schedules)
    lines, dropped = [], False
    for name, sigmas in schedules.items():
        s = np.asarray(sigmas.detach().cpu() if hasattr(sigmas, "detach") else sigmas, dtype=float).ravel()
        idx = np.arange(len(s))
        keep = s > 0 if log else np.ones(len(s), bool)
        dropped |= bool((~keep).any())
        texts = [f"sigma {v:.4g}" for v in s[keep]]
        lines.append(ChartLine(str(name), idx[keep].tolist(), s[keep].tolist(), color=colors[name], hover=texts))
    notes = ["the final sigma = 0 is not drawn on the log axis"] if dropped else []
    axes = ChartAxes(title, "step i", "sigma_i", ylog=log, notes=notes)
    return render(lines, axes, backend)


def convergence_chart(
    table: pd.DataFrame,
    *,
    metric: str = "latent_rmse",
    x: str = "steps",
    images: Mapping[str, Any] | None = None,
    by: Sequence[str] = ("sampler", "schedule_resolved"),
    panels: str | None = "auto",
    title: str | None = None,
    backend: str = "plotly",
) -> Any:
    """Distance to the reference against steps (or ``x="nfe"``) per sampler, log-log, the median over seeds as
    the line and their min-max as a band. Rows: ``comparison == "reference"`` at the final step
    (:func:`sdlab.experiments.convergence`). Similarities (ssim, psnr) get a linear y axis. ``panels="family"``
    draws small multiples, a panel per sampler family (:data:`sdlab.viz.palette.FAMILIES`) with the other
    samplers in grey; ``"auto"`` does so above six samplers, ``None`` never.
    """
    need_columns(table, ["metric", "value", x, *by[:1]], "convergence_chart")
    rows, lines = _reference_lines(table, metric, by, "convergence_chart", x=x, images=images, panels=panels)
    against = rows["against"].iloc[0] if "against" in rows.columns and len(rows) else "the reference"
    xlabel = "model evaluations (NFE)" if x == "nfe" else x
    ylabel = f"{metric} to the reference" + (" (higher is closer)" if metric in SIMILARITIES else "")
    axes = _reference_axes(
        title or f"{'Similarity' if metric in SIMILARITIES else 'Distance'} to {against}",
        xlabel,
        ylabel,
        metric,
        "line: median over seeds; band: min to max",
    )
    return render(lines, axes, backend)


def cost_quality_chart(table: pd.DataFrame, *, cost: str = "nfe", title: str | None = None, **options: Any) -> Any:
    """What each sampler pays for its quality: distance to the reference (median over seeds) against model
    evaluations (``cost="nfe"``) or seconds per image (``cost="seconds"``), one point per step count, log-log.
    ``options``: ``metric``, ``images``, ``by``, ``panels`` and ``backend`` as in :func:`convergence_chart`.
    """
    metric, backend = options.pop("metric", "latent_rmse"), options.pop("backend", "plotly")
    by = options.pop("by", ("sampler", "schedule_resolved"))
    need_columns(table, ["metric", "value", "steps", cost, *by[:1]], "cost_quality_chart")
    _, lines = _reference_lines(table, metric, by, "cost_quality_chart", x="_cost", cost=cost, **options)
    xlabel = "model evaluations per image (NFE)" if cost == "nfe" else f"{cost} per image"
    notes = "one point per step count; lower left is cheaper and closer"
    axes = _reference_axes(title or "Cost against quality", xlabel, f"{metric} to the reference", metric, notes)
    return render(lines, axes, backend)


def _reference_axes(title: str, xlabel: str, ylabel: str, metric: str, note: str) -> ChartAxes:
    """Log x; log y for distances, linear for similarities."""
    return ChartAxes(title, xlabel, ylabel, xlog=True, ylog=metric not in SIMILARITIES, notes=[note])


def _reference_lines(
    table: pd.DataFrame,
    metric: str,
    by: Sequence[str],
    chart: str,
    *,
    x: str,
    images: Mapping[str, Any] | None = None,
    cost: str | None = None,
    panels: str | None = "auto",
) -> tuple[pd.DataFrame, list[ChartLine]]:
    """The final images' ``metric`` rows against the reference, and one line per ``by`` group against ``x``
    (median over seeds, band min-max); with ``cost``, against that cost per step count (``x="_cost"``)."""
    rows = metric_rows(final_rows(table), metric, chart)
    cols, varying = group_columns(rows, by)
    log_y = metric not in SIMILARITIES
    samplers = cols[0] == "sampler"
    colors = series_colors(rows[cols[0]], samplers=samplers)
    panel = panel_of(panels if samplers else None, rows[cols[0]].tolist())
    hover = (lambda r: f"<br>{int(r['steps'].iloc[0])} steps") if cost else None
    lines = []
    for keys, g in rows.groupby(cols, sort=False, dropna=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        if cost:
            g = g.assign(_cost=g["steps"].map(g.groupby("steps", sort=True)[cost].median()))
        xs, ys, lo, hi, thumbs, texts = summarise(g, x, log_y=log_y, images=images, hover=hover)
        if xs:
            name, group = series_label(keys, varying), str(keys[0])
            lines.append(ChartLine(name, xs, ys, lo, hi, colors[keys[0]], thumbs=thumbs, hover=texts, group=group,
                                   panel=panel(keys[0])))  # fmt: skip
    return rows, by_panel(lines)


def divergence_chart(
    table: pd.DataFrame,
    *,
    metric: str = "latent_rmse",
    x: str = "steps",
    comparisons: Sequence[str] | None = None,
    images: Mapping[str, Any] | None = None,
    title: str | None = None,
    backend: str = "plotly",
) -> Any:
    """How far stochastic samplers land from their deterministic twins (solid, ``vs_deterministic``) and how
    much each sampler still moves from N to N+1 steps (dashed, ``n_to_n+1``), against steps, log-log; with
    ``x="eta"`` the eta sweep instead (:func:`sdlab.experiments.ancestral_divergence`). Median over seeds, band
    min-max.
    """
    if comparisons is None:
        comparisons = ("eta",) if x == "eta" else ("vs_deterministic", "n_to_n+1")
    need_columns(table, ["metric", "value", "comparison", "sampler", x], "divergence_chart")
    rows = metric_rows(table[table["comparison"].isin(list(comparisons))], metric, "divergence_chart")
    log_y = metric not in SIMILARITIES
    colors = series_colors(rows["sampler"], samplers=True)
    dash = {"vs_deterministic": "solid", "n_to_n+1": "dash", "eta": "solid"}
    what = {"vs_deterministic": "vs its twin", "n_to_n+1": "N vs N+1", "eta": "vs its twin"}
    lines = []
    for (comparison, sampler), g in rows.groupby(["comparison", "sampler"], sort=False):
        if comparison == "n_to_n+1":  # each sampler once, whatever pair it came with
            g = g.drop_duplicates([c for c in ("seed", "steps", "sampler") if c in g.columns])
        xs, ys, lo, hi, thumbs, texts = summarise(g, x, log_y=log_y, images=images, hover=None)
        if xs:
            name = f"{sampler}: {what.get(comparison, comparison)}"
            lines.append(
                ChartLine(name, xs, ys, lo, hi, colors[sampler], dash=dash.get(comparison, "dot"), thumbs=thumbs,
                      hover=texts)
            )  # fmt: skip
    axes = ChartAxes(
        title or ("Stochastic samplers against eta" if x == "eta" else "Stochastic samplers: distance and settling"),
        x,
        metric + ("" if log_y else " (higher is closer)"),
        xlog=x != "eta",
        ylog=log_y,
        notes=["solid: distance to the deterministic twin; dashed: change from N to N+1 steps"] if x != "eta" else [],
    )
    return render(lines, axes, backend)


def stability_chart(
    table: pd.DataFrame,
    *,
    metric: str = "max_abs",
    images: Mapping[str, Any] | None = None,
    title: str | None = None,
    backend: str = "plotly",
) -> Any:
    """Same seed, same image? One bar per variant (rerun, batch position, RNG source, dtype, perturbation) with
    its ``metric`` against the base run (mean over seeds), labelled "identical" where latents and image are
    bit-identical (:func:`sdlab.experiments.stability`). ``max_abs`` is in [0, 1] image units.
    """
    need_columns(table, ["metric", "value", "comparison", "variant"], "stability_chart")
    rows = metric_rows(table, metric, "stability_chart")
    same = table[table["metric"] == "identical"].groupby("variant")["value"].min()
    colors = series_colors(rows["comparison"])
    bars = []
    for (comparison, variant), g in rows.groupby(["comparison", "variant"], sort=False):
        value = float(g["value"].astype(float).mean())
        identical = bool(same.get(variant, 0.0) == 1.0)
        text = "identical" if identical else fmt_value(value)
        name = g["image"].iloc[0] if "image" in g.columns else None
        thumb = (image_thumbs([name], images) or [""])[0]
        bars.append(ChartBar(str(variant), value, colors[comparison], text, thumb, f"{comparison}: {text}"))
    axes = ChartAxes(title or "Same seed, same image? Difference from the base run", f"{metric}", "")
    return render([], axes, backend, bars=bars)
