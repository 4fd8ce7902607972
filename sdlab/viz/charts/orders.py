"""Each sampler's order of accuracy on an exact denoiser, against its theory: error against steps, log-log, a
panel per sampler with the line of slope -p that its stated order p predicts.

>>> from sdlab import groundtruth as gt
>>> df = gt.error_vs_steps(["Euler", "Heun"], steps=(16, 32, 64), dist=gt.toy_mixture(), n=64)
>>> order_chart(df, fits=gt.fit_order(df, metric="median_error"))      # Heun's points follow slope -2
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from sdlab.samplers.catalogue import resolve_sampler
from sdlab.viz.charts.render import render
from sdlab.viz.charts.series import ChartAxes, ChartLine, metric_rows, need_columns
from sdlab.viz.palette import sampler_color

__all__ = ["order_chart", "THEORY_COLOR"]

THEORY_COLOR = "#777777"  # dashed: the line a sampler's stated order predicts (Euler is near-black)


def _stated_order(group: pd.DataFrame, sampler: str) -> int | None:
    """The lower end of the stated order (``claimed_order`` "2", "2-3"; else the catalogue's), None if unknown."""
    claimed = str(group["claimed_order"].iloc[0]) if "claimed_order" in group.columns else ""
    found = re.match(r"\d+", claimed)
    if found:
        return int(found.group())
    stated = resolve_sampler(sampler).info.order_range
    return None if stated is None else stated[0]


def order_chart(
    table: pd.DataFrame,
    *,
    metric: str = "median_error",
    fits: pd.DataFrame | None = None,
    x: str = "steps",
    title: str | None = None,
    backend: str = "plotly",
) -> Any:
    """Error against the true ODE solution vs ``x`` per sampler (:func:`sdlab.groundtruth.error_vs_steps`
    rows), a panel each, with the dashed theory line of slope -p through the sampler's point at the most steps (p:
    its stated order). ``fits`` (:func:`sdlab.groundtruth.fit_order`) puts the fitted order in each panel's title.
    """
    need_columns(table, ["sampler", "metric", "value", x], "order_chart")
    rows = metric_rows(table, metric, "order_chart")
    fitted = {}
    if fits is not None and len(fits):
        for _, f in fits[fits["x"] == x].iterrows() if "x" in fits.columns else fits.iterrows():
            fitted.setdefault(f["sampler"], float(f["order"]))
    lines = []
    for sampler, g in rows.groupby("sampler", sort=False):
        curve = g.groupby(x)["value"].median().sort_index()
        curve = curve[curve > 0]
        if curve.empty:
            continue
        p = _stated_order(g, str(sampler))
        fit = f"fitted {fitted[sampler]:.2f}" if sampler in fitted and fitted[sampler] == fitted[sampler] else ""
        panel = f"{sampler}: " + ", ".join(t for t in (fit, f"theory {p}" if p else "") if t)
        xs, ys = [float(v) for v in curve.index], [float(v) for v in curve]
        hover = [f"{metric} {v:.3g}" for v in ys]
        lines.append(ChartLine(str(sampler), xs, ys, color=sampler_color(str(sampler)), hover=hover, panel=panel))
        if p and len(xs) > 1:
            x1, y1 = xs[-1], ys[-1]
            theory = [y1 * (v / x1) ** -p for v in (xs[0], x1)]
            lines.append(ChartLine(f"order {p} (theory)", [xs[0], x1], theory, color=THEORY_COLOR, dash="dash",
                                   panel=panel, context=False))  # fmt: skip
    axes = ChartAxes(
        title or "Order of accuracy on an exact denoiser: measured error and the slope theory predicts",
        "model evaluations (NFE)" if x == "nfe" else x,
        metric.replace("_", " ") + " vs the true ODE solution",
        xlog=True,
        ylog=True,
        notes=["dashed: slope -p through the point at the most steps, p the sampler's stated order"],
    )
    return render(lines, axes, backend)
